"""A .tflite file as plain data: subgraphs, operators in execution order, tensors, metadata, MACs, parameters.

Read with the maintained flatbuffer schema package `tflite` (tflite.Model.GetRootAsModel), never by hand.
Used by `tfedge inspect` and the Edge TPU pre-check. MACs are multiply-accumulates of the matmul-class ops
(convolutions, fully connected, batch matmul); other builtin ops count 0; custom ops and ops whose shapes are
unknown count None.
"""

from __future__ import annotations

import math
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from tfedge_device.model import TFLITE_MAGIC, read_model_bytes

from ..errors import BadInput


@dataclass(frozen=True)
class Tensor:
    index: int  # index within its subgraph
    name: str
    shape: tuple  # the static shape (dynamic dimensions appear as 1 here)
    shape_signature: tuple  # -1 marks a dynamic dimension; equals `shape` when the converter wrote none
    dtype: str  # numpy-style name: float32, int8, uint8, int32, ...
    quantization: dict | None  # {"scale": [...], "zero_point": [...], "axis": int} or None when not quantized
    is_constant: bool  # has buffer data (weights, biases, shape arguments)
    buffer_size: int  # bytes of constant data (0 for activations)
    values: tuple | None = None  # small unquantized integer constants (axes, paddings, strides, shapes), flat


    @property
    def is_dynamic(self) -> bool:
        return any(d < 0 for d in self.shape_signature)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Op:
    index: int  # execution position within its subgraph
    subgraph: int
    name: str  # builtin name ("CONV_2D") or the custom code ("edgetpu-custom-op")
    version: int
    inputs: tuple  # tensor indices in the subgraph; -1 = optional input left out
    outputs: tuple
    options: dict = field(default_factory=dict)  # builtin options, snake_case ("fused_activation_function": "RELU")
    is_custom: bool = False
    macs: int | None = 0


@dataclass(frozen=True)
class Subgraph:
    index: int
    name: str
    tensors: tuple
    ops: tuple
    inputs: tuple  # tensor indices
    outputs: tuple


@dataclass(frozen=True)
class Graph:
    path: Path
    subgraphs: tuple
    metadata: dict  # name -> bytes
    description: str
    schema_version: int

    @property
    def main(self) -> Subgraph:
        return self.subgraphs[0]

    @property
    def subgraph_count(self) -> int:
        return len(self.subgraphs)

    @property
    def ops(self) -> list:
        """Every op of every subgraph, the main subgraph first."""
        return [op for sg in self.subgraphs for op in sg.ops]

    @property
    def tensors(self) -> list:
        return [t for sg in self.subgraphs for t in sg.tensors]

    @property
    def inputs(self) -> list:
        return [self.main.tensors[i] for i in self.main.inputs]

    @property
    def outputs(self) -> list:
        return [self.main.tensors[i] for i in self.main.outputs]

    @property
    def min_runtime_version(self) -> str | None:
        raw = self.metadata.get("min_runtime_version")
        return raw.split(b"\0", 1)[0].decode("ascii", "replace") or None if raw else None

    @property
    def total_macs(self) -> int | None:
        values = [op.macs for op in self.ops]
        return None if any(v is None for v in values) else sum(values)

    @property
    def param_count(self) -> int:
        """Elements of constant weight tensors: float or quantized constants (shape arguments excluded)."""
        return sum(t.elements for t in self.tensors if t.is_constant and _is_weight(t))


def _is_weight(tensor: Tensor) -> bool:
    return tensor.dtype.startswith(("float", "bfloat")) or tensor.quantization is not None


def _enum_names(enum_class) -> dict:
    return {value: name for name, value in vars(enum_class).items() if not name.startswith("_")}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


# Option fields holding enums, shown by name (values from the schema package's enum classes).
def _option_enums(tflite) -> dict:
    return {"FusedActivationFunction": _enum_names(tflite.ActivationFunctionType),
            "Padding": _enum_names(tflite.Padding)}


