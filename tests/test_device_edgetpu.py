"""An Edge TPU-compiled model's shape, crafted as a real TFLite flatbuffer with the `tflite` schema package.

No edgetpu_compiler or libedgetpu can be installed here. edgetpu_compiler replaces the mapped part of a graph
with one CUSTOM operator named `edgetpu-custom-op` (coral.ai/docs/edgetpu/compiler); this file builds such a
model — uint8 [1, 8, 8, 1] in, uint8 [1, 10] out, that one custom op — with the schema's own builders. It proves
that tfedge-run recognises a structurally valid compiled model and says so (exit 2 without --edgetpu, exit 3
without the library), and that if the byte check were bypassed, the runtime's "unresolved custom op" error
still becomes the one-line Edge TPU message. It does not prove a compiled model runs on a Coral.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import pytest
import tflite
from conftest import assert_clean_error

CUSTOM = 32  # tflite.BuiltinOperator.CUSTOM
UINT8 = 3  # tflite.TensorType.UINT8


def _vector(builder, start, items, prepend):
    start(builder, len(items))
    for item in reversed(items):
        prepend(item)
    return builder.EndVector()


def _tensor(builder, name: str, shape: list[int], buffer: int) -> int:
    name_offset = builder.CreateString(name)
    shape_offset = _vector(builder, tflite.TensorStartShapeVector, shape, builder.PrependInt32)
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape_offset)
    tflite.TensorAddType(builder, UINT8)
    tflite.TensorAddBuffer(builder, buffer)
    tflite.TensorAddName(builder, name_offset)
    return tflite.TensorEnd(builder)


def edgetpu_shaped_model() -> bytes:
    builder = flatbuffers.Builder(1024)
    custom_name = builder.CreateString("edgetpu-custom-op")
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, CUSTOM)
    tflite.OperatorCodeAddBuiltinCode(builder, CUSTOM)
    tflite.OperatorCodeAddCustomCode(builder, custom_name)
    tflite.OperatorCodeAddVersion(builder, 1)
    opcode = tflite.OperatorCodeEnd(builder)

    tensors = [_tensor(builder, "input", [1, 8, 8, 1], 1), _tensor(builder, "output", [1, 10], 2)]
    op_inputs = _vector(builder, tflite.OperatorStartInputsVector, [0], builder.PrependInt32)
    op_outputs = _vector(builder, tflite.OperatorStartOutputsVector, [1], builder.PrependInt32)
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, 0)
    tflite.OperatorAddInputs(builder, op_inputs)
    tflite.OperatorAddOutputs(builder, op_outputs)
    operator = tflite.OperatorEnd(builder)

    tensor_vector = _vector(
        builder, tflite.SubGraphStartTensorsVector, tensors, builder.PrependUOffsetTRelative
    )
    graph_inputs = _vector(builder, tflite.SubGraphStartInputsVector, [0], builder.PrependInt32)
    graph_outputs = _vector(builder, tflite.SubGraphStartOutputsVector, [1], builder.PrependInt32)
    operators = _vector(
        builder, tflite.SubGraphStartOperatorsVector, [operator], builder.PrependUOffsetTRelative
    )
    graph_name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensor_vector)
    tflite.SubGraphAddInputs(builder, graph_inputs)
    tflite.SubGraphAddOutputs(builder, graph_outputs)
    tflite.SubGraphAddOperators(builder, operators)
    tflite.SubGraphAddName(builder, graph_name)
    subgraph = tflite.SubGraphEnd(builder)

    buffers = []
    for _ in range(3):  # buffer 0 is the empty sentinel; the tensors' buffers are empty (not constants)
        tflite.BufferStart(builder)
        buffers.append(tflite.BufferEnd(builder))
    opcodes = _vector(
        builder, tflite.ModelStartOperatorCodesVector, [opcode], builder.PrependUOffsetTRelative
    )
    subgraphs = _vector(
        builder, tflite.ModelStartSubgraphsVector, [subgraph], builder.PrependUOffsetTRelative
    )
    buffer_vector = _vector(builder, tflite.ModelStartBuffersVector, buffers, builder.PrependUOffsetTRelative)
    description = builder.CreateString(
        "crafted by tests/test_device_edgetpu.py: the shape of a compiled model"
    )
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, opcodes)
    tflite.ModelAddSubgraphs(builder, subgraphs)
    tflite.ModelAddDescription(builder, description)
    tflite.ModelAddBuffers(builder, buffer_vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crafted") / "crafted_edgetpu.tflite"
    path.write_bytes(edgetpu_shaped_model())
    return path


def test_crafted_model_is_a_valid_flatbuffer_with_the_custom_op(compiled):
    from tfedge_device.guard import check_structure
    from tfedge_device.model import needs_edgetpu

    data = compiled.read_bytes()
    check_structure(data, compiled.name)  # tfedge's own structural checks accept it
    model = tflite.Model.GetRootAsModel(data, 0)
    assert model.OperatorCodes(0).CustomCode() == b"edgetpu-custom-op"
    assert model.Subgraphs(0).OperatorsLength() == 1 and needs_edgetpu(data)


def test_cli_refuses_it_without_the_delegate_and_needs_the_library_with_it(tfedge_run, compiled, digits_dir):
    image = digits_dir / "images" / "digit_0.png"
    assert_clean_error(
        tfedge_run("classify", compiled, "-i", image), 2, "compiled for the Edge TPU", "--edgetpu"
    )
    result = tfedge_run("classify", compiled, "-i", image, "--edgetpu")
    assert_clean_error(result, 3, "libedgetpu.so.1", "apt-get install libedgetpu1-std")
    info = tfedge_run("info", compiled)
    assert info.returncode == 0 and "Edge TPU model: needs the Edge TPU delegate" in info.stdout, info


def test_runtime_unresolved_custom_op_becomes_the_edge_tpu_message(compiled, monkeypatch):
    """With the byte check bypassed, LiteRT itself refuses the op; Model turns that into one line (exit 3)."""
    from tfedge_device import model as model_module
    from tfedge_device.errors import EnvironmentMissing

    monkeypatch.setattr(model_module, "needs_edgetpu", lambda data: False)
    monkeypatch.setenv("TFEDGE_PROBE", "0")  # no crash-probe child: the in-process load is what is tested
    with pytest.raises(EnvironmentMissing, match="needs the Edge TPU delegate"):
        model_module.Model(compiled)
