"""`tfedge compare`: the seeds' comparison table for the user's own variants, measured here.

One row per variant (a `.tflite` or the source model): parameters, GFLOPs, size, p50 latency on the
device runtime, speed-up against the float variant, accuracy (top-1) or cosine, and the drop against the
most accurate reference (the source when given, else the float variant). Every figure that cannot be
measured carries the reason instead of a blank (`why`). Reports: see tfedge.analysis.report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BadInput

log = logging.getLogger(__name__)

# The columns of the table: (key, heading, unit/format). The report writers use this table.
COLUMNS = (
    ("params", "Params", "count"),
    ("gflops", "GFLOPs", "{:.4g}"),
    ("size_mb", "Size (MB)", "{:.3f}"),
    ("latency_p50_ms", "p50 latency (ms)", "{:.3f}"),
    ("speedup", "Speed-up", "{:.2f}x"),
    ("accuracy", "Accuracy", "metric"),
    ("drop", "Drop", "drop"),
)


@dataclass
class Row:
    """One variant's figures. `why[key]` explains each figure that is None."""

    name: str
    kind: str  # tflite | source
    mode: str
    figures: dict = field(default_factory=dict)
    why: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def set(self, key: str, value, why: str | None = None) -> None:
        self.figures[key] = value
        if value is None:
            self.why[key] = why or "not measured"

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "mode": self.mode, **self.figures, "why": self.why,
                "details": self.details}


def _mode_of(variant) -> str:
    if variant.kind == "source":
        return "source"
    manifest_mode = (variant.manifest or {}).get("mode")
    if manifest_mode:
        return manifest_mode
    quantized = any(spec.quantized for spec in variant.model.inputs + variant.model.outputs)
    return "quantized" if quantized else "unknown"


def _measure_static(row: Row, variant) -> None:
    """Params, GFLOPs and size: from the TFLite graph, or the source model's own count."""
    if variant.kind == "tflite":
        from .inspection import summary

        info = summary(variant.path)
        row.set("params", info["params"])
        row.set("gflops", info["flops"] / 1e9 if info["flops"] is not None else None,
                "no FLOP rule for this model's operators")
        row.set("size_mb", info["size_bytes"] / 1e6)
        row.details["min_runtime_version"] = info.get("min_runtime_version")
        return
    # Keras sources hold `.model`; hf: sources a keras-hub `.backbone` (+ an optional Keras `.head`)
    parts = [getattr(variant.model, name, None) for name in ("model", "backbone", "head")]
    counted = [part.count_params() for part in parts if hasattr(part, "count_params")]
    row.set("params", int(sum(counted)) if counted else None, "the source is not a Keras model")
    row.set("gflops", None, "FLOPs are counted on the TFLite graph: see the float32 variant")
    if variant.path is not None and variant.path.exists():
        row.set("size_mb", source_size(variant.path) / 1e6)
    else:
        row.set("size_mb", None, "built in memory (no file)")


# Weight files of a model directory (a Hugging Face dir also holds tokenizer files and a README).
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".h5", ".keras", ".weights.h5")


def source_size(path: Path) -> int:
    """Bytes of a source: the file; a SavedModel directory's files; a model directory's weight files."""
    if path.is_file():
        return path.stat().st_size
    files = [p for p in path.rglob("*") if p.is_file()]
    if not (path / "saved_model.pb").exists():
        files = [p for p in files if p.name.endswith(WEIGHT_SUFFIXES)] or files
    return sum(p.stat().st_size for p in files)


def _measure_latency(row: Row, variant, runs: int, warmup: int, threads: int | None) -> None:
    if variant.kind != "tflite":
        row.set("latency_p50_ms", None, "the source runs in TensorFlow, not the device runtime: not benchmarked")
        return
    from tfedge_device.bench import benchmark

    result = benchmark(variant.model, runs=runs, warmup=warmup)
    row.details["bench"] = result
    row.set("latency_p50_ms", _p50_ms(result))


def _p50_ms(result: dict) -> float:
    """p50 in milliseconds from a tfedge_device.bench result (benchmark_model reports microseconds)."""
    for key, scale in (("p50_ms", 1.0), ("median_ms", 1.0), ("p50_us", 1e-3), ("median_us", 1e-3)):
        if key in result:
            return float(result[key]) * scale
    inference = result.get("inference") or {}
    for key, scale in (("p50_us", 1e-3), ("p50", 1e-3), ("median_us", 1e-3), ("p50_ms", 1.0)):
        if key in inference:
            return float(inference[key]) * scale
    raise KeyError(f"no p50 in the benchmark result: {sorted(result)}")


