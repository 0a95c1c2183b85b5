"""Edge TPU-compiled models' shape, crafted as real TFLite flatbuffers with the `tflite` schema package.

No edgetpu_compiler or libedgetpu can be installed here. edgetpu_compiler replaces the mapped part of a graph
with one CUSTOM operator whose operator code's custom_code is `edgetpu-custom-op` (coral.ai/docs/edgetpu/compiler)
and keeps the model's input and output tensors. `edgetpu_shaped_model` builds such a model with the schema's
own builders — given I/O tensors, that one custom op — and `edgetpu_twin` gives it a CPU model's I/O tensors
(names, shapes, dtypes, quantization), as compiling that model fully would. They prove that tfedge recognises a
structurally valid compiled model from its operator codes; they cannot run (nothing here implements the op).

`NoOpDelegateDouble` is a TEST DOUBLE of libedgetpu's delegate for the `--edgetpu` success path, put in by
`replace_delegate_loader` at ONE seam, `tfedge_device.runtime.load_edgetpu_delegate`: a real TfLiteDelegate
struct (ctypes) whose Prepare claims no node. The real LiteRT interpreter accepts it, calls its Prepare and runs
every op on the CPU, as libedgetpu does with a model that has no `edgetpu-custom-op`.

`with_edgetpu_name_in_metadata` is the negative: a real CPU model that carries the bytes `edgetpu-custom-op`
in a metadata entry and its buffer — a byte search would call it compiled; it is not.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import flatbuffers
import tflite

EDGETPU_CUSTOM_OP = "edgetpu-custom-op"


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple
    type: int = tflite.TensorType.UINT8
    scale: float = 0.0  # 0: not quantized
    zero_point: int = 0


def _vector(builder, start, items, prepend):
    start(builder, len(items))
    for item in reversed(items):
        prepend(item)
    return builder.EndVector()


def _tensor(builder, tensor: Tensor, buffer: int) -> int:
    name_offset = builder.CreateString(tensor.name)
    shape_offset = _vector(builder, tflite.TensorStartShapeVector, list(tensor.shape), builder.PrependInt32)
    quantization = None
    if tensor.scale:
        scale = _vector(builder, tflite.QuantizationParametersStartScaleVector, [tensor.scale],
                        builder.PrependFloat32)
        zero_point = _vector(builder, tflite.QuantizationParametersStartZeroPointVector, [tensor.zero_point],
                             builder.PrependInt64)
        tflite.QuantizationParametersStart(builder)
        tflite.QuantizationParametersAddScale(builder, scale)
        tflite.QuantizationParametersAddZeroPoint(builder, zero_point)
        quantization = tflite.QuantizationParametersEnd(builder)
    tflite.TensorStart(builder)
    tflite.TensorAddShape(builder, shape_offset)
    tflite.TensorAddType(builder, tensor.type)
    tflite.TensorAddBuffer(builder, buffer)
    tflite.TensorAddName(builder, name_offset)
    if quantization is not None:
        tflite.TensorAddQuantization(builder, quantization)
    return tflite.TensorEnd(builder)


def edgetpu_shaped_model(inputs=(Tensor("input", (1, 8, 8, 1)),), outputs=(Tensor("output", (1, 10)),),
                         description: str = "crafted by tests/edgetpu_models.py: the shape of a compiled model"
                         ) -> bytes:
    """A model whose one operator is the CUSTOM op `edgetpu-custom-op`, from the graph inputs to its outputs."""
    builder = flatbuffers.Builder(1024)
    custom_name = builder.CreateString(EDGETPU_CUSTOM_OP)
    tflite.OperatorCodeStart(builder)
    tflite.OperatorCodeAddDeprecatedBuiltinCode(builder, tflite.BuiltinOperator.CUSTOM)
    tflite.OperatorCodeAddBuiltinCode(builder, tflite.BuiltinOperator.CUSTOM)
    tflite.OperatorCodeAddCustomCode(builder, custom_name)
    tflite.OperatorCodeAddVersion(builder, 1)
    opcode = tflite.OperatorCodeEnd(builder)

    all_tensors = [*inputs, *outputs]
    tensors = [_tensor(builder, tensor, i + 1) for i, tensor in enumerate(all_tensors)]
    input_ids = list(range(len(inputs)))
    output_ids = list(range(len(inputs), len(all_tensors)))
    op_inputs = _vector(builder, tflite.OperatorStartInputsVector, input_ids, builder.PrependInt32)
    op_outputs = _vector(builder, tflite.OperatorStartOutputsVector, output_ids, builder.PrependInt32)
    tflite.OperatorStart(builder)
    tflite.OperatorAddOpcodeIndex(builder, 0)
    tflite.OperatorAddInputs(builder, op_inputs)
    tflite.OperatorAddOutputs(builder, op_outputs)
    operator = tflite.OperatorEnd(builder)

    tensor_vector = _vector(builder, tflite.SubGraphStartTensorsVector, tensors, builder.PrependUOffsetTRelative)
    graph_inputs = _vector(builder, tflite.SubGraphStartInputsVector, input_ids, builder.PrependInt32)
    graph_outputs = _vector(builder, tflite.SubGraphStartOutputsVector, output_ids, builder.PrependInt32)
    operators = _vector(builder, tflite.SubGraphStartOperatorsVector, [operator], builder.PrependUOffsetTRelative)
    graph_name = builder.CreateString("main")
    tflite.SubGraphStart(builder)
    tflite.SubGraphAddTensors(builder, tensor_vector)
    tflite.SubGraphAddInputs(builder, graph_inputs)
    tflite.SubGraphAddOutputs(builder, graph_outputs)
    tflite.SubGraphAddOperators(builder, operators)
    tflite.SubGraphAddName(builder, graph_name)
    subgraph = tflite.SubGraphEnd(builder)

    buffers = []
    for _ in range(len(all_tensors) + 1):  # buffer 0 is the empty sentinel; I/O tensors hold no constants
        tflite.BufferStart(builder)
        buffers.append(tflite.BufferEnd(builder))
    opcodes = _vector(builder, tflite.ModelStartOperatorCodesVector, [opcode], builder.PrependUOffsetTRelative)
    subgraphs = _vector(builder, tflite.ModelStartSubgraphsVector, [subgraph], builder.PrependUOffsetTRelative)
    buffer_vector = _vector(builder, tflite.ModelStartBuffersVector, buffers, builder.PrependUOffsetTRelative)
    description_offset = builder.CreateString(description)
    tflite.ModelStart(builder)
    tflite.ModelAddVersion(builder, 3)
    tflite.ModelAddOperatorCodes(builder, opcodes)
    tflite.ModelAddSubgraphs(builder, subgraphs)
    tflite.ModelAddDescription(builder, description_offset)
    tflite.ModelAddBuffers(builder, buffer_vector)
    builder.Finish(tflite.ModelEnd(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def io_tensors(model_bytes: bytes) -> tuple[list[Tensor], list[Tensor]]:
    """A model's (inputs, outputs) as Tensors, read with the schema package."""
    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    graph = model.Subgraphs(0)

    def read(index: int) -> Tensor:
        tensor = graph.Tensors(index)
        quantization = tensor.Quantization()
        scale = quantization.Scale(0) if quantization is not None and quantization.ScaleLength() else 0.0
        zero_point = int(quantization.ZeroPoint(0)) if scale else 0
        return Tensor(tensor.Name().decode(), tuple(int(d) for d in tensor.ShapeAsNumpy()), tensor.Type(),
                      float(scale), zero_point)

    return ([read(int(i)) for i in graph.InputsAsNumpy()], [read(int(i)) for i in graph.OutputsAsNumpy()])


