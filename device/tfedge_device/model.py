"""A loaded TFLite model: its input/output tensors, quantization, and one `predict` path.

This is the one inference path of tfedge: the host's verification and benchmarks and the device CLI all
run models through `Model`. Values going in and out are in the model's *real* domain (float, after
preprocessing); quantized tensors are quantized/dequantized here with the tensor's scale and zero-point.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import runtime as runtimes  # runtimes.load_edgetpu_delegate looked up per call: the one delegate seam
from .errors import BadInput, EnvironmentMissing
from .guard import TFLITE_MAGIC, probe, read_model_bytes  # noqa: F401 - re-exported
from .quiet import quiet_native
from .runtime import EDGETPU_INSTALL_HINT, Runtime, get_runtime

EDGETPU_CUSTOM_OP = b"edgetpu-custom-op"
# What the runtime's Python layer raises on a damaged model it did not crash on (names it cannot decode...).
_LOAD_ERRORS = (ValueError, RuntimeError, UnicodeDecodeError, TypeError, IndexError, KeyError)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor. shape: tuple of ints (-1 where dynamic); dtype: numpy dtype."""

    name: str
    index: int
    shape: tuple
    dtype: np.dtype
    scale: float = 0.0
    zero_point: int = 0

    @property
    def quantized(self) -> bool:
        return self.scale != 0.0 and np.issubdtype(self.dtype, np.integer)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": np.dtype(self.dtype).name,
            "scale": self.scale,
            "zero_point": self.zero_point,
        }

    @classmethod
    def from_detail(cls, detail: dict) -> TensorSpec:
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
        )


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


def needs_edgetpu(model_bytes: bytes) -> bool:
    """True when the model was compiled by edgetpu_compiler: one of its operator codes is the custom op
    `edgetpu-custom-op` (coral.ai/docs/edgetpu/compiler), read from the flatbuffer with the `tflite` schema
    package. The name anywhere else (a buffer, metadata, a tensor name) does not count. A file without those
    bytes at all is answered without parsing, so a CPU model's cold start does not import `tflite`."""
    if EDGETPU_CUSTOM_OP not in model_bytes:
        return False
    import tflite

    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    codes = (model.OperatorCodes(i) for i in range(model.OperatorCodesLength()))
    return any(code.CustomCode() == EDGETPU_CUSTOM_OP for code in codes)


class Model:
    """A TFLite model loaded in the selected runtime.

    Args:
      path: the .tflite file.
      threads: interpreter threads (None: the runtime's default).
      edgetpu: load the Edge TPU delegate (needed for *_edgetpu.tflite models).
      runtime: a Runtime (default: get_runtime()).
    """

    def __init__(self, path, threads: int | None = None, edgetpu: bool = False, runtime: Runtime | None = None):
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
        self._interpreter = self._make_interpreter(threads, delegates)
        try:
            self.inputs = [TensorSpec.from_detail(d) for d in self._interpreter.get_input_details()]
            self.outputs = [TensorSpec.from_detail(d) for d in self._interpreter.get_output_details()]
            self._input_shapes = self._current_input_shapes()
        except _LOAD_ERRORS as err:
            raise BadInput(f"the runtime cannot read the tensors of {self.path.name}: {type(err).__name__}",
                           hint="the file is damaged; copy or convert it again") from None

    def _make_interpreter(self, threads, delegates):
        try:
            with quiet_native():  # LiteRT announces its XNNPACK delegate on stderr
                interpreter = self.runtime.api.Interpreter(
                    model_content=self.model_bytes, num_threads=threads, experimental_delegates=delegates
                )
                interpreter.allocate_tensors()
        except _LOAD_ERRORS as err:
            detail = " ".join(str(err).split())[:300] or type(err).__name__
            if "edgetpu-custom-op" in detail:
                raise EnvironmentMissing(
                    f"{self.path.name} needs the Edge TPU delegate", hint=EDGETPU_INSTALL_HINT
                ) from err
            if "Didn't find op for builtin opcode" in detail:
                raise EnvironmentMissing(
                    f"runtime {self.runtime.name} {self.runtime.version} cannot run {self.path.name}: {detail}",
                    hint="use ai-edge-litert (pip install ai-edge-litert), which supports current op versions",
                ) from err
            raise BadInput(f"runtime {self.runtime.name} {self.runtime.version} cannot load {self.path.name}: "
                           f"{detail}") from err
        return interpreter

    @property
    def interpreter(self):
        return self._interpreter

    def _current_input_shapes(self) -> list[tuple]:
        return [tuple(int(d) for d in detail["shape"]) for detail in self._interpreter.get_input_details()]

    def resize_inputs(self, shapes: list[tuple]) -> None:
        """Resize dynamic inputs (e.g. sequence length) and re-allocate."""
        for spec, shape in zip(self.inputs, shapes):
            self._interpreter.resize_tensor_input(spec.index, list(shape), strict=True)
        self._interpreter.allocate_tensors()
        self._input_shapes = self._current_input_shapes()

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

    def get_outputs(self) -> list[np.ndarray]:
        """Every output, dequantized to float32 (integer non-quantized outputs are returned as they are)."""
        result = []
        for spec in self.outputs:
            try:
                raw = self._interpreter.get_tensor(spec.index)
            except _LOAD_ERRORS as err:
                raise self._failed(err, "reading the outputs of") from None
            result.append(dequantize(raw, spec) if spec.quantized or raw.dtype.kind == "f" else raw.copy())
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
