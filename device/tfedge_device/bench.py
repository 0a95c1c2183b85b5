"""Latency and memory of one model, measured like TFLite's benchmark_model. The one measurement core:
`tfedge-run bench` and the host's `tfedge bench` both call `benchmark`.

Method (tensorflow/lite/tools/benchmark/benchmark_model.cc): load the model (Init), fill the inputs once
with random values, time the first inference, `warmup` more untimed-for-the-statistics runs (their average
is "Warmup (avg)"), then `runs` timed invocations. Only `invoke` is timed, as benchmark_model does; times
are in microseconds. Memory is the process's peak RSS, which the tool itself contributes to: approximate.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time

import numpy as np

from .doctor import GOVERNOR_FIX, governor_warning
from .guard import vet
from .model import Model

log = logging.getLogger(__name__)

MEMORY_NOTE = (
    "approximate: peak resident memory of the whole process (Python, numpy and the runtime "
    "included), as benchmark_model says of its own figures"
)
PERCENTILES = (50, 90, 99)


def rss_mb() -> float:
    """Current resident memory of this process in MB (Linux /proc; 0.0 where unavailable)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (ru_maxrss: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def random_inputs(model: Model, seed: int = 0) -> list[np.ndarray]:
    """Random real-domain values for every input at its current shape (benchmark_model fills randomly too).

    Quantized inputs get values spanning the dtype's range; floats [0, 1); plain integers (token ids) 0..99.
    """
    rng = np.random.default_rng(seed)
    values = []
    for spec, detail in zip(model.inputs, model.interpreter.get_input_details()):
        shape = tuple(int(d) for d in detail["shape"])
        if spec.quantized:
            info = np.iinfo(spec.dtype)
            raw = rng.integers(info.min, info.max, size=shape, endpoint=True)
            values.append(((raw - spec.zero_point) * spec.scale).astype(np.float32))
        elif np.issubdtype(spec.dtype, np.integer):
            values.append(rng.integers(0, 100, size=shape).astype(spec.dtype))
        elif spec.dtype == np.bool_:
            values.append(rng.integers(0, 2, size=shape).astype(np.bool_))
        else:
            values.append(rng.random(shape, dtype=np.float32).astype(spec.dtype))
    return values


def timing_stats(times_us: list[float]) -> dict:
    """benchmark_model's statistics (count, first, min, max, avg, std) plus percentiles, in microseconds."""
    data = np.asarray(times_us, dtype=np.float64)
    stats = {
        "count": int(data.size),
        "first": float(data[0]),
        "min": float(data.min()),
        "max": float(data.max()),
        "avg": float(data.mean()),
        "std": float(data.std()),
    }
    stats.update({f"p{q}": float(np.percentile(data, q)) for q in PERCENTILES})
    return {key: (round(value, 1) if isinstance(value, float) else value) for key, value in stats.items()}


def _timed_invoke(model: Model) -> float:
    started = time.perf_counter()
    model.invoke()
    return (time.perf_counter() - started) * 1e6


def benchmark(
    model, runs: int = 50, warmup: int = 5, threads: int | None = None, edgetpu: bool = False
) -> dict:
    """Measure `model` (a Model, or a .tflite path loaded here so Init is timed too).

    Returns a dict: model_size_bytes, init_us (None when a loaded Model was given), first_inference_us,
    warmup_avg_us, inference (timing_stats of the `runs` timed invocations), rss_start_mb, peak_rss_mb,
    memory_note, runtime, warnings.
    """
    if runs < 1 or warmup < 0:
        from .errors import BadInput

        raise BadInput(f"runs must be >= 1 and warmup >= 0 (got runs={runs}, warmup={warmup})")
    rss_start = rss_mb()
    init_us = None
    if not isinstance(model, Model):
        vet(model, edgetpu)  # the guard's one-off crash probe is not part of Init (guard.py)
        started = time.perf_counter()
        model = Model(model, threads=threads, edgetpu=edgetpu)
        init_us = round((time.perf_counter() - started) * 1e6, 1)
    rss_init = rss_mb()
    model.set_inputs(random_inputs(model))
    first_us = _timed_invoke(model)
    warmup_us = [_timed_invoke(model) for _ in range(warmup)]
    timed_us = [_timed_invoke(model) for _ in range(runs)]
    warnings = [f"{w} ({GOVERNOR_FIX})" for w in (governor_warning(),) if w]
    for warning in warnings:
        log.warning(warning)
    return {
        "model_size_bytes": len(model.model_bytes),
        "runtime": f"{model.runtime.name} {model.runtime.version}",
        "edgetpu": model.edgetpu,
        "init_us": init_us,
        "first_inference_us": round(first_us, 1),
        "warmup_avg_us": round(float(np.mean(warmup_us)), 1) if warmup_us else None,
        "inference": timing_stats(timed_us),
        "rss_start_mb": round(rss_start, 2),
        "rss_after_init_mb": round(rss_init, 2),
        "peak_rss_mb": round(peak_rss_mb(), 2),
        "memory_note": MEMORY_NOTE,
        "warnings": warnings,
    }


def _us(value) -> str:
    return "n/a" if value is None else f"{value:g}"


def format_result(result: dict) -> str:
    """benchmark_model's wording, so the numbers read and compare the same."""
    stats = result["inference"]
    return "\n".join(
        [
            f"  The input model file size (MB): {result['model_size_bytes'] / 1e6:.6g}",
            f"  Runtime: {result['runtime']}{' + Edge TPU delegate' if result.get('edgetpu') else ''}",
            f"  count={stats['count']} first={_us(stats['first'])} min={_us(stats['min'])} max={_us(stats['max'])} "
            f"avg={_us(stats['avg'])} std={_us(stats['std'])} "
            + " ".join(f"p{q}={_us(stats[f'p{q}'])}" for q in PERCENTILES),
            (
                f"  Inference timings in us: Init: {_us(result['init_us'])}, First inference: "
                f"{_us(result['first_inference_us'])}, Warmup (avg): {_us(result['warmup_avg_us'])}, "
                f"Inference (avg): {_us(stats['avg'])}"
            ),
            f"  Note: memory is {result['memory_note']}.",
            (
                f"  Peak memory footprint (MB): {result['peak_rss_mb']:g} (after init {result['rss_after_init_mb']:g}, "
                f"at start {result['rss_start_mb']:g})"
            ),
            *(f"  WARNING: {warning}" for warning in result["warnings"]),
        ]
    )
