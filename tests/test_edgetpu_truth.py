"""The pre-check and the log parser against the REAL edgetpu_compiler: its logs and compiled models.

The development set (`../shared/edgetpu-truth`, or $TFEDGE_EDGETPU_TRUTH) holds .tflite models third parties
committed to public repositories with the real compiler's operation log and/or compiled `*_edgetpu.tflite`
(its README names each source repository and commit), and `expected.json` (per model: the log's rows, the ops
the compiler left on the CPU). Nothing there was made by tfedge, so these tests measure the pre-check against
the compiler, not against itself. The set is third-party data kept outside the repository (beside it, in
shared/, as CI lays it out): without it the first test fails, naming the path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tfedge.edgetpu import rules
from tfedge.edgetpu.check import check, cpu_op_counts
from tfedge.edgetpu.compiler import (
    compiler_major,
    cpu_ops_from_compiled,
    cpu_ops_from_log,
    parse_log,
    summarize,
    with_prediction,
)

TRUTH = Path(os.environ.get("TFEDGE_EDGETPU_TRUTH", Path(__file__).resolve().parents[2] / "shared" / "edgetpu-truth"))
EXPECTED = TRUTH / "expected.json"
RECORDS = json.loads(EXPECTED.read_text()) if EXPECTED.is_file() else []


def test_the_truth_set_is_there():
    """CI lays shared/ beside the clone: a missing truth set is a failure, not a skip."""
    assert len(RECORDS) >= 6, f"the Edge TPU truth set is not at {TRUTH} (set TFEDGE_EDGETPU_TRUTH)"


def _expected_cpu(record) -> dict:
    """The compiled model's CPU ops when there is one, else the log's not-mapped ops."""
    return record["compiled_cpu_ops"] if "compiled_cpu_ops" in record else record["not_mapped"]


def _compiler(record) -> int:
    """The record's compiler major version; Coral's own 2021 test_data release was compiled by compiler 16."""
    return compiler_major(record.get("compiler")) or 16


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_prediction_matches_the_real_compiler(record):
    report = check(TRUTH / record["files"]["model"]["file"], _compiler(record))
    assert report["ops_total"] == record["n_ops"]
    assert cpu_op_counts(report) == _expected_cpu(record), [
        (op["index"], op["op"], op["status"]) for op in report["ops"] if not op["on_tpu"]]
    assert report["ops_uncertain"] == 0 and report["refusal"] is None


@pytest.mark.parametrize("record", [r for r in RECORDS if "log" in r["files"]],
                         ids=[r["id"] for r in RECORDS if "log" in r["files"]])
def test_log_parser_on_the_real_logs(record):
    text = (TRUTH / record["files"]["log"]["file"]).read_text()
    log = parse_log(text)
    assert log["compiler_version"] == record["compiler"]
    assert log["input"] == Path(record["files"]["model"]["source_path"]).name
    assert log["output"].endswith("_edgetpu.tflite")
    assert [[row.op, row.count, row.status] for row in log["rows"]] == record["log_rows"]
    assert sum(row.count for row in log["rows"]) == record["n_ops"]
    assert cpu_ops_from_log(text) == record["not_mapped"]


@pytest.mark.parametrize("record", [r for r in RECORDS if "compiled" in r["files"]],
                         ids=[r["id"] for r in RECORDS if "compiled" in r["files"]])
def test_compiled_models_cpu_ops(record):
    assert cpu_ops_from_compiled(TRUTH / record["files"]["compiled"]["file"]) == record["compiled_cpu_ops"]


# Logs without their model (logs_only/): what each says, read off the file by eye, against the parser.
LOGS_ONLY = {
    "hatef2003_a__model_int8_edgetpu.log": ("16.0.384591198", 386, {"PAD": 1},
                                            {("TRANSPOSE", rules.UNSPECIFIED): 38,
                                             ("TRANSPOSE", rules.MORE_THAN_ONE_SUBGRAPH): 28}),
    "hatef2003_a__lane_keeper_edgetpu.log": ("16.0.384591198", 386, {}, {("LOGISTIC", rules.UNSUPPORTED_DTYPE): 65}),
    "jveitchmichaelis_edgetpu-yolo__yolov8s_integer_quant_edgetpu_160_CPU.log": (
        "16.0.384591198", 259, {"SOFTMAX": 1, "TRANSPOSE": 6, "QUANTIZE": 3, "STRIDED_SLICE": 20},
        {("QUANTIZE", rules.UNSPECIFIED): 1, ("DEQUANTIZE", rules.UNSUPPORTED_DTYPE): 1}),
    "iwatake2222__mobilenet_v1_1.0_224_quant_edgetpu.log": ("1.0.249710469", 31, {"CONV_2D": 15}, {}),
}


def test_every_real_log_parses_into_known_statuses():
    logs = sorted((TRUTH / "logs_only").glob("*.log")) + sorted((TRUTH / "models").glob("*/*.log"))
    assert len(logs) >= 13
    for path in logs:
        log = parse_log(path.read_text())
        assert compiler_major(log["compiler_version"]) is not None, path.name
        assert log["rows"] and all(row.count > 0 for row in log["rows"]), path.name
        assert {row.status for row in log["rows"]} <= set(rules.STATUSES), path.name


@pytest.mark.parametrize("name", sorted(LOGS_ONLY))
def test_log_parser_counts_and_statuses(name):
    version, total, mapped, not_mapped = LOGS_ONLY[name]
    log = parse_log((TRUTH / "logs_only" / name).read_text())
    report = summarize(name, log["rows"], "edgetpu_compiler")
    assert log["compiler_version"] == version and report["ops_total"] == total
    on_tpu = {row.op: row.count for row in log["rows"] if row.on_tpu}
    assert {op: on_tpu.get(op) for op in mapped} == mapped
    assert {key: sum(r.count for r in log["rows"] if (r.op, r.status) == key) for key in not_mapped} == not_mapped


def _record(record_id):
    return next(r for r in RECORDS if r["id"] == record_id)


def test_real_compiler_agrees_with_the_prediction_on_a_real_log():
    """compile's report path on the real compiler's log of deepid (compiler 16): the prediction agrees."""
    record = _record("kapibara_deepid")
    log = parse_log((TRUTH / record["files"]["log"]["file"]).read_text())
    report = with_prediction(summarize(record["id"], log["rows"], "edgetpu_compiler", tpu_subgraphs=1),
                             check(TRUTH / record["files"]["model"]["file"], 16))
    assert report["agrees_with_prediction"] is True
    assert report["prediction"]["cpu_ops"] == {"QUANTIZE": 1, "DEQUANTIZE": 1}


def test_real_compiler_disagrees_with_the_naive_prediction():
    """Coral's deeplab: the documented table (compiler 15's rules here) has no TILE, so a naive pre-check ends
    the TPU subgraph there and puts TILE and the 6 ops after it on the CPU; the real compiler 16 mapped all of
    them but the 33->513 RESIZE_BILINEAR and ARG_MAX. The compare path must say so; the compiler-16 rules agree."""
    record = _record("coral_deeplab_mobilenet_edgetpu_slim_cityscapes_quant")
    model = TRUTH / record["files"]["model"]["file"]
    cpu = cpu_ops_from_compiled(TRUTH / record["files"]["compiled"]["file"])
    rows = [row for row in _rows_from_counts(cpu, record["n_ops"])]
    naive = check(model, 15)
    assert cpu_op_counts(naive) == {"TILE": 1, "QUANTIZE": 1, "CONCATENATION": 1, "CONV_2D": 2,
                                    "RESIZE_BILINEAR": 2, "ARG_MAX": 1}
    assert with_prediction(summarize("deeplab", rows, "edgetpu_compiler", tpu_subgraphs=1),
                           naive)["agrees_with_prediction"] is False
    assert with_prediction(summarize("deeplab", rows, "edgetpu_compiler", tpu_subgraphs=1),
                           check(model, 16))["agrees_with_prediction"] is True


def _rows_from_counts(cpu: dict, total: int) -> list:
    """The compiled model's placement as operator-table rows: the CPU ops by name, the rest one mapped row."""
    from tfedge.edgetpu.check import OpVerdict

    rows = [OpVerdict(i, op, None, rules.UNSPECIFIED, count=n, macs=None) for i, (op, n) in enumerate(cpu.items())]
    rows.append(OpVerdict(len(rows), rules.EDGETPU_CUSTOM_OP, None, rules.MAPPED, count=total - sum(cpu.values()),
                          macs=None))
    return rows
