"""A loaded TFLite model: its input/output tensors, quantization, and one `predict` path.

This is the one inference path of tfedge: the host's verification and benchmarks and the device CLI all
run models through `Model`. Values going in and out are in the model's *real* domain (float, after
preprocessing); quantized tensors are quantized/dequantized here with the tensor's scale and zero-point.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import runtime as runtimes  # runtimes.load_edgetpu_delegate looked up per call: the one delegate seam
from .errors import BadInput, EnvironmentMissing
from .guard import TFLITE_MAGIC, probe, read_model_bytes  # noqa: F401 - TFLITE_MAGIC, read_model_bytes re-exported
from .quiet import quiet_native
from .runtime import EDGETPU_INSTALL_HINT, Runtime, get_runtime

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"
EDGETPU_OP_NAME = EDGETPU_CUSTOM_OP.decode()
# Ops that keep state in resource variables between invocations (TF's tf.Variable with
# converter.experimental_enable_resource_variables; streaming keyword spotters).
STATE_OPS = frozenset({"VAR_HANDLE", "ASSIGN_VARIABLE", "READ_VARIABLE", "CALL_ONCE"})
# What the runtime's Python layer raises on a damaged model it did not crash on (names it cannot decode...).
_LOAD_ERRORS = (ValueError, RuntimeError, UnicodeDecodeError, TypeError, IndexError, KeyError)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor. name: the tensor's name in the graph; shape: its shape signature, a
    tuple of ints (-1 where dynamic); dtype: numpy dtype; signature_name: its name in the model's
    SignatureDef (None when the model has none)."""

    name: str
    index: int
    shape: tuple
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0
    signature_name: str | None = None

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)

    @property
    def key(self) -> str:
        """The name users see: the signature name, else the tensor name."""
        return self.signature_name or self.name

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "signature_name": self.signature_name,
            "shape": list(self.shape),
            "dtype": np.dtype(self.dtype).name,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_detail(cls, detail: dict, signature_name: str | None = None) -> TensorSpec:
        shape = detail.get("shape_signature")
        if shape is None or len(shape) == 0:
            shape = detail["shape"]
        scale, zero_point = detail.get("quantization", (0.0, 0))
        return cls(
            name=detail["name"],
            index=int(detail["index"]),
            shape=tuple(int(d) for d in shape),
            dtype=np.dtype(detail["dtype"]),
            scale=float(scale),
            zero_point=int(zero_point),
            signature_name=signature_name,
        )


def signature_names(interpreter, inputs: list[dict], outputs: list[dict]) -> dict[int, str]:
    """{tensor index: name} from the model's SignatureDef that covers exactly the main subgraph's inputs and
    outputs (a model may carry others, e.g. an init signature); {} when it has none."""
    try:
        signatures = interpreter._get_full_signature_list()  # {key: {"inputs": {name: index}, "outputs": ...}}
    except AttributeError:  # runtimes without signatures
        return {}
    wanted = ({d["index"] for d in inputs}, {d["index"] for d in outputs})
    ordered = sorted(signatures.items(), key=lambda item: item[0] != "serving_default")
    for _, signature in ordered:
        found = (set(signature.get("inputs", {}).values()), set(signature.get("outputs", {}).values()))
        if found == wanted:
            return {index: name for kind in ("inputs", "outputs") for name, index in signature[kind].items()}
    return {}


@functools.cache
def _bounds(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)  # slow to build (microseconds): cached, quantize runs once per inference
    return int(info.min), int(info.max)


def quantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Real values -> the tensor's dtype (round, add zero-point, saturate)."""
    if not spec.quantized:
        return np.asarray(values).astype(spec.dtype, copy=False)
    low, high = _bounds(spec.dtype)
    q = np.asarray(values, dtype=np.float32) / np.float32(spec.scale)  # a new array: rounded etc. in place
    np.round(q, out=q)
    q += spec.zero_point
    return np.clip(q, low, high, out=q).astype(spec.dtype)


