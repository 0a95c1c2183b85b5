"""Can a device runtime run this model? Op versions the model needs against the runtime's release.

Three sources, most authoritative first:
  1. the runtimes installed here: load the model in each (the runtime's own op resolver answers);
  2. the converter's `min_runtime_version` metadata (TFLite's versioning code writes it into every model
     from the op versions it emitted) — the runtime itself never compares it before loading: we do;
  3. per op, the release that introduced each op version (OP_RELEASES below), to name the culprit.
A runtime that is not installed here is judged by its release (tflite-runtime X.Y.Z is TensorFlow X.Y's
kernels; LiteRT embeds the TensorFlow version it was built from, read from its library).
"""

from __future__ import annotations

import functools
import importlib.util
import re
from pathlib import Path

# {op: minimum runtime release per op version, version 1 first; "-" = no such version}.
# Data from TensorFlow's tensorflow/lite/tools/versioning/runtime_version.cc
# (FindMinimumRuntimeVersionForOp), as of the TF 2.18 development line. Op versions newer than this table
# are reported as "unknown to tfedge's table" and the model's min_runtime_version metadata decides.
_OP_RELEASES_TEXT = """
AVERAGE_POOL_2D 1.5.0 1.14.0 2.3.0
BATCH_MATMUL 2.3.0 2.3.0 2.4.0 2.5.0
BROADCAST_TO - 2.5.0 2.5.0
CONV_2D 1.5.0 1.14.0 1.14.0 2.3.0 2.4.0 2.9.0 2.11.0 2.15.0
DEPTHWISE_CONV_2D 1.5.0 1.12.0 1.14.0 2.2.0 2.3.0 2.3.0 2.11.0
ADD 1.5.0 1.14.0 2.4.0 2.6.0 2.13.0
ADD_N 1.14.0
SPACE_TO_BATCH_ND 1.6.0 1.14.0 2.3.0 2.12.0
SUB 1.6.0 1.14.0 2.3.0 2.4.0 2.4.0
DENSIFY 2.2.0
DIV 1.6.0 2.3.0
BATCH_TO_SPACE_ND 1.6.0 1.14.0 2.3.0 2.12.0
CAST 1.5.0 2.7.0 2.8.0 2.9.0 2.12.0 2.15.0
CONCATENATION 1.5.0 1.14.0 2.3.0 2.14.0
DEPTH_TO_SPACE 2.1.0 2.5.0
EMBEDDING_LOOKUP 1.13.0 1.14.0 1.14.0 2.18.0
EMBEDDING_LOOKUP_SPARSE 1.5.0
FAKE_QUANT 1.5.0 1.10.0
FULLY_CONNECTED 1.5.0 1.10.0 1.14.0 1.14.0 2.0.0 2.1.0 2.3.0 2.3.0 2.3.0 2.11.0 2.15.0 2.17.0 2.18.0
GATHER 1.6.0 1.14.0 1.15.0 2.4.0 2.5.0 2.13.0 2.15.0
GATHER_ND 1.14.0 2.3.0 2.5.0 2.13.0 2.16.0
HASHTABLE_LOOKUP 1.5.0
SVDF 1.5.0 1.14.0 2.2.0 2.3.0
L2_NORMALIZATION 1.5.0 1.14.0
L2_POOL_2D 1.5.0
LOCAL_RESPONSE_NORMALIZATION 1.5.0
MAX_POOL_2D 1.5.0 1.14.0 2.3.0
MAXIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MINIMUM 1.14.0 1.14.0 2.3.0 2.3.0
MUL 1.5.0 1.14.0 1.15.0 2.3.0 2.6.0 2.11.0 2.13.0
NON_MAX_SUPPRESSION_V4 2.1.0
NON_MAX_SUPPRESSION_V5 2.1.0
PAD 1.5.0 1.14.0 2.4.0 2.6.0
TILE 1.10.1 2.2.0 2.8.0
PADV2 1.9.0 1.14.0 2.4.0 2.6.0
RESHAPE 1.5.0
SOFTMAX 1.5.0 1.14.0 2.3.0
SPACE_TO_DEPTH 1.5.0 1.14.0
TRANSPOSE 1.6.0 1.14.0 1.15.0 2.3.0 2.4.0 2.12.0
LSTM 1.7.0 1.10.0 1.14.0 2.3.0
UNIDIRECTIONAL_SEQUENCE_LSTM 1.13.1 1.14.0 2.3.0 2.12.0
BIDIRECTIONAL_SEQUENCE_LSTM 1.14.0 1.14.0 1.14.0
BIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
MEAN 1.6.0 1.14.0 2.4.0
SUM 1.10.0 1.15.0
REDUCE_MAX 1.11.0 1.14.0 2.5.0
REDUCE_MIN 1.11.0 1.14.0 2.5.0
REDUCE_PROD 1.11.0 2.6.0
REDUCE_ANY 1.11.0
RELU6 1.5.0 1.14.0 2.5.0
RESIZE_BILINEAR 1.7.0 1.14.0 2.2.0 2.5.0
RESIZE_NEAREST_NEIGHBOR 1.13.1 1.14.0 2.3.0 2.4.0
RNN 1.5.0 1.14.0 2.3.0
SKIP_GRAM 1.5.0
SQUEEZE 1.6.0 2.5.0
SPLIT 1.5.0 1.14.0 1.14.0 2.3.0
SPLIT_V 1.13.1 2.3.0
STRIDED_SLICE 1.6.0 1.14.0 2.1.0 2.2.0 2.5.0 2.6.0 2.14.0 2.14.0
TOPK_V2 1.7.0 1.14.0 2.13.0
ARG_MAX 1.9.0 1.14.0 2.9.0
ARG_MIN 1.9.0 1.14.0 2.9.0
TRANSPOSE_CONV 1.9.0 2.2.0 2.3.0 2.13.0 2.15.0
SPARSE_TO_DENSE 1.9.0 1.14.0 1.15.0
EXPAND_DIMS 1.10.0
PACK 1.11.0 1.14.0 2.3.0 2.13.0
SHAPE 1.10.0
SLICE 1.14.0 1.14.0 1.14.0 2.4.0 2.5.0 2.14.0
TANH 1.14.0 1.14.0 2.3.0
ONE_HOT 1.11.0
UNPACK 1.11.0 1.14.0 2.2.0 2.3.0
LEAKY_RELU 1.13.1 2.3.0
LOGISTIC 1.14.0 1.14.0 2.3.0
LOG_SOFTMAX 1.14.0 1.14.0
LSH_PROJECTION 1.5.0
SQUARED_DIFFERENCE 1.13.1 2.5.0
MIRROR_PAD 1.13.1 2.3.0 2.12.0
UNIQUE 1.14.0
UNIDIRECTIONAL_SEQUENCE_RNN 1.14.0 1.14.0 2.3.0
WHERE 1.14.0 2.8.0
DEQUANTIZE 1.13.1 1.14.0 1.15.0 2.2.0 2.7.0 2.18.0
REVERSE_SEQUENCE 1.14.0
EQUAL 1.14.0 1.14.0 2.3.0 2.13.0
NOT_EQUAL 1.14.0 1.14.0 2.3.0
GREATER 1.14.0 1.14.0
GREATER_EQUAL 1.14.0 1.14.0 2.13.0
LESS 1.14.0 1.14.0 2.13.0
LESS_EQUAL 1.14.0 1.14.0
SCATTER_ND 2.1.0
SEGMENT_SUM 2.2.0
SELECT 1.14.0 1.14.0 2.12.0 2.12.0
SELECT_V2 2.2.0 2.12.0
IF 1.15.0
FLOOR_DIV 1.14.0 1.14.0 2.13.0
FLOOR 1.9.0
CEIL 1.14.0
MATRIX_DIAG 1.14.0
MATRIX_SET_DIAG 1.14.0
ELU 1.14.0
QUANTIZE 1.14.0 1.15.0 2.7.0
ROUND 1.14.0
RELU 1.5.0 2.1.0 2.5.0
RELU_N1_TO_1 1.5.0
RELU_0_TO_1 2.10.0
PRELU 1.8.0
EXP 1.7.0 2.12.0
COS 1.14.0
NEG 1.9.0
POW 1.10.0
LOGICAL_OR 1.11.0
LOGICAL_AND 1.11.0
LOGICAL_NOT 1.11.0
FLOOR_MOD 1.13.0 2.13.0
RANGE 1.13.0 2.14.0
SIN 1.9.0
LOG 1.14.0 2.15.0
SQRT 1.10.0
RSQRT 1.10.0 2.5.0 2.15.0
SQUARE 1.12.0
ZEROS_LIKE 1.12.0
ABS 1.13.0 2.4.0 2.5.0 2.6.0 2.12.0
HARD_SWISH 1.15.0
FILL 1.13.0 2.3.0 2.5.0 2.12.0
REVERSE_V2 1.14.0 2.2.0 2.5.0
RANK 1.14.0
WHILE 1.15.0
CUMSUM 2.4.0
CALL_ONCE 2.5.0
RFFT2D 2.5.0
CONV_3D 2.5.0
IMAG 2.5.0
REAL 2.5.0
COMPLEX_ABS 2.5.0
HASHTABLE 2.5.0
HASHTABLE_FIND 2.5.0
HASHTABLE_IMPORT 2.5.0
HASHTABLE_SIZE 2.5.0
REDUCE_ALL 2.6.0
CONV_3D_TRANSPOSE 2.6.0
VAR_HANDLE 2.6.0
READ_VARIABLE 2.6.0
ASSIGN_VARIABLE 2.6.0
BROADCAST_ARGS 2.6.0
RANDOM_STANDARD_NORMAL 2.8.0
BUCKETIZE 2.8.0
RANDOM_UNIFORM 2.8.0
MULTINOMIAL 2.8.0
GELU 2.9.0 2.9.0
DYNAMIC_UPDATE_SLICE 2.9.0 2.17.0
UNSORTED_SEGMENT_PROD 2.10.0
UNSORTED_SEGMENT_MAX 2.10.0
UNSORTED_SEGMENT_MIN 2.11.0
UNSORTED_SEGMENT_SUM 2.10.0
ATAN2 2.10.0
SIGN 2.11.0 2.12.0
BITCAST 2.13.0
BITWISE_XOR 2.13.0
RIGHT_SHIFT 2.13.0
STABLEHLO_SCATTER 2.15.0
DILATE 2.15.0
STABLEHLO_RNG_BIT_GENERATOR 2.15.0
REDUCE_WINDOW 2.15.0
STABLEHLO_GATHER 2.16.0
STABLEHLO_ADD 2.16.0
STABLEHLO_MULTIPLY 2.16.0
STABLEHLO_REDUCE_WINDOW 2.16.0
STABLEHLO_MAXIMUM 2.16.0
STABLEHLO_MINIMUM 2.16.0
STABLEHLO_PAD 2.16.0
STABLEHLO_COMPOSITE 2.17.0
STABLEHLO_CBRT 2.17.0
"""

