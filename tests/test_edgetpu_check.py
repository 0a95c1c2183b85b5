"""`--quant edgetpu` and `tfedge edgetpu check` on real conversions, plus the rule table on hand-built graphs.

Where the published behaviour of the Edge TPU Compiler is known, the prediction is compared with it:
  * the compiler log of an MNIST CNN converted with float I/O (edgetpu_compiler 15.0, posted in a public
    repository's README): QUANTIZE "Operation is otherwise supported, but not mapped due to some unspecified
    limitation", DEQUANTIZE "Operation is working on an unsupported data type", every other op "Mapped to
    Edge TPU";
  * the compiler log of yolov3-tiny (edgetpu_compiler 15.0, a public README): LEAKY_RELU "Operation not
    supported" and the supported ops after it "More than one subgraph is not supported".
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error
from test_graph import custom_op_model  # noqa: F401  (fixture: a test double of a compiled model)

from tfedge.analysis.graph import Graph, Op, Subgraph, Tensor
from tfedge.edgetpu import rules
from tfedge.edgetpu.check import check, check_graph


def _convert(source, output, mode="edgetpu", calib=None, io_type=None):
    from tfedge.convert.pipeline import ConvertRequest, convert

    return convert(ConvertRequest(source=str(source), output=output, mode=mode, calib=str(calib), io_type=io_type,
                                  show_progress=False, verify_count=10))


@pytest.fixture(scope="session")
def digits_edgetpu(session_dir, digits_dir):
    out = session_dir / "digits_edgetpu.tflite"
    _convert(digits_dir / "digits.keras", out, calib=digits_dir / "calib")
    return out


@pytest.fixture(scope="session")
def tiny_calib(session_dir):
    """Random image-like calibration data: only the op mapping is tested on these models, not accuracy."""
    path = session_dir / "tiny_calib.npy"
    np.save(path, np.random.default_rng(0).random((20, 8, 8, 1), dtype=np.float32))
    return path


@pytest.fixture(scope="session")
def leaky_source(session_dir):
    """conv -> LeakyReLU (an int8 TFLite kernel exists, the Edge TPU has none) -> conv -> dense."""
    import keras

    image = keras.Input((8, 8, 1), batch_size=1)
    x = keras.layers.Conv2D(4, 3, padding="same")(image)
    x = keras.layers.LeakyReLU(0.2)(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(x)
    y = keras.layers.Dense(3)(keras.layers.Flatten()(x))
    path = session_dir / "leaky.keras"
    keras.Model(image, y).save(path)
    return path


@pytest.fixture(scope="session")
def leaky_edgetpu(session_dir, leaky_source, tiny_calib):
    out = session_dir / "leaky_edgetpu.tflite"
    _convert(leaky_source, out, calib=tiny_calib)
    return out


@pytest.fixture(scope="session")
def cumsum_source(session_dir):
    """A SavedModel with tf.math.cumsum (no integer kernel) between a conv and a mean."""
    import tensorflow as tf

    class CumsumModel(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(tf.random.stateless_normal([3, 3, 1, 4], seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 1], tf.float32)])
        def __call__(self, x):
            x = tf.nn.relu(tf.nn.conv2d(x, self.kernel, 1, "SAME"))
            return tf.reduce_mean(tf.math.cumsum(x, axis=2), axis=[1, 2])

    model = CumsumModel()
    path = session_dir / "cumsum_savedmodel"
    tf.saved_model.save(model, str(path), signatures=model.__call__)
    return path


# -- real conversions -----------------------------------------------------------------------------------------

def test_digits_edgetpu_is_uint8_batch1_and_fully_mapped(digits_edgetpu):
    from tfedge_device.manifest import read_manifest
    from tfedge_device.model import Model

    model = Model(digits_edgetpu)
    assert model.inputs[0].dtype == "uint8" and model.outputs[0].dtype == "uint8"
    assert model.inputs[0].shape[0] == 1
    report = check(digits_edgetpu)
    assert report["fully_mapped"] and report["tpu_subgraphs"] == 1
    assert report["share_ops_on_tpu"] == 1.0 and report["share_macs_on_tpu"] == 1.0
    assert {op["status"] for op in report["ops"]} == {rules.MAPPED}
    manifest = read_manifest(digits_edgetpu)
    assert manifest["mode"] == "edgetpu" and manifest["io_type"] == "uint8"
    assert manifest["search"]["edgetpu_check"]["fully_mapped"] is True


def test_unsupported_op_is_named_and_later_ops_run_on_cpu(leaky_edgetpu):
    report = check(leaky_edgetpu)
    ops = report["ops"]
    names = [op["op"] for op in ops]
    leaky = names.index("LEAKY_RELU")
    assert ops[leaky]["status"] == rules.NOT_SUPPORTED and not ops[leaky]["on_tpu"]
    assert "LEAKY_RELU is not in the Edge TPU's supported operations" in ops[leaky]["reasons"][0]
    assert all(op["on_tpu"] for op in ops[:leaky])
    after = ops[leaky + 1:]
    assert after and not any(op["on_tpu"] for op in after)
    # the supported ones after it: the compiler's wording for "the TPU subgraph already ended"
    assert {op["status"] for op in after if op["op"] in ("CONV_2D", "FULLY_CONNECTED")} == {
        rules.MORE_THAN_ONE_SUBGRAPH}
    assert report["tpu_subgraphs"] == 1 and not report["fully_mapped"]
    assert report["first_cpu_op"]["op"] == "LEAKY_RELU"
    assert 0 < report["share_ops_on_tpu"] < 1 and 0 < report["share_macs_on_tpu"] < 1


def test_no_integer_kernel_is_refused_naming_the_op(tfedge, cumsum_source, tiny_calib, tmp_path):
    out = tmp_path / "cumsum_edgetpu.tflite"
    result = tfedge("convert", cumsum_source, "-o", out, "--quant", "edgetpu", "--calib", tiny_calib)
    assert_clean_error(result, 2, "CUMSUM", "cannot be integer-quantized", "float32")
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_float_io_int8_model_matches_published_compiler_log(session_dir, digits_dir):
    """int8 with float I/O: QUANTIZE/DEQUANTIZE at the edges stay on the CPU, the rest maps (see docstring)."""
    out = session_dir / "digits_int8_floatio.tflite"
    _convert(digits_dir / "digits.keras", out, mode="int8", calib=digits_dir / "calib", io_type="float32")
    ops = check(out)["ops"]
    assert (ops[0]["op"], ops[0]["status"]) == ("QUANTIZE", rules.UNSPECIFIED)
    assert (ops[-1]["op"], ops[-1]["status"]) == ("DEQUANTIZE", rules.UNSUPPORTED_DTYPE)
    assert {op["status"] for op in ops[1:-1]} == {rules.MAPPED}


def test_float_model_is_unsupported_data_type(digits_float):
    report = check(digits_float)
    assert report["tpu_subgraphs"] == 0 and report["ops_on_tpu"] == 0
    assert {op["status"] for op in report["ops"]} == {rules.UNSUPPORTED_DTYPE}
    assert "float32" in report["ops"][0]["reasons"][0]


def test_check_on_a_compiled_model_says_so(custom_op_model):  # noqa: F811
    report = check(custom_op_model)
    assert report["compiled"] is True and report["fully_mapped"]
    assert report["ops"][0]["op"] == rules.EDGETPU_CUSTOM_OP
    assert any("already compiled" in note for note in report["notes"])
    assert report["share_macs_on_tpu"] is None  # the custom op hides its MACs


# -- the CLI ---------------------------------------------------------------------------------------------------

def test_cli_convert_int8_io_and_check_json(tfedge, digits_dir, tmp_path):
    out = tmp_path / "digits_edgetpu_int8.tflite"
    result = tfedge("convert", digits_dir / "digits.keras", "-o", out, "--quant", "edgetpu", "--io-type", "int8",
                    "--calib", digits_dir / "calib", "--verify-count", "5", "-q")
    assert result.returncode == 0, result
    result = tfedge("edgetpu", "check", out, "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["fully_mapped"] and report["tpu_subgraphs"] == 1 and report["source"] == "prediction"
    assert len(report["ops"]) == report["ops_total"] and report["ops_total"] >= 7


def test_cli_human_table_and_require_full(tfedge, leaky_edgetpu):
    result = tfedge("edgetpu", "check", leaky_edgetpu)
    assert result.returncode == 0, result
    assert "LEAKY_RELU" in result.stdout and rules.NOT_SUPPORTED in result.stdout
    assert rules.MORE_THAN_ONE_SUBGRAPH in result.stdout and "not a compilation" in result.stdout
    assert "first CPU op: op #" in result.stdout
    result = tfedge("edgetpu", "check", leaky_edgetpu, "--require-full")
    assert_clean_error(result, 4, "LEAKY_RELU")


def test_cli_edgetpu_io_type_float_is_refused(tfedge, digits_dir, tmp_path):
    result = tfedge("convert", digits_dir / "digits.keras", "-o", tmp_path / "x.tflite", "--quant", "edgetpu",
                    "--io-type", "float32", "--calib", digits_dir / "calib")
    assert_clean_error(result, 2, "--io-type float32", "uint8")


def test_cli_batch_other_than_one_is_refused(tfedge, digits_dir, tmp_path):
    result = tfedge("convert", digits_dir / "digits.keras", "-o", tmp_path / "x.tflite", "--quant", "edgetpu",
                    "--input-shape", "4,8,8,1", "--calib", digits_dir / "calib")
    assert_clean_error(result, 2, "batch 1")


@pytest.mark.parametrize("content", [b"not a model at all", b""])
def test_cli_check_not_a_model(tfedge, tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    assert_clean_error(tfedge("edgetpu", "check", path), 2, "not a TFLite model")


def test_cli_check_missing_and_directory(tfedge, tmp_path):
    assert_clean_error(tfedge("edgetpu", "check", tmp_path / "absent.tflite"), 2, "not found")
    assert_clean_error(tfedge("edgetpu", "check", tmp_path), 2, "directory")


# -- the rule table on hand-built graphs -----------------------------------------------------------------------

def _t(index, shape, dtype="int8", constant=False, values=None, signature=None):
    quant = {"scale": [0.1], "zero_point": [0], "axis": 0} if dtype in ("int8", "uint8") else None
    return Tensor(index, f"t{index}", tuple(shape), tuple(signature or shape), dtype, quant, constant,
                  8 if constant else 0, values)


def _graph(ops, tensors):
    ops = [Op(i, 0, name, 1, tuple(ins), tuple(outs), options) for i, (name, ins, outs, options) in enumerate(ops)]
    return Graph("test.tflite", (Subgraph(0, "main", tuple(tensors), tuple(ops), (0,), (ops[-1].outputs[0],)),),
                 {}, "", 3)


def _single(name, tensors, ins, options=None):
    return check_graph(_graph([(name, ins, (len(tensors) - 1,), options or {})], tensors))["ops"][0]


ACT = (1, 8, 8, 4)
CASES = [
    # (op, tensors [inputs..., output], options, expected status, words in the reason)
    ("MAX_POOL_2D", [_t(0, ACT), _t(1, (1, 4, 4, 4))], {"fused_activation_function": "RELU"}, rules.UNSPECIFIED,
     "fused activation RELU"),
    ("AVERAGE_POOL_2D", [_t(0, ACT), _t(1, (1, 4, 4, 4))], {"fused_activation_function": "NONE"}, rules.MAPPED, ""),
    ("PAD", [_t(0, ACT), _t(1, (4, 2), "int32", True, (0, 0, 1, 1, 1, 1, 0, 0)), _t(2, (1, 10, 10, 4))], {},
     rules.MAPPED, ""),
    ("PAD", [_t(0, ACT), _t(1, (4, 2), "int32", True, (0, 0, 0, 0, 0, 0, 1, 1)), _t(2, (1, 8, 8, 6))], {},
     rules.MAPPED, ""),
    ("PAD", [_t(0, ACT), _t(1, (4, 2), "int32", True, (1, 0, 0, 0, 0, 0, 0, 0)), _t(2, (2, 8, 8, 4))], {},
     rules.UNSPECIFIED, "pads dimensions [0]"),
    ("MEAN", [_t(0, ACT), _t(1, (2,), "int32", True, (1, 2)), _t(2, (1, 4))], {}, rules.MAPPED, ""),
    ("MEAN", [_t(0, ACT), _t(1, (1,), "int32", True, (-1,)), _t(2, (1, 8, 8))], {}, rules.MAPPED, ""),
    ("MEAN", [_t(0, (1, 8, 8, 6)), _t(1, (1,), "int32", True, (-1,)), _t(2, (1, 8, 8))], {}, rules.UNSPECIFIED,
     "channel) dimension of size 6"),
    ("MEAN", [_t(0, ACT), _t(1, (1,), "int32", True, (0,)), _t(2, (8, 8, 4))], {}, rules.UNSPECIFIED,
     "batch dimension"),
    ("MEAN", [_t(0, ACT), _t(1, (1, 8))], {}, rules.UNSPECIFIED, "operands the check does not understand"),
    ("PRELU", [_t(0, ACT), _t(1, (8, 8, 4), constant=True), _t(2, ACT)], {}, rules.UNSPECIFIED, "shared_axes"),
    ("PRELU", [_t(0, ACT), _t(1, (1, 1, 4), constant=True), _t(2, ACT)], {}, rules.MAPPED, ""),
    ("SUM", [_t(0, ACT), _t(1, (1,), "int32", True, (0,)), _t(2, (8, 8, 4))], {}, rules.UNSPECIFIED,
     "batch dimension"),
    ("STRIDED_SLICE", [_t(0, ACT), _t(1, (4,), "int32", True, (0, 0, 0, 0)), _t(2, (4,), "int32", True, (1, 8, 8, 4)),
                       _t(3, (4,), "int32", True, (1, 2, 2, 1)), _t(4, (1, 4, 4, 4))], {}, rules.UNITARY_STRIDES,
     "[1, 2, 2, 1]"),
    ("SOFTMAX", [_t(0, (1, 4, 10)), _t(1, (1, 4, 10))], {}, rules.UNSPECIFIED, "1-D input"),
    ("CONCATENATION", [_t(0, ACT), _t(1, ACT, constant=True), _t(2, ACT), _t(3, (1, 8, 8, 12))],
     {"fused_activation_function": "NONE"}, rules.UNSPECIFIED, "constant input"),
    ("CONV_2D", [_t(0, ACT), _t(1, (4, 3, 3, 4), constant=True), _t(2, (1, 8, 8, 4))],
     {"dilation_hfactor": 2, "dilation_wfactor": 1}, rules.UNSPECIFIED, "dilation 2x1"),
    ("CONV_2D", [_t(0, ACT), _t(1, (4, 3, 3, 4)), _t(2, (1, 8, 8, 4))], {}, rules.UNSPECIFIED, "weights tensor"),
    ("ADD", [_t(0, (2, 8, 8, 4)), _t(1, (2, 8, 8, 4)), _t(2, (2, 8, 8, 4))], {}, rules.UNSUPPORTED_RANK,
     "3 innermost"),
    ("ADD", [_t(0, ACT, signature=(-1, 8, 8, 4)), _t(1, ACT), _t(2, ACT)], {}, rules.UNSPECIFIED, "dynamic size"),
    ("ADD", [_t(0, ACT, "int16"), _t(1, ACT, "int16"), _t(2, ACT, "int16")], {}, rules.UNSUPPORTED_DTYPE, "int16"),
    ("GELU", [_t(0, ACT), _t(1, ACT)], {}, rules.NOT_SUPPORTED, "not in the Edge TPU's supported operations"),
    ("RESIZE_BILINEAR", [_t(0, ACT), _t(1, (2,), "int32", True, (16, 16)), _t(2, (1, 16, 16, 4))], {},
     rules.MAPPED, ""),
]


@pytest.mark.parametrize("name, tensors, options, status, words", CASES,
                         ids=[f"{c[0]}-{c[3].split()[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_table(name, tensors, options, status, words):
    verdict = _single(name, tensors, range(len(tensors) - 1), options)
    assert verdict["status"] == status, verdict
    if words:
        assert words in " ".join(verdict["reasons"]), verdict
    if name == "RESIZE_BILINEAR":
        assert verdict["caveats"], "the documented precision caveat must be reported"


def test_partition_leading_cpu_ops_do_not_end_the_tpu_subgraph():
    tensors = [_t(0, ACT, "float32"), _t(1, ACT), _t(2, ACT), _t(3, ACT), _t(4, ACT), _t(5, ACT)]
    ops = [("QUANTIZE", (0,), (1,), {}), ("RELU", (1,), (2,), {}), ("GELU", (2,), (3,), {}),
           ("RELU", (3,), (4,), {}), ("RELU6", (4,), (5,), {})]
    report = check_graph(_graph(ops, tensors))
    assert [op["status"] for op in report["ops"]] == [
        rules.UNSPECIFIED, rules.MAPPED, rules.NOT_SUPPORTED, rules.MORE_THAN_ONE_SUBGRAPH,
        rules.MORE_THAN_ONE_SUBGRAPH]
    assert report["tpu_subgraphs"] == 1 and report["ops_on_tpu"] == 1
    assert report["first_cpu_op"]["op"] == "QUANTIZE"


def test_every_rule_cites_a_source_and_has_a_check():
    from tfedge.edgetpu.check import CHECKS

    for name, constraint in {**rules.CONSTRAINTS, **rules.TENSOR_REQUIREMENTS}.items():
        assert constraint.source.startswith("coral.ai/"), name
        assert constraint.status in rules.STATUSES and name in CHECKS
    for op, rule in rules.OP_RULES.items():
        assert set(rule.constraints) <= set(rules.CONSTRAINTS), op
