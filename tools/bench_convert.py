#!/usr/bin/env python3
"""Size and invoke latency of keras-app:MobileNetV2 (random weights) in every conversion mode.

Side by side in one run, through tfedge's own path (tfedge.convert -> tfedge_device.bench, LiteRT), 1 thread.
Prints a table and JSON (medians; the ratios are what compare across machines).

Reference (issue 2, raw TF 2.21 converter + ai-edge-litert 2.3.0, 1 thread, this machine class):
float32 3.8 ms / 13.9 MB, dynamic 7.4 ms / 3.7 MB, float16 4.4 ms / 7.0 MB, int8 1.66 ms / 3.9 MB.
Goals: int8 >= 2.3x faster than float32, int8 size <= 0.29x.

Beside each tfedge model, the same mode straight from the raw TF converter (from_keras_model, same calibration
samples) is timed in the same run, and the two op lists (name, version) are compared: tfedge must produce the
raw converter's graph, with no extra QUANTIZE/DEQUANTIZE around int8 I/O.

Usage: tools/bench_convert.py [--runs 200] [--warmup 20] [--threads 1] [--out DIR] [--json-only]
Calibration uses the digits images (real pixels, resized to 224x224 RGB): only speed and size matter here.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("float32", "dynamic", "float16", "int8")


def raw_convert(mode: str, samples, path: Path) -> None:
    """The plain TF 2.21 converter on keras.applications.MobileNetV2, as its documentation shows each mode."""
    import keras

    from tfedge.tf_loader import quiet_native, tensorflow

    tf = tensorflow()
    with quiet_native():
        converter = tf.lite.TFLiteConverter.from_keras_model(keras.applications.MobileNetV2(weights=None))
        if mode != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            converter.representative_dataset = lambda: (list(arrays) for arrays in samples.arrays)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.int8
        path.write_bytes(converter.convert())


def op_list(path) -> list:
    from tfedge.analysis.graph import read_graph

    return sorted((op.name, op.version) for op in read_graph(path).ops)
REFERENCE = {"float32": (3.8, 13.9), "dynamic": (7.4, 3.7), "float16": (4.4, 7.0), "int8": (1.66, 3.9)}
GOALS = {"int8_speedup_min": 2.3, "int8_size_ratio_max": 0.29}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--calib-count", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from tfedge_device.bench import benchmark

    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions

    out = args.out or Path(tempfile.mkdtemp(prefix="bench_convert_"))
    out.mkdir(parents=True, exist_ok=True)
    from tfedge.convert.calibration import load_samples
    from tfedge.convert.sources import load_source

    samples = load_samples(str(ROOT / "models" / "digits" / "calib"),
                           load_source("keras-app:MobileNetV2", LoadOptions(weights="none")), args.calib_count,
                           show_progress=False)
    rows = {}
    for mode in MODES:
        path = out / f"mobilenetv2_{mode}.tflite"
        convert(ConvertRequest(
            source="keras-app:MobileNetV2", output=path, mode=mode, load=LoadOptions(weights="none"),
            calib=str(ROOT / "models" / "digits" / "calib"), calib_count=args.calib_count, verify_count=5,
            show_progress=False))
        raw_path = out / f"mobilenetv2_{mode}_raw.tflite"
        raw_convert(mode, samples, raw_path)
        print(f"converted {mode}", file=sys.stderr)
        rows[mode] = {"size_mb": path.stat().st_size / 1e6, "path": str(path), "raw_path": str(raw_path),
                      "raw_size_mb": raw_path.stat().st_size / 1e6,
                      "same_ops_as_raw": op_list(path) == op_list(raw_path)}
    # Timed after all conversions, one mode right after another, so the ratios share machine conditions.
    for mode in MODES:
        stats = benchmark(rows[mode]["path"], runs=args.runs, warmup=args.warmup, threads=args.threads)
        raw = benchmark(rows[mode]["raw_path"], runs=args.runs, warmup=args.warmup, threads=args.threads)
        rows[mode]["p50_ms"] = stats["inference"]["p50"] / 1000
        rows[mode]["avg_ms"] = stats["inference"]["avg"] / 1000
        rows[mode]["raw_p50_ms"] = raw["inference"]["p50"] / 1000
    base = rows["float32"]
    for row in rows.values():
        row["speedup"] = base["p50_ms"] / row["p50_ms"]
        row["size_ratio"] = row["size_mb"] / base["size_mb"]
    result = {
        "model": "keras-app:MobileNetV2 (random weights, 224x224x3)",
        "threads": args.threads, "runs": args.runs, "modes": rows, "reference": REFERENCE, "goals": GOALS,
        "int8_speedup": rows["int8"]["speedup"], "int8_size_ratio": rows["int8"]["size_ratio"],
    }
    result["same_graph_as_raw_converter"] = all(row["same_ops_as_raw"] for row in rows.values())
    result["goals_met"] = (result["int8_speedup"] >= GOALS["int8_speedup_min"]
                           and result["int8_size_ratio"] <= GOALS["int8_size_ratio_max"])
    header = (f"{'mode':9} {'p50 ms':>8} {'avg ms':>8} {'size MB':>8} {'speed-up':>9} {'size':>6} "
              f"{'raw p50':>8} {'raw MB':>7} {'same ops':>9}   reference")
    print(header)
    print("-" * len(header))
    for mode, row in rows.items():
        ref_ms, ref_mb = REFERENCE[mode]
        print(f"{mode:9} {row['p50_ms']:8.2f} {row['avg_ms']:8.2f} {row['size_mb']:8.2f} "
              f"{row['speedup']:8.2f}x {row['size_ratio']:5.2f}x {row['raw_p50_ms']:8.2f} {row['raw_size_mb']:7.2f} "
              f"{'yes' if row['same_ops_as_raw'] else 'NO':>9}   {ref_ms} ms / {ref_mb} MB")
    print(f"int8 vs float32: {result['int8_speedup']:.2f}x faster (goal >= 2.3x), size "
          f"{result['int8_size_ratio']:.3f}x (goal <= 0.29x): {'met' if result['goals_met'] else 'NOT met'}")
    print(f"same ops as the raw TF converter in every mode: {result['same_graph_as_raw_converter']}")
    print(json.dumps(result, indent=2))
    return 0 if result["goals_met"] else 4


if __name__ == "__main__":
    sys.exit(main())