def _read_options(tflite, operator, option_types: dict) -> dict:
    """Every scalar field of the op's builtin options table, generically (no per-op code)."""
    type_name = option_types.get(operator.BuiltinOptionsType())
    table = operator.BuiltinOptions()
    if not type_name or table is None:
        return {}
    options = getattr(tflite, type_name)()
    options.Init(table.Bytes, table.Pos)
    enums = _option_enums(tflite)
    result = {}
    for attr in dir(options):
        if attr.startswith(("_", "GetRoot", "Init")) or attr.endswith(("Length", "IsNone", "HasIdentifier")):
            continue
        if attr.endswith("AsNumpy"):  # vector fields (squeeze_dims, new_shape): a list of ints
            field_name = attr[: -len("AsNumpy")]
            if not getattr(options, f"{field_name}IsNone")():
                result[_snake(field_name)] = [int(v) for v in getattr(options, attr)()]
            continue
        method = getattr(options, attr)
        if not callable(method) or method.__code__.co_argcount != 1:
            continue
        value = method()
        if isinstance(value, (bool, int, float)):
            result[_snake(attr)] = enums[attr].get(value, value) if attr in enums else value
    return result


def _vector(obj, name: str) -> tuple:
    if getattr(obj, f"{name}IsNone")():
        return ()
    return tuple(int(v) for v in getattr(obj, f"{name}AsNumpy")())


def _quantization(q) -> dict | None:
    if q is None or q.ScaleIsNone() or q.ScaleLength() == 0:
        return None
    zero_points = [int(v) for v in q.ZeroPointAsNumpy()] if not q.ZeroPointIsNone() else []
    return {"scale": [float(v) for v in q.ScaleAsNumpy()], "zero_point": zero_points,
            "axis": int(q.QuantizedDimension())}


def _buffer_size(model, index: int) -> int:
    if index <= 0 or index >= model.BuffersLength():
        return 0
    buffer = model.Buffers(index)
    if buffer.Offset() > 1:  # large models keep data outside the flatbuffer (offset/size)
        return int(buffer.Size())
    return int(buffer.DataLength())


SMALL_CONSTANT_ELEMENTS = 64  # integer constants up to this size are read (op arguments, not weights)


def _small_values(model, buffer_index: int, dtype: str, elements: int) -> tuple | None:
    if dtype not in ("int32", "int64") or elements > SMALL_CONSTANT_ELEMENTS:
        return None
    buffer = model.Buffers(buffer_index)
    if buffer.DataIsNone():
        return None
    import numpy as np

    return tuple(int(v) for v in np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype))


def _read_tensor(model, sg, index: int, dtype_names: dict) -> Tensor:
    t = sg.Tensors(index)
    shape = _vector(t, "Shape")
    signature = _vector(t, "ShapeSignature") or shape
    size = _buffer_size(model, t.Buffer())
    dtype = dtype_names.get(t.Type(), f"type{t.Type()}").lower()
    quantization = _quantization(t.Quantization())
    values = _small_values(model, t.Buffer(), dtype, math.prod(shape)) if size and not quantization else None
    return Tensor(index=index, name=(t.Name() or b"").decode("utf-8", "replace"), shape=shape,
                  shape_signature=signature, dtype=dtype, quantization=quantization,
                  is_constant=size > 0, buffer_size=size, values=values)


def _opcode_names(tflite, model) -> list:
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        # Schema >= 2.4 keeps the code in BuiltinCode; older files only in DeprecatedBuiltinCode (max of both).
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = tflite.utils.BUILTIN_OPCODE2NAME.get(builtin, f"BUILTIN_{builtin}")
        custom = name == "CUSTOM"
        if custom and code.CustomCode():
            name = code.CustomCode().decode("utf-8", "replace")
        names.append((name, int(code.Version()), custom))
    return names


def read_graph(path: str | Path) -> Graph:
    """Parse a .tflite file. Raises BadInput (exit 2) for files that are not valid TFLite models."""
    path = Path(path)
    return graph_from_bytes(read_model_bytes(path), path)


def graph_from_bytes(data: bytes, path: str | Path = "<memory>") -> Graph:
    """Parse model bytes already in memory (e.g. fresh from the converter); `path` names them in messages."""
    import tflite
    import tflite.utils  # BUILTIN_OPCODE2NAME

    path = Path(path)
    if len(data) < 8 or data[4:8] != TFLITE_MAGIC:
        raise BadInput(f"not a TFLite model (no TFL3 identifier): {path}")
    try:
        return _parse(tflite, path, data)
    except (struct.error, IndexError, ValueError, TypeError, UnicodeDecodeError, AttributeError, OverflowError) as err:
        # The flatbuffer runtime raises these on offsets outside the buffer: a truncated or damaged file.
        raise BadInput(f"not a valid TFLite model ({type(err).__name__} while reading the flatbuffer): {path}",
                       hint="the file is truncated or damaged; convert it again") from None


