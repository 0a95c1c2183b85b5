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


def test_float_model_is_refused_as_not_quantized(digits_float):
    """A model without one quantized tensor: the compiler's "Model not quantized" (GH 168, 313), all on the CPU."""
    report = check(digits_float)
    assert report["refusal"]["message"] == "Model not quantized"
    assert report["tpu_subgraphs"] == 0 and report["ops_on_tpu"] == 0 and report["ops_total"] > 0
    assert {op["status"] for op in report["ops"]} == {rules.MODEL_REFUSED}
    assert "Model not quantized" in report["ops"][0]["reasons"][0]


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
    quant = {"scale": [0.1], "zero_point": [0], "axis": 0} if dtype in ("int8", "uint8", "int16") else None
    return Tensor(index, f"t{index}", tuple(shape), tuple(signature or shape), dtype, quant, constant,
                  8 if constant else 0, values)


def _graph(ops, tensors, version=1):
    ops = [Op(i, 0, name, version, tuple(ins), tuple(outs), options)
           for i, (name, ins, outs, options) in enumerate(ops)]
    return Graph("test.tflite", (Subgraph(0, "main", tuple(tensors), tuple(ops), (0,), (ops[-1].outputs[0],)),),
                 {}, "", 3)


def _single(name, tensors, ins, options=None, compiler=16, version=1):
    graph = _graph([(name, ins, (len(tensors) - 1,), options or {})], tensors, version)
    return check_graph(graph, compiler)["ops"][0]


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
    ("SOFTMAX", [_t(0, (1, 4, 10)), _t(1, (1, 4, 10))], {}, rules.MAPPED, ""),  # compiler 16 (yunet log)
    ("SOFTMAX", [_t(0, (1, 2, 20000)), _t(1, (1, 2, 20000))], {}, rules.UNSPECIFIED, "softmax axis of 20000"),
    ("CONCATENATION", [_t(0, ACT), _t(1, ACT, constant=True), _t(2, ACT), _t(3, (1, 8, 8, 12))],
     {"fused_activation_function": "NONE"}, rules.UNSPECIFIED, "constant input"),
    ("CONV_2D", [_t(0, ACT), _t(1, (4, 3, 3, 4), constant=True), _t(2, (1, 8, 8, 4))],
     {"dilation_hfactor": 2, "dilation_wfactor": 1}, rules.MAPPED, ""),  # compiler 16 maps unequal dilation
    ("DEPTHWISE_CONV_2D", [_t(0, ACT), _t(1, (1, 3, 3, 4), constant=True), _t(2, (1, 8, 8, 4))],
     {"dilation_hfactor": 2, "dilation_wfactor": 1}, rules.UNSPECIFIED, "dilation 2x1"),
    ("CONV_2D", [_t(0, ACT), _t(1, (4, 3, 3, 4)), _t(2, (1, 8, 8, 4))], {}, rules.UNSPECIFIED, "weights tensor"),
    ("ADD", [_t(0, (2, 8, 8, 4)), _t(1, (2, 8, 8, 4)), _t(2, (2, 8, 8, 4))], {}, rules.UNSUPPORTED_RANK,
     "3 innermost"),
    ("ADD", [_t(0, ACT, signature=(-1, 8, 8, 4)), _t(1, ACT), _t(2, ACT)], {}, rules.MAPPED, ""),  # batch -1 = 1
    ("ADD", [_t(0, ACT, signature=(1, -1, 8, 4)), _t(1, ACT), _t(2, ACT)], {}, rules.UNSPECIFIED, "dynamic size"),
    ("TILE", [_t(0, (1, 1, 1, 4)), _t(1, (4,), "int32", True, (1, 8, 8, 1)), _t(2, ACT)], {}, rules.MAPPED, ""),
    ("TRANSPOSE", [_t(0, (1, 24, 24, 144)), _t(1, (4,), "int32", True, (0, 3, 1, 2)), _t(2, (1, 144, 24, 24))], {},
     rules.MAPPED, ""),
    ("TRANSPOSE", [_t(0, (1, 80, 80, 144)), _t(1, (4,), "int32", True, (0, 3, 1, 2)), _t(2, (1, 144, 80, 80))], {},
     rules.UNSPECIFIED, "input elements 921,600 >= 921,600"),
    ("TRANSPOSE", [_t(0, (1, 40, 40, 144)), _t(1, (4,), "int32", True, (0, 3, 1, 2)), _t(2, (1, 144, 40, 40))], {},
     rules.UNCERTAIN, "mapped up to 82,944, refused from 921,600"),
    ("MEAN", [_t(0, (1, 256, 128, 4)), _t(1, (2,), "int32", True, (1, 2)), _t(2, (1, 4))], {}, rules.UNSPECIFIED,
     "reduced elements 32,768"),
    ("RESIZE_BILINEAR", [_t(0, (1, 1, 1, 4)), _t(1, (2,), "int32", True, (33, 33)), _t(2, (1, 33, 33, 4))], {},
     rules.UNSPECIFIED, "resize scale 33"),
    ("RESIZE_NEAREST_NEIGHBOR", [_t(0, ACT), _t(1, (2,), "int32", True, (32, 32)), _t(2, (1, 32, 32, 4))], {},
     rules.UNCERTAIN, "no refused size known"),
    ("ADD", [_t(0, ACT, "int16"), _t(1, ACT, "int16"), _t(2, ACT, "int16")], {}, rules.UNSUPPORTED_DTYPE, "int16"),
    ("GELU", [_t(0, ACT), _t(1, ACT)], {}, rules.NOT_SUPPORTED, "not in the Edge TPU's supported operations"),
    ("RESIZE_BILINEAR", [_t(0, ACT), _t(1, (2,), "int32", True, (16, 16)), _t(2, (1, 16, 16, 4))], {},
     rules.MAPPED, ""),
]

