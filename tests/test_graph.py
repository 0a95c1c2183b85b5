"""tfedge.analysis.graph on real converted models: ops in order, tensors, quantization, metadata, MACs, parameters."""

from __future__ import annotations

import numpy as np
import pytest

from tfedge.analysis import graph
from tfedge.errors import BadInput


@pytest.fixture(scope="session")
def digits_keras(digits_dir):
    import keras

    return keras.saving.load_model(digits_dir / "digits.keras", compile=False)


@pytest.fixture(scope="session")
def matmul_model(session_dir):
    """A float model with a depthwise conv, a transpose conv and a batch matmul (MACs of every rule)."""
    import keras

    from tfedge.convert.pipeline import ConvertRequest, convert

    image = keras.Input((6, 6, 4), batch_size=1)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(image)
    x = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same")(x)  # -> 12x12x2
    lhs = keras.layers.Reshape((12, 24))(x)
    y = keras.layers.Dot(axes=2)([lhs, lhs])  # [1, 12, 12]: a batch matmul with k = 24
    model = keras.Model(image, y)
    source = session_dir / "graph_matmul.keras"
    model.save(source)
    out = session_dir / "graph_matmul.tflite"
    convert(ConvertRequest(source=str(source), output=out, mode="float32", show_progress=False))
    return out


@pytest.fixture(scope="session")
def custom_op_model(session_dir, digits_int8):
    """TEST DOUBLE of an Edge TPU compiled model: the int8 digits model with its ops replaced by ONE custom op
    named `edgetpu-custom-op` (built with TFLite's flatbuffer_utils). Not a compilation; it cannot run."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(digits_int8))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = "edgetpu-custom-op", 1
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, list(model.subgraphs[0].inputs), list(model.subgraphs[0].outputs)
    op.customOptions = list(b"test double")
    model.operatorCodes, model.subgraphs[0].operators = [code], [op]
    path = session_dir / "double_edgetpu.tflite"
    flatbuffer_utils.write_model(model, str(path))
    return path


def test_custom_op_named_by_its_code_with_unknown_macs(custom_op_model, digits_int8):
    g = graph.read_graph(custom_op_model)
    (op,) = g.ops
    assert op.name == "edgetpu-custom-op" and op.is_custom and op.macs is None
    assert g.total_macs is None  # unknown, not 0: the custom op hides its compute
    # the constant tensors are still in the file: the parameters of the model it was made from
    assert g.param_count == graph.read_graph(digits_int8).param_count


def test_int8_digits_ops_tensors_and_quantization(digits_int8, digits_keras):
    g = graph.read_graph(digits_int8)
    assert g.subgraph_count == 1
    names = [op.name for op in g.ops]
    assert names == ["CONV_2D", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert [op.index for op in g.ops] == list(range(len(names)))
    conv = g.ops[0]
    assert conv.options["fused_activation_function"] == "RELU" and conv.options["padding"] == "SAME"
    assert conv.version >= 1
    # each op's output feeds the next op in execution order
    for first, second in zip(g.ops, g.ops[1:]):
        assert first.outputs[0] in second.inputs
    image = g.inputs[0]
    assert image.shape == (1, 8, 8, 1) and image.dtype == "int8" and not image.is_constant
    assert image.quantization["scale"][0] == pytest.approx(1 / 255, rel=1e-3)
    weights = g.main.tensors[conv.inputs[1]]
    assert weights.is_constant and weights.buffer_size == weights.elements  # int8: one byte per element
    assert len(weights.quantization["scale"]) == weights.shape[0]  # per-channel along the output axis
    assert weights.quantization["axis"] == 0
    bias = g.main.tensors[conv.inputs[2]]
    assert bias.dtype == "int32" and bias.buffer_size == 4 * bias.elements
    assert g.outputs[0].shape == (1, 10)
    assert g.min_runtime_version and g.min_runtime_version[0].isdigit()
    assert "min_runtime_version" in g.metadata
    assert g.param_count == digits_keras.count_params()


def test_float_digits_macs_match_layer_arithmetic(digits_float, digits_keras):
    g = graph.read_graph(digits_float)
    assert all(t.dtype in ("float32", "int32") for t in g.tensors)
    assert all(t.quantization is None for t in g.tensors)
    expected = 0
    for layer in digits_keras.layers:
        out = layer.output.shape
        if type(layer).__name__ == "Conv2D":
            kh, kw, cin, _ = layer.kernel.shape
            expected += int(np.prod(out[1:])) * kh * kw * cin
        elif type(layer).__name__ == "Dense":
            expected += layer.kernel.shape[0] * layer.kernel.shape[1]
    assert g.total_macs == expected
    assert sum(op.macs for op in g.ops if op.name == "SOFTMAX") == 0
    assert g.param_count == digits_keras.count_params()


def test_macs_for_depthwise_transpose_conv_and_batch_matmul(matmul_model):
    g = graph.read_graph(matmul_model)
    by_name = {op.name: op for op in g.ops}
    assert by_name["DEPTHWISE_CONV_2D"].macs == 6 * 6 * 4 * 3 * 3
    assert by_name["TRANSPOSE_CONV"].macs == 6 * 6 * 4 * 3 * 3 * 2  # each input element scatters kh*kw*cout
    assert by_name["BATCH_MATMUL"].macs == 12 * 12 * 24
    assert g.total_macs == sum(op.macs for op in g.ops)


@pytest.mark.parametrize("content", [b"", b"hello world, not a model", b"\x00" * 64])
def test_not_a_model_is_bad_input(tmp_path, content):
    path = tmp_path / "bad.tflite"
    path.write_bytes(content)
    with pytest.raises(BadInput, match="not a .*TFLite model"):
        graph.read_graph(path)


def test_truncated_model_is_bad_input(tmp_path, digits_int8):
    path = tmp_path / "truncated.tflite"
    path.write_bytes(digits_int8.read_bytes()[:200])
    with pytest.raises(BadInput, match="not a valid TFLite model"):
        graph.read_graph(path)


def test_missing_file_is_bad_input(tmp_path):
    with pytest.raises(BadInput, match="not found"):
        graph.read_graph(tmp_path / "absent.tflite")