def _parse(tflite, path: Path, data: bytes) -> Graph:
    model = tflite.Model.GetRootAsModel(data, 0)
    dtype_names = _enum_names(tflite.TensorType)
    option_types = _enum_names(tflite.BuiltinOptions)
    opcodes = _opcode_names(tflite, model)
    subgraphs = []
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        tensors = tuple(_read_tensor(model, sg, i, dtype_names) for i in range(sg.TensorsLength()))
        ops = []
        for i in range(sg.OperatorsLength()):
            operator = sg.Operators(i)
            name, version, custom = opcodes[operator.OpcodeIndex()]
            op = Op(index=i, subgraph=s, name=name, version=version, inputs=_vector(operator, "Inputs"),
                    outputs=_vector(operator, "Outputs"), is_custom=custom,
                    options=_read_options(tflite, operator, option_types))
            ops.append(_with_macs(op, tensors))
        subgraphs.append(Subgraph(index=s, name=(sg.Name() or b"").decode("utf-8", "replace"), tensors=tensors,
                                  ops=tuple(ops), inputs=_vector(sg, "Inputs"), outputs=_vector(sg, "Outputs")))
    if not subgraphs:
        raise BadInput(f"not a valid TFLite model (no subgraphs): {path}")
    metadata = {}
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        buffer = model.Buffers(entry.Buffer())
        raw = buffer.DataAsNumpy() if not buffer.DataIsNone() else b""
        metadata[(entry.Name() or b"").decode("utf-8", "replace")] = bytes(raw)
    return Graph(path=path, subgraphs=tuple(subgraphs), metadata=metadata,
                 description=(model.Description() or b"").decode("utf-8", "replace"),
                 schema_version=int(model.Version()))


# ---- MACs -------------------------------------------------------------------------------------------------

def _conv_macs(op, t):  # filter [out, kh, kw, in/groups]; each output element: kh*kw*in/groups MACs
    _, kh, kw, cin = t(op.inputs[1]).shape
    return t(op.outputs[0]).elements * kh * kw * cin


def _depthwise_macs(op, t):  # filter [1, kh, kw, out]; each output element: kh*kw MACs
    _, kh, kw, _ = t(op.inputs[1]).shape
    return t(op.outputs[0]).elements * kh * kw


def _fully_connected_macs(op, t):  # weights [units, in]
    return t(op.outputs[0]).elements * t(op.inputs[1]).shape[-1]


def _batch_matmul_macs(op, t):  # lhs [..., m, k] (or [..., k, m] with adj_x)
    lhs = t(op.inputs[0]).shape
    k = lhs[-2] if op.options.get("adj_x") else lhs[-1]
    return t(op.outputs[0]).elements * k


def _transpose_conv_macs(op, t):  # inputs: output_shape, filter [out, kh, kw, in], input; each input scatters
    _, kh, kw, _ = t(op.inputs[1]).shape
    cout = t(op.inputs[1]).shape[0]
    return t(op.inputs[2]).elements * kh * kw * cout


def _conv3d_macs(op, t):  # filter [kd, kh, kw, in, out]
    kd, kh, kw, cin, _ = t(op.inputs[1]).shape
    return t(op.outputs[0]).elements * kd * kh * kw * cin


MAC_RULES = {
    "CONV_2D": _conv_macs,
    "DEPTHWISE_CONV_2D": _depthwise_macs,
    "FULLY_CONNECTED": _fully_connected_macs,
    "BATCH_MATMUL": _batch_matmul_macs,
    "TRANSPOSE_CONV": _transpose_conv_macs,
    "CONV_3D": _conv3d_macs,
}


def macs(op: Op, tensors) -> int | None:
    """Multiply-accumulates of one op (0 for builtin ops outside MAC_RULES; None when unknown: a custom op,
    such as the Edge TPU's, hides its compute, or the shapes are unknown)."""
    if op.is_custom:
        return None
    rule = MAC_RULES.get(op.name)
    if rule is None:
        return 0
    try:
        return int(rule(op, lambda i: tensors[i]))
    except (ValueError, IndexError):  # shape of unexpected rank or an absent input
        return None


def _with_macs(op: Op, tensors) -> Op:
    from dataclasses import replace

    return replace(op, macs=macs(op, tensors))