# The same ops under compiler 15, where the documented limits hold (no evidence of 15 mapping them).
CASES_15 = [
    ("SOFTMAX", [_t(0, (1, 4, 10)), _t(1, (1, 4, 10))], {}, 1, rules.UNSPECIFIED, "1-D input"),
    ("CONV_2D", [_t(0, ACT), _t(1, (4, 3, 3, 4), constant=True), _t(2, (1, 8, 8, 4))],
     {"dilation_hfactor": 2, "dilation_wfactor": 1}, 1, rules.UNSPECIFIED, "dilation 2x1"),
    ("TILE", [_t(0, (1, 1, 1, 4)), _t(1, (4,), "int32", True, (1, 8, 8, 1)), _t(2, ACT)], {}, 1, rules.NOT_SUPPORTED,
     "mapped only by compiler 16"),
    ("RESIZE_NEAREST_NEIGHBOR", [_t(0, ACT), _t(1, (2,), "int32", True, (16, 16)), _t(2, (1, 16, 16, 4))], {}, 3,
     rules.VERSION_NOT_SUPPORTED, "op version 3"),
    ("ADD", [_t(0, ACT, signature=(-1, 8, 8, 4)), _t(1, ACT), _t(2, ACT)], {}, 1, rules.MAPPED, ""),
    ("TRANSPOSE", [_t(0, ACT), _t(1, (4,), "int32", True, (0, 2, 1, 3)), _t(2, ACT)], {}, 1, rules.NOT_SUPPORTED,
     "mapped only by compiler 16"),
]


@pytest.mark.parametrize("name, tensors, options, version, status, words", CASES_15,
                         ids=[f"{c[0]}-15-{i}" for i, c in enumerate(CASES_15)])
def test_rule_table_compiler_15(name, tensors, options, version, status, words):
    verdict = _single(name, tensors, range(len(tensors) - 1), options, compiler=15, version=version)
    assert verdict["status"] == status, verdict
    assert words in " ".join(verdict["reasons"]), verdict


@pytest.mark.parametrize("name, tensors, options, status, words", CASES,
                         ids=[f"{c[0]}-{c[3].split()[0]}-{i}" for i, c in enumerate(CASES)])
def test_rule_table(name, tensors, options, status, words):
    verdict = _single(name, tensors, range(len(tensors) - 1), options)
    assert verdict["status"] == status, verdict
    if status == rules.MAPPED:
        assert verdict["reasons"] == [], verdict  # nothing keeps it off the TPU
    else:
        assert words and words in " ".join(verdict["reasons"]), verdict  # the reason names the rule
    assert verdict["certain"] is (status != rules.UNCERTAIN)


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

    cited = ("coral.ai/", "github.com/", rules.TRUTH)
    for name, constraint in {**rules.CONSTRAINTS, **rules.TENSOR_REQUIREMENTS}.items():
        assert constraint.source.startswith(cited), name
        assert constraint.status in rules.STATUSES and name in CHECKS
        assert set(constraint.versions) <= set(rules.COMPILER_VERSIONS), name
    for op, rule in rules.OP_RULES.items():
        assert set(rule.constraints) <= set(rules.CONSTRAINTS), op
        assert rule.source.startswith(cited), op
    for op, limit in rules.SIZE_LIMITS.items():
        assert limit.source.startswith(cited) and op in rules.OP_RULES, op
    for version, table in rules.UNKNOWN_OP_VERSIONS.items():
        assert version in rules.COMPILER_VERSIONS
        assert all(entry.source.startswith("github.com/") for entry in table.values())


