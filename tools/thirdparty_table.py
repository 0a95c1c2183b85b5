#!/usr/bin/env python3
"""The real third-party models of models/thirdparty.json through tfedge, as a user would run them: every
.tflite through `tfedge inspect`, `tfedge-run info`, `bench` (LiteRT, 1 thread) and `run` on a real input
(tools/thirdparty_inputs.py); every converter source through `tfedge convert` float32, dynamic and int8
(int8 calibrated on real data and verified on held-out samples), each result benchmarked the same way.

Usage: .venv/bin/python tools/thirdparty_table.py [--runs N] [--only NAME,NAME] [--out DIR]
Needs the files tools/setup fetches (.cache/thirdparty/). Prints a Markdown table, then one JSON object.
The machine is shared, so latencies are noisy; p50 is the median of --runs timed runs after 5 warm-ups.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import thirdparty
import thirdparty_inputs as inputs
from bench_host import cpu_model

BIN = Path(sys.executable).parent
SOURCE_DATA = {"fer-emotion-h5": lambda: inputs.face_crops(32),
               "basic-pitch-savedmodel": lambda: inputs.audio_windows(12, 43844, 22050)}


def cli(program: str, *args, as_json: bool = True) -> tuple[int, dict | None, str]:
    """(exit code, parsed JSON or None, the first stderr line naming an error)."""
    done = subprocess.run([str(BIN / program), *map(str, args), *(["--json"] if as_json else [])],
                          capture_output=True, text=True, check=False)
    error = next((line for line in done.stderr.splitlines() if "error" in line), "")
    try:
        parsed = json.loads(done.stdout) if as_json and done.returncode == 0 else None
    except json.JSONDecodeError:
        parsed = None
    return done.returncode, parsed, error


def p50_ms(path: Path, runs: int, input_shape: str | None) -> float | None:
    code, report, _ = cli("tfedge-run", "bench", path, "--threads", "1", "--runs", runs, "--warmup", 5,
                          *(["--input-shape", input_shape] if input_shape else []))
    return round(report["inference"]["p50"] / 1000, 3) if code == 0 else None


def reading(name: str, outputs: list[dict]) -> str:
    """What the run's outputs say about the real input (where the output has a plain meaning)."""
    first = outputs[0] if outputs else {}
    if name == "mp-face-detection":
        return f"face score on Grace Hopper {1 / (1 + np.exp(-np.max(first['classificators']['values']))):.2f}"
    if name == "mp-pose-detection":
        return f"person score on Grace Hopper {1 / (1 + np.exp(-np.max(first['Identity_1']['values']))):.2f}"
    if name == "mp-selfie-segmentation":
        return f"person mask covers {np.mean(np.asarray(first['activation_10']['values']) > 0.5) * 100:.0f} % of her portrait"
    if name == "mp-hand-landmark":
        return f"hand presence on a portrait without hands {np.ravel(first['Identity_1']['values'])[0]:.3f}"
    if name == "mww-okay-nabu":
        return (f"spoken 'okay nabu' over {len(outputs)} steps: peak score "
                f"{max(np.max(step['dense_1']['values']) for step in outputs):.2f} (cutoff 0.85)")
    if name == "basic-pitch-tflite":
        note = np.asarray(first["note"]["values"])[0]
        return f"a note in {np.mean(note.max(axis=1) > 0.5) * 100:.0f} % of the frames of 2 s of singing"
    if name == "fer-emotion-tflite":
        emotions = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer's label order
        scores = np.ravel(first["Identity"]["values"])
        return f"Grace Hopper's face: {emotions[int(scores.argmax())]} {scores.max():.2f}"
    return ""