OP_RELEASES: dict[str, tuple] = {
    line.split()[0]: tuple(None if r == "-" else r for r in line.split()[1:])
    for line in _OP_RELEASES_TEXT.strip().splitlines()
}

# Device runtimes and the TensorFlow release their kernels come from when they are not installed here.
# tflite-runtime: its version is the TF release it was cut from; 2.14.0 (2023) is its last PyPI release.
# LiteRT: read from the installed library (see litert_tf_release); no claim is made without it.
LAST_KNOWN_RELEASE = {"tflite-runtime": "2.14.0", "litert": None}


def parse_release(text: str | None) -> tuple | None:
    """'2.17.0' -> (2, 17, 0); '2.22.0-dev0+selfbuilt' -> (2, 22, 0); junk -> None."""
    match = re.match(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    return tuple(int(part or 0) for part in match.groups()) if match else None


def op_release(op: str, version: int) -> str | None:
    """The first runtime release with `op` at `version`, or None when the table does not know it."""
    releases = OP_RELEASES.get(op, ())
    return releases[version - 1] if 0 < version <= len(releases) else None


def required_release(ops: list[tuple[str, int]], metadata_min: str | None) -> dict:
    """What the model needs: per op version, the release; overall, the newest of those and the metadata."""
    needs, unknown = [], []
    for op, version in sorted(set(ops)):
        release = op_release(op, version)
        if release is None:
            unknown.append(f"{op} v{version}")
        else:
            needs.append({"op": op, "version": version, "release": release})
    candidates = [n["release"] for n in needs] + ([metadata_min] if parse_release(metadata_min) else [])
    overall = max(candidates, key=parse_release, default=None)
    return {"min_release": overall, "metadata_min_runtime_version": metadata_min, "ops": needs,
            "unknown_to_table": unknown}


@functools.cache
def litert_tf_release() -> str | None:
    """The TensorFlow release LiteRT was built from: its common library embeds the version string
    (e.g. '2.22.0-dev0+selfbuilt' in ai-edge-litert 2.3.0). None when not found."""
    spec = importlib.util.find_spec("ai_edge_litert")
    if spec is None or not spec.submodule_search_locations:
        return None
    library = Path(next(iter(spec.submodule_search_locations))) / "libpywrap_litert_common.so"
    if not library.is_file():
        return None
    # several version-like strings live in the library (e.g. hwloc's); TensorFlow's is the newest
    found = re.findall(rb"\x00(2\.\d{1,2}\.\d{1,2}(?:-[a-z0-9]+)?(?:\+[a-z]+)?)\x00", library.read_bytes())
    return max((v.decode() for v in found), key=parse_release, default=None)


def runtime_release(runtime) -> str | None:
    if runtime.name == "litert":
        return litert_tf_release()
    return runtime.version if runtime.version != "unknown" else LAST_KNOWN_RELEASE.get(runtime.name)


def probe(model_path: str | Path, runtime) -> tuple[bool, str]:
    """Load the model in an installed runtime: (loads, reason)."""
    from tfedge_device.errors import TfedgeError
    from tfedge_device.model import Model

    try:
        Model(model_path, runtime=runtime)
    except TfedgeError as err:
        return False, err.message
    return True, "loaded and allocated"


def check(model_path: str | Path, ops: list[tuple[str, int]], metadata_min: str | None,
          edgetpu_model: bool = False) -> dict:
    """Per supported device runtime: can it run the model, and why (see the module docstring)."""
    from tfedge_device.runtime import RUNTIMES

    needs = required_release(ops, metadata_min)
    wanted = parse_release(needs["min_release"])
    verdicts = []
    for runtime in RUNTIMES:
        installed = importlib.util.find_spec(runtime.module.split(".")[0]) is not None
        release = runtime_release(runtime) if installed else LAST_KNOWN_RELEASE.get(runtime.name)
        too_new = [f"{n['op']} v{n['version']} (needs {n['release']})" for n in needs["ops"]
                   if parse_release(release) and parse_release(n["release"]) > parse_release(release)]
        verdict = {"runtime": runtime.name, "installed": installed,
                   "version": runtime.version if installed else None, "tf_release": release,
                   "method": "loaded here" if installed and not edgetpu_model else "release table",
                   "ok": None, "reason": ""}
        if installed and not edgetpu_model:
            verdict["ok"], verdict["reason"] = probe(model_path, runtime)
        elif parse_release(release) is None or wanted is None:
            verdict["reason"] = "release unknown: install it here to check by loading the model"
        elif wanted > parse_release(release):
            verdict["ok"] = False
            verdict["reason"] = (f"model needs TFLite runtime {needs['min_release']}, {runtime.name} has {release}"
                                 + (f": {', '.join(too_new)}" if too_new else ""))
        else:
            verdict["ok"] = True
            verdict["reason"] = f"needs {needs['min_release']}, has {release}"
        if edgetpu_model:
            verdict["reason"] += "; and on the device the Edge TPU delegate (libedgetpu) with a Coral attached"
        verdicts.append(verdict)
    return {**needs, "runtimes": verdicts}