def test_partition_follows_dataflow_not_file_order():
    """A branch placed after the CPU op in the file but not fed by it stays on the TPU (a keypoint head after
    CPU post-processing); what consumes the CPU op's output is cut."""
    tensors = [_t(i, ACT) for i in range(7)]
    ops = [("RELU", (0,), (1,), {}),
           ("GELU", (1,), (2,), {}),             # CPU: not in the op table, after the TPU subgraph began
           ("RELU", (2,), (3,), {}),             # depends on GELU: cut
           ("RELU6", (1,), (4,), {}),            # later in the file, independent of GELU: stays on the TPU
           ("LOGISTIC", (4,), (5,), {}),
           ("ADD", (3, 5), (6,), {})]            # joins both branches: cut
    report = check_graph(_graph(ops, tensors))
    placed = [(op["op"], op["on_tpu"], op["status"]) for op in report["ops"]]
    assert placed == [("RELU", True, rules.MAPPED), ("GELU", False, rules.NOT_SUPPORTED),
                      ("RELU", False, rules.MORE_THAN_ONE_SUBGRAPH), ("RELU6", True, rules.MAPPED),
                      ("LOGISTIC", True, rules.MAPPED), ("ADD", False, rules.MORE_THAN_ONE_SUBGRAPH)]
    assert report["ops_on_tpu"] == 3 and report["tpu_subgraphs"] == 1


def test_cut_quantize_is_reported_unspecified_not_more_than_one_subgraph():
    """GH 461: after the cut every supported op says "More than one subgraph", except QUANTIZE."""
    tensors = [_t(0, ACT), _t(1, ACT), _t(2, ACT), _t(3, ACT, "uint8")]
    ops = [("RELU", (0,), (1,), {}), ("GELU", (1,), (2,), {}), ("QUANTIZE", (2,), (3,), {})]
    report = check_graph(_graph(ops, tensors))
    assert [op["status"] for op in report["ops"]] == [rules.MAPPED, rules.NOT_SUPPORTED, rules.UNSPECIFIED]
    assert "461" in report["ops"][2]["reasons"][-1]


def test_uncertain_op_makes_its_dependents_uncertain_and_is_counted_apart():
    big = (1, 40, 40, 144)  # between the TRANSPOSE sizes seen mapped and refused
    tensors = [_t(0, big), _t(1, big), _t(2, (4,), "int32", True, (0, 3, 1, 2)), _t(3, (1, 144, 40, 40)),
               _t(4, (1, 144, 40, 40)), _t(5, big)]
    ops = [("RELU", (0,), (1,), {}), ("TRANSPOSE", (1, 2), (3,), {}), ("RELU", (3,), (4,), {}),
           ("RELU6", (1,), (5,), {})]
    report = check_graph(_graph(ops, tensors))
    by_index = {op["index"]: op for op in report["ops"]}
    assert by_index[1]["status"] == rules.UNCERTAIN and by_index[1]["on_tpu"]
    assert "depends on op #1 TRANSPOSE" in by_index[2]["uncertain"]
    assert by_index[0]["certain"] and by_index[3]["certain"]  # upstream / parallel: certain either way
    assert (report["ops_certain"], report["ops_uncertain"]) == (2, 2)


@pytest.mark.parametrize("compiler, op, version, refused", [
    (16, "QUANTIZE", 3, True), (16, "QUANTIZE", 2, False), (16, "TRANSPOSE_CONV", 4, True),
    (16, "EXP", 2, True), (15, "REVERSE_V2", 3, True), (16, "REVERSE_V2", 3, False)])
def test_unknown_op_version_refuses_the_whole_model(compiler, op, version, refused):
    tensors = [_t(0, ACT), _t(1, ACT), _t(2, ACT)]
    report = check_graph(_graph([("RELU", (0,), (1,), {}), (op, (1,), (2,), {})], tensors, version), compiler)
    if refused:
        assert report["refusal"]["message"] == f"Didn't find op for builtin opcode '{op}' version '{version}'"
        assert report["ops_on_tpu"] == 0 and report["tpu_subgraphs"] == 0
        assert {o["status"] for o in report["ops"]} == {rules.MODEL_REFUSED}
    else:
        assert report["refusal"] is None and report["ops"][0]["on_tpu"]


def test_cli_compiler_version_option(tfedge, leaky_edgetpu):
    result = tfedge("edgetpu", "check", leaky_edgetpu, "--compiler-version", "15", "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["compiler_version"] == 15
    assert_clean_error(tfedge("edgetpu", "check", leaky_edgetpu, "--compiler-version", "14"), 2,
                       "--compiler-version", "14")


def test_human_report_shows_uncertain_and_refusal(capsys):
    from tfedge.cli.edgetpu import print_report

    big = (1, 40, 40, 144)
    tensors = [_t(0, big), _t(1, (4,), "int32", True, (0, 3, 1, 2)), _t(2, (1, 144, 40, 40))]
    print_report(check_graph(_graph([("TRANSPOSE", (0, 1), (2,), {})], tensors)))
    out = capsys.readouterr().out
    assert "TPU?" in out and "placement certain / uncertain  0 / 1 ops" in out
    print_report(check_graph(_graph([("EXP", (0,), (2,), {})], tensors, version=2)))  # EXP v2: unknown to 16
    out = capsys.readouterr().out
    assert "the compiler refuses this model: Didn't find op for builtin opcode 'EXP' version '2'" in out