def edgetpu_twin(cpu_model_bytes: bytes) -> bytes:
    """The shape edgetpu_compiler gives `cpu_model_bytes` when it maps every op: its I/O, one custom op."""
    inputs, outputs = io_tensors(cpu_model_bytes)
    return edgetpu_shaped_model(inputs, outputs, "crafted by tests/edgetpu_models.py: a compiled model's shape")


def with_edgetpu_name_in_metadata(cpu_model_bytes: bytes) -> bytes:
    """The CPU model plus a metadata entry named `edgetpu-custom-op` whose buffer holds those bytes too
    (TFLite's flatbuffer_utils, TensorFlow's own model editor). Its operators are untouched."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(cpu_model_bytes))
    buffer = schema.BufferT()
    buffer.data = list(f"note: not an {EDGETPU_CUSTOM_OP} model".encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name, entry.buffer = EDGETPU_CUSTOM_OP, len(model.buffers) - 1
    model.metadata = [*(model.metadata or []), entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


# -- the delegate double ---------------------------------------------------------------------------------
_PREPARE = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)


class _TfLiteDelegate(ctypes.Structure):
    """struct TfLiteDelegate of tflite/core/c/common.h, as in LiteRT 2.3 (and TF Lite since 2.13)."""

    _fields_ = [("data_", ctypes.c_void_p), ("Prepare", _PREPARE), ("CopyFromBufferHandle", ctypes.c_void_p),
                ("CopyToBufferHandle", ctypes.c_void_p), ("FreeBufferHandle", ctypes.c_void_p),
                ("flags", ctypes.c_int64), ("opaque_delegate_builder", ctypes.c_void_p)]


class NoOpDelegateDouble:
    """TEST DOUBLE of libedgetpu's delegate (see the module docstring). `prepared` counts the interpreter's
    calls of Prepare: proof that the interpreter really took the delegate."""

    def __init__(self, device: str | None = None):
        self.device = device
        self.prepared = 0
        self._prepare = _PREPARE(self._on_prepare)  # kept alive as long as the struct points at it
        self._struct = _TfLiteDelegate(None, self._prepare, None, None, None, 0, None)

    def _on_prepare(self, context, delegate) -> int:
        self.prepared += 1
        return 0  # kTfLiteOk, no node claimed

    def _get_native_delegate_pointer(self) -> int:  # what LiteRT's Interpreter asks of a delegate
        return ctypes.addressof(self._struct)


def replace_delegate_loader(monkeypatch) -> list:
    """Put NoOpDelegateDouble in at the seam; returns the list of doubles handed out, in order."""
    from tfedge_device import runtime

    handed_out = []

    def load_edgetpu_delegate_double(runtime_, device=None):
        handed_out.append(NoOpDelegateDouble(device))
        return handed_out[-1]

    monkeypatch.setattr(runtime, "load_edgetpu_delegate", load_edgetpu_delegate_double)
    return handed_out