def _measure_accuracy(row: Row, variant, data, preset, limit, reference_variant) -> None:
    from .evaluate import evaluate

    if data is None:
        row.set("accuracy", None, "no --data given")
        return
    from tfedge_device.detect import TASK as DETECTION_TASK

    if variant.kind == "tflite" and variant.task == DETECTION_TASK:  # a detector's accuracy is its mAP@0.5
        from .detection_eval import evaluate_detection

        result = evaluate_detection(variant.spec, data, limit=limit)
        row.details["eval"] = {k: v for k, v in result.items() if k != "model"}
        row.details["metric"] = "mAP@0.5"
        row.set("accuracy", result["map_50"])
        return
    result = evaluate(variant, data, reference=reference_variant, preset=preset, limit=limit)
    row.details["eval"] = {k: v for k, v in result.items() if k != "model"}
    if result["top1"] is not None:
        row.details["metric"] = "top-1"
        row.set("accuracy", result["top1"])
    elif result["cosine_mean"] is not None:
        row.details["metric"] = "cosine"
        row.set("accuracy", result["cosine_mean"])
    else:
        row.set("accuracy", None, "the data has no labels and no reference")


def cosine_reference(data, loaded):
    """For data without labels (an .npz with inputs only): the variant every other is compared with by
    cosine — the source when given, else the first float32 .tflite, else the first variant."""
    if data is None or not str(data).endswith(".npz") or not Path(data).is_file():
        return None
    from ..convert.calibration import load_numpy

    try:
        with load_numpy(Path(data)) as archive:
            if "y" in archive.files or "reference" in archive.files:
                return None
    except BadInput:
        return None  # evaluate() reports the unreadable file
    ranked = sorted(loaded, key=lambda v: (v.kind != "source", _mode_of(v) != "float32"))
    log.info("no labels in %s: cosine to %s", Path(data).name, ranked[0].name)
    return ranked[0]


def pick_baselines(rows: list[Row]) -> tuple[Row | None, Row | None]:
    """(latency baseline, accuracy baseline): the float32 .tflite for speed; the source, else float32, for
    accuracy."""
    floats = [r for r in rows if r.kind == "tflite" and r.mode == "float32"]
    speed = floats[0] if floats else None
    sources = [r for r in rows if r.kind == "source"]
    accuracy = sources[0] if sources else speed
    return speed, accuracy


def derive(rows: list[Row]) -> dict:
    """Speed-up and accuracy drop against the baselines (with reasons where they cannot be computed)."""
    speed, reference = pick_baselines(rows)
    for row in rows:
        latency = row.figures.get("latency_p50_ms")
        if speed is None:
            row.set("speedup", None, "no float32 .tflite variant to compare against")
        elif latency is None or speed.figures.get("latency_p50_ms") is None:
            row.set("speedup", None, row.why.get("latency_p50_ms", "latency not measured"))
        else:
            row.set("speedup", speed.figures["latency_p50_ms"] / latency)
        value = row.figures.get("accuracy")
        if reference is None:
            row.set("drop", None, "no source or float32 variant to compare against")
        elif value is None or reference.figures.get("accuracy") is None:
            row.set("drop", None, row.why.get("accuracy") or reference.why.get("accuracy", "not measured"))
        else:
            row.set("drop", reference.figures["accuracy"] - value)
    return {"speed_baseline": speed.name if speed else None, "accuracy_baseline": reference.name if reference else None}


def compare(variants: list[str], data: str | None = None, runs: int = 50, warmup: int = 5,
            threads: int | None = None, preset: str | None = None, limit: int | None = None,
            load_options=None, progress=None) -> dict:
    """Measure every variant; returns {"rows": [...], "baselines": ..., "data": ..., "runtime": ...}."""
    from tfedge_device.runtime import describe

    from .evaluate import Variant, options_from_manifest

    if not variants:
        raise BadInput("give at least one VARIANT (.tflite files or the source model)")
    if len(set(variants)) != len(variants):
        raise BadInput("a variant is listed twice")
    # converted variants first: a source then takes its shapes (hf: seq_len) from their manifests
    converted = {spec: Variant(spec, threads) for spec in variants if spec.endswith(".tflite")}
    manifest = next((v.manifest for v in converted.values() if v.manifest), None)
    options = options_from_manifest(load_options, manifest)
    loaded = [converted.get(spec) or Variant(spec, threads, options) for spec in variants]
    sources = [v for v in loaded if v.kind == "source"]
    if len(sources) > 1:
        raise BadInput("give at most one source model among the variants")
    reference = cosine_reference(data, loaded)
    rows = []
    for variant in loaded:
        if progress:
            progress(f"measuring {variant.name}")
        row = Row(variant.name, variant.kind, _mode_of(variant))
        _measure_static(row, variant)
        _measure_latency(row, variant, runs, warmup, threads)
        _measure_accuracy(row, variant, data, preset, limit, reference)
        rows.append(row)
    baselines = derive(rows)
    metrics = {row.details.get("metric") for row in rows if row.details.get("metric")}
    return {
        "rows": [row.to_dict() for row in rows],
        "baselines": baselines,
        "metric": metrics.pop() if len(metrics) == 1 else ("mixed" if metrics else None),
        "data": str(data) if data else None,
        "bench": {"runs": runs, "warmup": warmup, "threads": threads},
        "runtime": describe(),
    }
