"""Guard the native runtime against damaged model files: structural checks, then a crash probe.

The TFLite interpreter is native code; a malformed flatbuffer can crash the process instead of raising.
Two layers stand in front of it:

1. `check_structure(data)`: walks the flatbuffer with the maintained schema package `tflite` (pure Python
   over `flatbuffers`) and refuses what is plainly broken: offsets and sizes outside the file, tensor,
   buffer, opcode and subgraph indices out of range, no subgraph, a constant whose size disagrees with its
   shape, a tensor larger than this machine's memory (a flipped shape byte would otherwise ask the kernel
   for gigabytes and get the process OOM-killed). The Python flatbuffers library has no verifier, so reads
   past the end (struct.error, IndexError, ValueError) become BadInput too. Cost: importing `tflite`
   (~0.3 s: its package imports every table module) plus about 0.2 ms per tensor; files that pass are
   remembered by sha256 in the cache directory, so a known file costs one sha256.
2. `probe(data, runtime)`: on first use of a file it has not seen, load + allocate + one invoke on zeros in a
   short-lived child process. A crash there (a signal) becomes BadInput instead of killing the caller; a
   clean error there is left for the in-process load to report. Files the runtime survives are remembered by
   sha256 (and runtime version) under the cache directory, so they pay once. Cost: one Python start plus
   the runtime import plus one inference (about 0.35 s for a small model on x86-64; see docs/reliability.md).

`TFEDGE_PROBE=0` turns the probe off (structural checks always run), `TFEDGE_PROBE=always` ignores both
caches; `TFEDGE_CACHE_DIR` moves the cache (default `$XDG_CACHE_HOME/tfedge` or `~/.cache/tfedge`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from .errors import BadInput

log = logging.getLogger(__name__)

TFLITE_MAGIC = b"TFL3"  # flatbuffer file identifier at bytes 4..8
SCHEMA_VERSION = 3  # tflite/schema/schema.fbs: `version` of every model since 2018
PROBE_TIMEOUT_S = float(os.environ.get("TFEDGE_PROBE_TIMEOUT", "300"))

# Bytes per element of each tflite.TensorType (schema.fbs); types absent here (STRING, INT4, RESOURCE,
# VARIANT) are not size-checked.
_ITEM_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2,
               "COMPLEX64": 8, "INT8": 1, "FLOAT64": 8, "COMPLEX128": 16, "UINT64": 8, "UINT32": 4,
               "UINT16": 2, "BFLOAT16": 2}
# What the Python flatbuffers library raises when an offset points outside the buffer.
_DAMAGE = (struct.error, IndexError, ValueError, TypeError, OverflowError, UnicodeDecodeError, AttributeError)

_trusted: set[str] = set()  # sha256 of models made in this process (by the converter): never probed
_checked: set[str] = set()  # sha256 of models whose structure passed in this process


def _damaged(name: str, what: str) -> BadInput:
    return BadInput(f"not a valid TFLite model ({what}): {name}",
                    hint="the file is truncated or damaged; copy or convert it again")


# -- 1. structural checks -------------------------------------------------------------------------------
def check_structure(data: bytes, name: str = "model") -> None:
    """Raise BadInput when `data` is not a structurally sound TFLite flatbuffer."""
    if len(data) < 8:
        raise BadInput(f"not a TFLite model (file is {len(data)} bytes): {name}")
    if data[4:8] != TFLITE_MAGIC:
        raise BadInput(f"not a TFLite model (no TFL3 identifier): {name}")
    digest = hashlib.sha256(data).hexdigest()
    entry = cache_dir() / "probed" / f"{digest}.structure"
    if digest in _checked or digest in _trusted or (probe_mode() != "always" and entry.exists()):
        return  # known good: skip the walk and the `tflite` import (~0.3 s of a cold start)
    try:
        _walk(data, name)
    except BadInput:
        raise
    except _DAMAGE as err:
        kind = "struct.error" if isinstance(err, struct.error) else type(err).__name__
        raise _damaged(name, f"an offset or length points outside the file: {kind}") from None
    _checked.add(digest)
    _remember(entry)


def _count(length: int, data: bytes, what: str, name: str) -> int:
    """A vector length that cannot be real (more elements than 4-byte slots in the file) is damage, and
    walking it would take forever."""
    if length < 0 or length * 4 > len(data):
        raise _damaged(name, f"{what} count {length} exceeds the file")
    return length


def _indices(values, limit: int, what: str, name: str, optional: bool = False) -> None:
    low = -1 if optional else 0
    for value in (values if not isinstance(values, int) else ()):
        if not low <= int(value) < limit:
            raise _damaged(name, f"{what} index {int(value)} out of range 0..{limit - 1}")


def _ints(vector) -> list:
    """A flatbuffers *AsNumpy result (0 when absent) as a list of ints."""
    return [] if isinstance(vector, int) else [int(v) for v in vector]


def _length(vector) -> int:
    return 0 if isinstance(vector, int) else len(vector)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 40


def _walk(data: bytes, name: str) -> None:
    import tflite

    root = struct.unpack_from("<I", data, 0)[0]
    if root + 4 > len(data):
        raise _damaged(name, f"root offset {root} beyond the file")
    model = tflite.Model.GetRootAsModel(data, 0)
    if model.Version() != SCHEMA_VERSION:
        raise _damaged(name, f"schema version {model.Version()}, expected {SCHEMA_VERSION}")
    type_names = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

    opcode_count = _count(model.OperatorCodesLength(), data, "operator code", name)
    for i in range(opcode_count):
        code = model.OperatorCodes(i)
        if max(code.DeprecatedBuiltinCode(), code.BuiltinCode()) < 0:
            raise _damaged(name, f"negative builtin code in operator code {i}")
        code.CustomCode()  # a string read past the end raises here
    buffer_sizes = _buffer_sizes(model, data, name)

    subgraph_count = _count(model.SubgraphsLength(), data, "subgraph", name)
    if subgraph_count == 0:
        raise _damaged(name, "no subgraphs")
    memory = _memory_bytes()
    for s in range(subgraph_count):
        subgraph = model.Subgraphs(s)
        tensor_count = _count(subgraph.TensorsLength(), data, "tensor", name)
        for t in range(tensor_count):
            _check_tensor(subgraph.Tensors(t), t, buffer_sizes, type_names, memory, name)
        _indices(subgraph.InputsAsNumpy(), tensor_count, f"subgraph {s} input tensor", name)
        _indices(subgraph.OutputsAsNumpy(), tensor_count, f"subgraph {s} output tensor", name)
        for o in range(_count(subgraph.OperatorsLength(), data, "operator", name)):
            op = subgraph.Operators(o)
            _indices([op.OpcodeIndex()], opcode_count, f"operator {o} opcode", name)
            for vector in (op.InputsAsNumpy(), op.OutputsAsNumpy(), op.IntermediatesAsNumpy()):
                _indices(vector, tensor_count, f"operator {o} tensor", name, optional=True)
            op.CustomOptionsAsNumpy()  # bounds-checked by numpy
    for i in range(_count(model.SignatureDefsLength(), data, "signature", name)):
        signature = model.SignatureDefs(i)
        _indices([signature.SubgraphIndex()], subgraph_count, f"signature {i} subgraph", name)
        tensors = model.Subgraphs(signature.SubgraphIndex()).TensorsLength()
        for vector, length in (("Inputs", signature.InputsLength()), ("Outputs", signature.OutputsLength())):
            for j in range(_count(length, data, "signature tensor", name)):
                index = getattr(signature, vector)(j).TensorIndex()
                _indices([index], tensors, f"signature {i} tensor", name)
    for i in range(_count(model.MetadataLength(), data, "metadata", name)):
        _indices([model.Metadata(i).Buffer()], len(buffer_sizes), f"metadata {i} buffer", name)


def _buffer_sizes(model, data: bytes, name: str) -> list[int]:
    """Bytes of constant data per buffer, each checked to lie inside the file."""
    sizes = []
    for i in range(_count(model.BuffersLength(), data, "buffer", name)):
        buffer = model.Buffers(i)
        length = buffer.DataLength()
        if length:
            start = buffer._tab.Vector(buffer._tab.Offset(4))
            if start + length > len(data):
                raise _damaged(name, f"buffer {i} ({length} bytes at {start}) extends past the file's end")
        offset, size = buffer.Offset(), buffer.Size()
        if offset > 1:  # models over 2 GB keep buffers after the flatbuffer (schema.fbs `offset`/`size`)
            if offset + size > len(data):
                raise _damaged(name, f"buffer {i} ({size} bytes at {offset}) extends past the file's end")
            length = size
        sizes.append(length)
    return sizes


def _check_tensor(tensor, index, buffer_sizes, type_names, memory, name) -> None:
    buffer = tensor.Buffer()
    _indices([buffer], max(len(buffer_sizes), 1), f"tensor {index} buffer", name)
    shape = _ints(tensor.ShapeAsNumpy())
    _ints(tensor.ShapeSignatureAsNumpy())
    tensor.Name()
    if any(d < 0 for d in shape):
        raise _damaged(name, f"tensor {index} has a negative dimension in shape {shape}")
    item = _ITEM_BYTES.get(type_names.get(tensor.Type(), ""), 0)
    elements = 1
    for d in shape:
        elements *= d
    if item and elements * item > memory:
        raise BadInput(f"tensor {index} of {name} would need {elements * item / 1e9:.1f} GB, more than this "
                       f"machine's {memory / 1e9:.1f} GB (shape {shape}): damaged or not for this device")
    constant = buffer_sizes[buffer] if buffer < len(buffer_sizes) else 0
    if constant and item and tensor.Sparsity() is None and constant != elements * item:
        raise _damaged(name, f"tensor {index} holds {constant} bytes, shape {shape} needs {elements * item}")
    quantization = tensor.Quantization()
    if quantization is not None:
        scales = _length(quantization.ScaleAsNumpy())  # *AsNumpy reads are bounds-checked by numpy
        zero_points = _length(quantization.ZeroPointAsNumpy())
        if scales and zero_points and zero_points not in (1, scales):
            raise _damaged(name, f"tensor {index} has {scales} scales but {zero_points} zero points")
        if scales > 1 and not 0 <= quantization.QuantizedDimension() < max(len(shape), 1):
            raise _damaged(name, f"tensor {index} quantized dimension {quantization.QuantizedDimension()} "
                                 f"outside its shape {shape}")


# -- 2. the crash probe -----------------------------------------------------------------------------------
def read_model_bytes(path: str | os.PathLike) -> bytes:
    """Read a .tflite file, refusing what is not one or is damaged before the native runtime sees it
    (check_structure: identifier, offsets, indices and sizes)."""
    path = Path(path)
    if path.is_dir():
        raise BadInput(f"model path is a directory, not a .tflite file: {path}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"model file not found: {path}") from None
    check_structure(data, str(path))
    return data


def trust(model_bytes: bytes) -> None:
    """Mark bytes made in this process (the TFLite converter's output) as safe to load without a probe."""
    _trusted.add(hashlib.sha256(model_bytes).hexdigest())


def probe_mode() -> str:
    value = os.environ.get("TFEDGE_PROBE", "auto").strip().lower()
    if value in ("0", "off", "no", "false"):
        return "off"
    return "always" if value == "always" else "auto"


def cache_dir() -> Path:
    if os.environ.get("TFEDGE_CACHE_DIR"):
        return Path(os.environ["TFEDGE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "tfedge"


def _cache_entry(digest: str, runtime) -> Path:
    return cache_dir() / "probed" / f"{digest}.{runtime.name}-{runtime.version}"


def _remember(entry: Path) -> None:
    from .fileio import write_text

    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_text(entry, "ok\n")
    except (OSError, BadInput) as err:  # a read-only device: the probe simply runs again next time
        log.debug("cannot cache the probe result in %s: %s", entry.parent, err)


def probe(data: bytes, runtime, name: str = "model") -> float | None:
    """Load, allocate and invoke `data` once in a child process, unless known good. Returns the probe's
    seconds (None when skipped). Raises BadInput when the runtime crashed or hung on it."""
    mode = probe_mode()
    if mode == "off":
        return None
    digest = hashlib.sha256(data).hexdigest()
    entry = _cache_entry(digest, runtime)
    if digest in _trusted or (mode == "auto" and entry.exists()):
        return None
    if not sys.executable:  # an embedded interpreter: no child can be started
        log.warning("cannot probe %s (no Python executable); loading it unprobed", name)
        return None
    started = time.perf_counter()
    package_root = str(Path(__file__).resolve().parents[1])  # the child imports this very package
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "TFEDGE_RUNTIME": runtime.name, "TFEDGE_PROBE": "0", "PYTHONPATH": path}
    try:
        child = subprocess.run([sys.executable, "-m", __name__], check=False, input=data, capture_output=True,
                               env=env, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BadInput(f"the runtime did not finish loading {name} within {PROBE_TIMEOUT_S:.0f} s (probe)",
                       hint="set TFEDGE_PROBE_TIMEOUT=SECONDS for a very large model") from None
    except OSError as err:  # cannot fork (memory) or exec: degrade to loading unprobed, and say so
        log.warning("cannot probe %s (%s); loading it unprobed", name, err)
        return None
    seconds = time.perf_counter() - started
    log.debug("probe of %s: exit %s in %.3f s", name, child.returncode, seconds)
    if child.returncode < 0:
        raise BadInput(f"the runtime crashed loading {name} ({_signal_name(-child.returncode)}); "
                       f"refused: the file is damaged or hostile",
                       hint="copy or convert the model again")
    if child.returncode != 0 or "ok" not in _outcome(child.stdout):
        last = (child.stderr.decode("utf-8", "replace").strip().splitlines() or [""])[-1][:200]
        raise BadInput(f"the runtime failed loading {name} in the probe (exit {child.returncode}: {last})",
                       hint="copy or convert the model again")
    # The runtime survived: it loaded, or raised a Python error that the in-process load raises again as
    # one line (an invoke on zeros may fail where real inputs do not, e.g. a DIV by an all-zero mask).
    _remember(entry)
    return seconds


def vet(path, edgetpu: bool = False) -> None:
    """Structure check and (CPU models) crash probe of the file at `path`, as `Model(path)` does first; a
    caller that times Model(path) (benchmark Init) calls this before starting the clock."""
    from .runtime import get_runtime

    data = read_model_bytes(path)  # runs check_structure
    if not edgetpu:
        probe(data, get_runtime(), Path(path).name)


def _outcome(stdout: bytes) -> dict:
    try:
        lines = stdout.decode("utf-8", "replace").strip().splitlines()
        return json.loads(lines[-1]) if lines else {}
    except (json.JSONDecodeError, IndexError):
        return {}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _probe_child() -> int:
    """The child: model bytes on stdin; prints one JSON line {"ok": bool, "error": str|None}."""
    import numpy as np

    from .quiet import quiet_native
    from .runtime import get_runtime

    data = sys.stdin.buffer.read()
    try:
        with quiet_native():
            interpreter = get_runtime().api.Interpreter(model_content=data)
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
            interpreter.invoke()
    except Exception as err:  # noqa: BLE001 - any Python-level error is a clean error, reported in-process
        print(json.dumps({"ok": False, "error": f"{type(err).__name__}: {str(err)[:200]}"}))
        return 0
    print(json.dumps({"ok": True, "error": None}))
    return 0


if __name__ == "__main__":
    sys.exit(_probe_child())
