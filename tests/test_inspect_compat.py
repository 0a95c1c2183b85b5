"""tfedge.analysis.compat: op version -> runtime release table, model requirements, LiteRT's embedded release."""

from __future__ import annotations

from tfedge.analysis import compat


def test_table_matches_litert_versioning_examples():
    # tensorflow/lite/tools/versioning/runtime_version.cc
    assert compat.op_release("FULLY_CONNECTED", 12) == "2.17.0"
    assert compat.op_release("FULLY_CONNECTED", 9) == "2.3.0"
    assert compat.op_release("CONV_2D", 1) == "1.5.0"
    assert compat.op_release("BROADCAST_TO", 1) is None  # version 1 was rolled back
    assert compat.op_release("CONV_2D", 99) is None and compat.op_release("NO_SUCH_OP", 1) is None


def test_required_release_takes_the_newest_of_ops_and_metadata():
    needs = compat.required_release([("CONV_2D", 3), ("FULLY_CONNECTED", 12), ("CONV_2D", 3)], None)
    assert needs["min_release"] == "2.17.0" and len(needs["ops"]) == 2
    needs = compat.required_release([("CONV_2D", 3), ("MYSTERY", 2)], "2.19.0")
    assert needs["min_release"] == "2.19.0" and needs["unknown_to_table"] == ["MYSTERY v2"]
    assert compat.required_release([], None)["min_release"] is None


def test_release_parsing_orders_versions_numerically():
    assert compat.parse_release("2.22.0-dev0+selfbuilt") == (2, 22, 0)
    assert compat.parse_release("2.9") < compat.parse_release("2.14.0") < compat.parse_release("2.17.0")
    assert compat.parse_release("junk") is None and compat.parse_release(None) is None


def test_litert_reports_the_tensorflow_release_it_was_built_from():
    release = compat.parse_release(compat.litert_tf_release())
    assert release is not None and release >= (2, 17, 0)  # it runs TF 2.21's FULLY_CONNECTED v12