def dequantize(values: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """The tensor's values -> float32 real values."""
    if not spec.quantized:
        return np.asarray(values).astype(np.float32, copy=False)
    return (values.astype(np.float32) - spec.zero_point) * np.float32(spec.scale)


def custom_ops(model_bytes: bytes) -> list[str]:
    """The custom op names among the model's operator codes (e.g. TFLite_Detection_PostProcess, MatrixInverse),
    read from the flatbuffer with the `tflite` schema package."""
    import tflite

    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return sorted({code.CustomCode().decode("utf-8", "replace") for code in codes if code.CustomCode()})


def needs_edgetpu(model_bytes: bytes) -> bool:
    """True when the model was compiled by edgetpu_compiler: one of its operator codes is the custom op
    `edgetpu-custom-op` (coral.ai/docs/edgetpu/compiler), read from the flatbuffer with the `tflite` schema
    package. The name anywhere else (a buffer, metadata, a tensor name) does not count. A file without those
    bytes at all is answered without parsing, so a CPU model's cold start does not import `tflite`."""
    if EDGETPU_CUSTOM_OP not in model_bytes:
        return False
    return EDGETPU_OP_NAME in custom_ops(model_bytes)


class Model:
    """A TFLite model loaded in the selected runtime.

    Args:
      path: the .tflite file.
      threads: interpreter threads (None: the runtime's default).
      edgetpu: load the Edge TPU delegate (needed for *_edgetpu.tflite models).
      runtime: a Runtime (default: get_runtime()).
      input_shapes: shapes to resize inputs to before the first allocation, as `allocate` takes them.
      allocate: False leaves the interpreter unallocated (tensors described, nothing prepared or run):
        `tfedge-run info` reads a model with dynamic inputs this way; call `allocate` before predicting.
    """

    def __init__(self, path, threads: int | None = None, edgetpu: bool = False, runtime: Runtime | None = None,
                 input_shapes=None, allocate: bool = True):
        self.path = Path(path)
        self.runtime = runtime or get_runtime()
        self.model_bytes = read_model_bytes(self.path)
        self.edgetpu = edgetpu
        if needs_edgetpu(self.model_bytes) and not edgetpu:
            raise BadInput(
                f"{self.path.name} is compiled for the Edge TPU and needs its delegate",
                hint="run with --edgetpu on a machine with a Coral and libedgetpu, or use the CPU variant",
            )
        if not edgetpu:  # an Edge TPU model is structure-checked only: a probe would contend for the TPU
            probe(self.model_bytes, self.runtime, self.path.name)
        delegates = [runtimes.load_edgetpu_delegate(self.runtime)] if edgetpu else None
        self._threads, self._delegates = threads, delegates
        self._interpreter = self._make_interpreter()
        try:
            inputs, outputs = self._interpreter.get_input_details(), self._interpreter.get_output_details()
            names = signature_names(self._interpreter, inputs, outputs)
            self.inputs = [TensorSpec.from_detail(d, names.get(d["index"])) for d in inputs]
            self.outputs = [TensorSpec.from_detail(d, names.get(d["index"])) for d in outputs]
            self._input_shapes = self._current_input_shapes()
        except _LOAD_ERRORS as err:
            raise BadInput(f"the runtime cannot read the tensors of {self.path.name}: {type(err).__name__}",
                           hint="the file is damaged; copy or convert it again") from None
        self.allocated = False
        if allocate:
            self.allocate(input_shapes)

    def _make_interpreter(self):
        """A new interpreter for the model, not yet allocated (LiteRT prepares delegates, and fails on a
        dynamic input it cannot prepare, only when tensors are allocated)."""
        try:
            with quiet_native():  # LiteRT announces its XNNPACK delegate on stderr
                return self.runtime.api.Interpreter(
                    model_content=self.model_bytes, num_threads=self._threads,
                    experimental_delegates=self._delegates
                )
        except _LOAD_ERRORS as err:
            raise self._load_error(err) from err

    def unresolved_custom_ops(self) -> list[str] | None:
        """The model's custom ops this runtime has no kernel for, found by preparing a throwaway interpreter
        (this one stays unallocated); None when that cannot tell (it failed for another reason, e.g. a dynamic
        input it cannot prepare at its placeholder shape, or the model is compiled for the Edge TPU)."""
        names = custom_ops(self.model_bytes)
        if not names:
            return []
        if EDGETPU_OP_NAME in names:  # a second interpreter would open the Edge TPU again: not told
            return None
        try:
            with quiet_native():
                self._make_interpreter().allocate_tensors()
        except _LOAD_ERRORS as err:
            missing = re.findall(r"unresolved custom op: (\w+)", str(err))
            return sorted(set(missing)) or None
        return []

    def _load_error(self, err: Exception) -> Exception:
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        if "edgetpu-custom-op" in detail:
            return EnvironmentMissing(f"{self.path.name} needs the Edge TPU delegate", hint=EDGETPU_INSTALL_HINT)
        if "Didn't find op for builtin opcode" in detail:
            return EnvironmentMissing(
                f"runtime {self.runtime.name} {self.runtime.version} cannot run {self.path.name}: {detail}",
                hint="use ai-edge-litert (pip install ai-edge-litert), which supports current op versions",
            )
        custom = re.search(r"unresolved custom op: (\w+)", detail)
        if custom:  # e.g. MediaPipe's Landmarks2TransformMatrix: registered by MediaPipe's own runtime only
            return EnvironmentMissing(
                f"runtime {self.runtime.name} {self.runtime.version} cannot run {self.path.name}: it uses the "
                f"custom op {custom.group(1)}, which this runtime does not have",
                hint="run it where the op's implementation is registered (the framework that made the model)",
            )
        dynamic = [spec for spec in getattr(self, "inputs", ()) if spec.dynamic]
        hint = None
        if dynamic and not self.allocated:
            shapes = ", ".join(f"{spec.key} {list(spec.shape)}" for spec in dynamic)
            hint = f"dynamic inputs ({shapes}) need their shapes: --input-shape NAME:DIMS"
        return BadInput(f"runtime {self.runtime.name} {self.runtime.version} cannot load {self.path.name}: "
                        f"{detail}", hint=hint)

    @property
    def interpreter(self):
        return self._interpreter

    def _current_input_shapes(self) -> list[tuple]:
        return [tuple(int(d) for d in detail["shape"]) for detail in self._interpreter.get_input_details()]

    @property
    def input_shapes(self) -> list[tuple]:
        """The shapes the inputs are allocated at (or will be, before `allocate`)."""
        return list(self._input_shapes)

    def input_position(self, name: str) -> int:
        """The position in `inputs` of the input called `name` (its signature name or its tensor name)."""
        for by in ("signature_name", "name"):
            for position, spec in enumerate(self.inputs):
                if getattr(spec, by) == name:
                    return position
        raise BadInput(f"{self.path.name} has no input {name!r} (inputs: {', '.join(self.input_names())})")

    def input_names(self) -> list[str]:
        """Every input as users name it: 'signature_name' or the tensor name, with the other in brackets."""
        return [f"{s.key} (tensor {s.name})" if s.signature_name and s.signature_name != s.name else s.key
                for s in self.inputs]

    def allocate(self, shapes=None) -> None:
        """Resize inputs and allocate. shapes: a list aligned with `inputs` (None keeps that input's shape),
        or a dict {input name or position: shape}; None allocates at the current shapes."""
        if isinstance(shapes, dict):
            wanted = [None] * len(self.inputs)
            for name, shape in shapes.items():
                wanted[name if isinstance(name, int) else self.input_position(name)] = shape
            shapes = wanted
        try:
            for spec, shape in zip(self.inputs, shapes or ()):
                if shape is not None:
                    self._interpreter.resize_tensor_input(spec.index, [int(d) for d in shape], strict=True)
            self._input_shapes = self._current_input_shapes()
            with quiet_native():
                self._interpreter.allocate_tensors()
        except _LOAD_ERRORS as err:
            raise self._load_error(err) from None
        self.allocated = True

    def resize_inputs(self, shapes: list[tuple]) -> None:
        """Resize dynamic inputs (e.g. sequence length) and re-allocate."""
        self.allocate(shapes)

    @functools.cached_property
    def stateful(self) -> bool:
        """Does the model keep resource variables between invocations (VAR_HANDLE, ASSIGN_VARIABLE...)?"""
        try:
            return any(op["op_name"] in STATE_OPS for op in self._interpreter._get_ops_details())
        except (AttributeError, *_LOAD_ERRORS):  # a runtime without op details: assume it may
            return True

    def reset_state(self) -> None:
        """Start again from the model's initial state, keeping threads, delegates and input shapes.

        A model with resource variables (`stateful`) gets a new interpreter from the bytes in memory: LiteRT's
        `reset_all_variables()` zeroes only variable tensors (e.g. LSTM states), not resource variables (with
        ai-edge-litert 2.3 an accumulating ASSIGN_VARIABLE model kept counting after it), and their
        initializer runs once per interpreter (CALL_ONCE). Other models get `reset_all_variables()`."""
        if not self.stateful and hasattr(self._interpreter, "reset_all_variables"):
            self._interpreter.reset_all_variables()
            return
        shapes = self.input_shapes
        self._interpreter = self._make_interpreter()
        self.allocated = False
        self.allocate(shapes)

    def set_inputs(self, values: list[np.ndarray]) -> None:
        """Set every input from real-domain values (quantized here when the tensor is quantized)."""
        if len(values) != len(self.inputs):
            raise BadInput(f"{self.path.name} takes {len(self.inputs)} inputs, got {len(values)}")
        for spec, current, value in zip(self.inputs, self._input_shapes, values):  # shapes cached: per-call
            value = np.asarray(value)                                                # get_input_details is slow
            if value.shape != current:
                raise BadInput(
                    f"input {spec.name!r} of {self.path.name} has shape {list(current)}, "
                    f"got {list(value.shape)}"
                )
            if spec.dtype.kind in "iu" and not spec.quantized and value.dtype.kind not in "iu":  # integer dtypes
                raise BadInput(f"input {spec.name!r} takes integers ({spec.dtype.name}), got {value.dtype.name}")
            try:
                self._interpreter.set_tensor(spec.index, quantize(value, spec))
            except _LOAD_ERRORS as err:
                raise self._failed(err, "setting the inputs of") from None

    def invoke(self) -> None:
        try:
            self._interpreter.invoke()
        except _LOAD_ERRORS as err:  # a damaged model can load and still fail here (found by tools/fuzz_models.py)
            raise self._failed(err, "running") from None

    def _failed(self, err: Exception, doing: str) -> BadInput:
        detail = " ".join(str(err).split())[:300] or type(err).__name__
        return BadInput(f"the runtime failed {doing} {self.path.name}: {detail}",
                        hint="the model is damaged, or uses something this runtime cannot run")

    def get_outputs(self, raw: bool = False) -> list[np.ndarray]:
        """Every output, dequantized to float32 (integer non-quantized outputs are returned as they are);
        raw=True: copies of the tensors as the model holds them (quantized values not dequantized)."""
        result = []
        for spec in self.outputs:
            try:
                value = self._interpreter.get_tensor(spec.index)
            except _LOAD_ERRORS as err:
                raise self._failed(err, "reading the outputs of") from None
            dequantized = not raw and (spec.quantized or value.dtype.kind == "f")
            result.append(dequantize(value, spec) if dequantized else value.copy())
        return result

    def predict(self, *values: np.ndarray) -> list[np.ndarray]:
        """Run one inference: real-domain inputs (batch included) -> real-domain outputs."""
        self.set_inputs(list(values))
        self.invoke()
        return self.get_outputs()

    def check_manifest(self, manifest: dict | None, origin: str = "the manifest") -> None:
        """BadInput when a manifest's inputs/outputs disagree with this model's tensors (dtype, shape; -1 in
        either matches any size). The sha256 check cannot catch a manifest edited by hand, or a manifest
        borrowed from a sibling model."""
        for kind, specs in (("input", self.inputs), ("output", self.outputs)):
            described = (manifest or {}).get(f"{kind}s")
            if described is None:
                continue
            if len(described) != len(specs):
                raise BadInput(f"{origin} lists {len(described)} {kind}s but {self.path.name} has {len(specs)}")
            for spec, entry in zip(specs, described):
                shape, dtype = list(entry.get("shape", spec.shape)), entry.get("dtype", spec.dtype.name)
                fits = len(shape) == len(spec.shape) and all(
                    a == b or a == -1 or b == -1 for a, b in zip(shape, spec.shape))
                if dtype != spec.dtype.name or not fits:
                    raise BadInput(f"{origin} says {kind} {spec.name!r} is {shape} {dtype} but "
                                   f"{self.path.name} has {list(spec.shape)} {spec.dtype.name}",
                                   hint="re-run `tfedge convert`, or remove the stale manifest")

    def describe(self) -> dict:
        return {
            "path": str(self.path),
            "size_bytes": len(self.model_bytes),
            "runtime": self.runtime.name,
            "runtime_version": self.runtime.version,
            "edgetpu_custom_op": needs_edgetpu(self.model_bytes),
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
        }