def tflite_row(entry: dict, runs: int, work: Path) -> dict:
    path = thirdparty.entry_path(entry)
    row = {"model": entry["name"], "package": entry["pkg"]["requirement"], "licence": entry["pkg"]["licence"],
           "kind": entry["kind"], "size_bytes": path.stat().st_size, "works": {}, "p50_ms": None, "notes": []}
    code, report, error = cli("tfedge", "inspect", path)
    row["works"]["inspect"] = code == 0
    if report:
        row["ops"] = sorted({o["op"] for o in report["operators"]})
        row["works"]["loads in LiteRT"] = next(v for v in report["compatibility"]["runtimes"] if v["runtime"] == "litert")["ok"]
    row["works"]["info"] = cli("tfedge-run", "info", path)[0] == 0
    bare = inputs.bare_details(path)
    args = inputs.cli_input(entry, bare["inputs"], work)[0]
    code, report, error = cli("tfedge-run", "run", path, *args)
    row["works"]["run"] = code == 0
    if code == 0:
        row["notes"].append(reading(entry["name"], report["outputs"]) or f"input: {entry.get('run_input', 'shaped')}")
        row["p50_ms"] = p50_ms(path, runs, entry.get("input_shape"))
        row["works"]["bench"] = row["p50_ms"] is not None
    else:
        row["works"]["bench"] = cli("tfedge-run", "bench", path, "--runs", 1)[0] == 0
        row["notes"].append(f"refused, exit {code}: {error.split('error: ', 1)[-1].split(' (hint')[0][:200]}")
    return row


def source_row(entry: dict, runs: int, work: Path) -> dict:
    path = thirdparty.entry_path(entry)
    size = sum(f.stat().st_size for f in (path.rglob("*") if path.is_dir() else [path]) if f.is_file())
    row = {"model": entry["name"], "package": entry["pkg"]["requirement"], "licence": entry["pkg"]["licence"],
           "kind": entry["kind"], "size_bytes": size, "works": {}, "p50_ms": None, "notes": [], "modes": {}}
    data = work / f"{entry['name']}.npy"
    np.save(data, SOURCE_DATA[entry["name"]]())
    for mode in ("float32", "dynamic", "int8"):
        out = work / f"{entry['name']}_{mode}.tflite"
        flag = "--calib" if mode == "int8" else "--verify-data"
        started = time.perf_counter()
        code, report, error = cli("tfedge", "convert", path, "-o", out, "--quant", mode, flag, data)
        result = {"ok": code == 0, "seconds": round(time.perf_counter() - started, 1)}
        if code == 0:
            figures = report["verification"]
            result.update(cosine_min=round(figures["cosine_min"], 5), split=figures["split"],
                          samples=figures["verification_samples"], size_bytes=out.stat().st_size,
                          p50_ms=p50_ms(out, runs, None))
        else:
            result["error"] = error
        row["modes"][mode] = result
        row["works"][f"convert {mode}"] = result["ok"]
    row["p50_ms"] = row["modes"]["float32"].get("p50_ms")
    row["notes"].append("; ".join(
        f"{mode}: " + (f"cosine min {r['cosine_min']:.4f} on {r['samples']} {r['split']}, {r['p50_ms']} ms, "
                       f"{r['size_bytes'] / 1e3:.0f} kB" if r["ok"] else f"FAILED {r['error'][:80]}")
        for mode, r in row["modes"].items()))
    return row


def markdown(rows: list[dict]) -> str:
    lines = ["| model | source package | kind | works | p50 ms (LiteRT, 1 thread) | size | notes |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        works = ", ".join(step if ok else f"~~{step}~~" for step, ok in row["works"].items())
        size = f"{row['size_bytes'] / 1e6:.2f} MB" if row["size_bytes"] >= 1e6 else f"{row['size_bytes'] / 1e3:.0f} kB"
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.3f}"
        lines.append(f"| {row['model']} | {row['package']} | {', '.join(row['kind'])} | {works} | {p50} | {size} | "
                     f"{' '.join(row['notes'])} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="Timed runs per benchmark (default 20).")
    parser.add_argument("--only", default="", help="Comma-separated model names (default: all).")
    parser.add_argument("--out", type=Path, help="Keep inputs and converted models here (default: a temp dir).")
    args = parser.parse_args()
    missing = thirdparty.missing_files()
    if missing:
        print(f"missing from .cache/thirdparty/: {', '.join(missing)}: run tools/setup", file=sys.stderr)
        return 3
    wanted = set(filter(None, args.only.split(",")))
    entries = [e for e in thirdparty.entries() if e.get("format") and (not wanted or e["name"] in wanted)]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.out or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for entry in entries:
            print(f"... {entry['name']}", file=sys.stderr, flush=True)
            make = tflite_row if entry["format"] == "tflite" else source_row
            rows.append(make(entry, args.runs, work))
    print(markdown(rows))
    print(json.dumps({"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "host": cpu_model(),
                      "python": platform.python_version(), "runs": args.runs, "rows": rows}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
