"""Figures of an optimized model after conversion: .tflite size, gzip size, top-1 and latency on LiteRT.

A tf_keras (or Keras 3) model in memory -> TFLite bytes through tfedge's own converter path (sources ->
modes -> run_converter), then measured through tfedge_device.model.Model (the one inference path).
gzip size is what a sparse or clustered model is worth on the wire and on disk: TFLite kernels do not
skip zeros or shared values, so the uncompressed size and the latency do not change with them.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import numpy as np
from tfedge_device.model import Model

from ..analysis.latency import median_latency_ms
from ..convert.calibration import Samples
from ..convert.converter import run_converter
from ..convert.modes import ConvertContext, resolve_io_type
from ..convert.registry import get_mode
from ..convert.sources import KerasSource, LoadOptions

CALIBRATION_SAMPLES = 200


def count_params(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.weights if "mask" not in w.name and "threshold" not in w.name
                   and "pruning_step" not in w.name))


def calibration_samples(inputs: list[np.ndarray]) -> Samples:
    """Up to 200 samples spread over [N, ...] arrays (one per model input, in input order)."""
    count = len(inputs[0])
    picks = np.linspace(0, count - 1, min(CALIBRATION_SAMPLES, count)).astype(int)
    return Samples([[a[i:i + 1] for a in inputs] for i in picks], "training data")


def to_tflite(model, mode: str = "float32", calibration_x=None) -> bytes:
    """Convert an in-memory Keras model; calibrated modes use up to 200 samples of `calibration_x`
    (an array, or a list of arrays for several inputs)."""
    chosen = get_mode(mode)
    source = KerasSource(model, model.name, "in-memory", LoadOptions())
    samples = None
    if chosen.needs_calibration:
        inputs = calibration_x if isinstance(calibration_x, list) else [calibration_x.astype(np.float32)]
        samples = calibration_samples(inputs)
    converter = source.converter()
    context = ConvertContext(samples=samples, io_type=resolve_io_type(chosen, None), show_progress=False)
    chosen.configure(converter, context)
    return run_converter(converter, model.name, context)


def gzip_size(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def load_tflite(model_bytes: bytes, threads: int | None = 1) -> Model:
    with tempfile.TemporaryDirectory(prefix="tfedge_measure_") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)  # scratch file, deleted below: not an output of tfedge
        return Model(path, threads=threads)


def ordered_inputs(model: Model, x) -> list[np.ndarray]:
    """x: an array (one input) or {name: array}, matched to the model's inputs by name (the converter
    may prefix or reorder them, e.g. serving_default_padding_mask:0)."""
    if not isinstance(x, dict):
        return [x]
    return [next(array for name, array in x.items() if name in spec.name) for spec in model.inputs]


def predict_all(model: Model, x) -> np.ndarray:
    inputs = ordered_inputs(model, x)
    return np.concatenate([model.predict(*[a[i:i + 1] for a in inputs])[0].reshape(1, -1)
                           for i in range(len(inputs[0]))])


def top1(outputs: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(outputs, -1) == y))


def tflite_figures(model_bytes: bytes, x_val, y_val: np.ndarray | None = None,
                   reference: np.ndarray | None = None, runs: int = 50) -> dict:
    """size, gzip size, top-1 (labels) or mean cosine to `reference` outputs, median latency (1 thread).
    x_val: an array, or {input name: array} for several inputs."""
    model = load_tflite(model_bytes)
    outputs = predict_all(model, x_val)
    first = [a[:1] for a in ordered_inputs(model, x_val)]
    figures = {"size_bytes": len(model_bytes), "gzip_bytes": gzip_size(model_bytes),
               "top1": top1(outputs, y_val) if y_val is not None else None,
               "latency_ms": median_latency_ms(model_bytes, first, 1, runs) if runs else None}
    if reference is not None:
        figures["cosine_to_teacher"] = mean_cosine(outputs, reference)
    return figures


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(norms, 1e-12)))


def keras_top1(model, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> float:
    return top1(np.asarray(model.predict(x, batch_size=batch_size, verbose=0)), y)


def weight_sparsity(model) -> dict:
    """Per layer: fraction of exact zeros in its kernel(s); global over all kernels."""
    layers, zeros, total = {}, 0, 0
    for layer in model.layers:
        kernels = [w for w in layer.weights if "kernel" in w.name]
        if not kernels:
            continue
        values = np.concatenate([np.asarray(w).ravel() for w in kernels])
        layers[layer.name] = float(np.mean(values == 0))
        zeros += int(np.sum(values == 0))
        total += values.size
    return {"layers": layers, "global": zeros / total if total else 0.0}


def unique_weights(model) -> dict:
    """Per layer: number of distinct values in its kernel(s) (clustering shares them)."""
    return {layer.name: int(np.unique(np.concatenate([np.asarray(w).ravel() for w in layer.weights
                                                       if "kernel" in w.name])).size)
            for layer in model.layers if any("kernel" in w.name for w in layer.weights)}
