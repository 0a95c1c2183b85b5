"""Latency on the device runtime (LiteRT through tfedge_device.Model), the way benchmark_model measures it:
warm-up invokes, then the median of timed invokes; several models timed in turn when they are compared."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from tfedge_device.model import Model

TIMED_RUNS = 20
WARMUP_RUNS = 3


def median_latency_ms(model_bytes: bytes, sample, threads: int = 1, runs: int = TIMED_RUNS) -> float:
    """Median wall time of one invoke on the device runtime (benchmark_model's method: warm-up, timed runs)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "timed.tflite"
        path.write_bytes(model_bytes)
        model = Model(path, threads=threads)
        model.set_inputs(list(sample))
        for _ in range(WARMUP_RUNS):
            model.invoke()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            model.invoke()
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def interleaved_latency_ms(models: dict, sample, threads: int = 1, runs: int = TIMED_RUNS) -> dict:
    """{name: median invoke ms} with the models timed in turn within every round, so load changes on a shared
    machine hit them alike and the ratios stay meaningful. `models`: {name: model bytes}."""
    with tempfile.TemporaryDirectory() as tmp:
        loaded = {}
        for name, model_bytes in models.items():
            path = Path(tmp) / f"{len(loaded)}.tflite"
            path.write_bytes(model_bytes)
            loaded[name] = Model(path, threads=threads)
            loaded[name].set_inputs(list(sample))
            for _ in range(WARMUP_RUNS):
                loaded[name].invoke()
        times = {name: [] for name in loaded}
        for _ in range(runs):
            for name, model in loaded.items():
                started = time.perf_counter()
                model.invoke()
                times[name].append(time.perf_counter() - started)
    return {name: round(float(np.median(values)) * 1e3, 2) for name, values in times.items()}
