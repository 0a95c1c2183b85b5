#!/usr/bin/env python3
"""`tfedge-run stream`: frames per second pipelined (capture, inference, output on their own threads) against
the same stages in one thread (`--sequential`), in the same run, alternating, medians.

The video: 120 frames of 640x480 (real scikit-learn digits scaled up, moving), MJPG; each run classifies every
frame with the digits int8 model, writes JSON lines (to /dev/null) and the annotated video (decode, resize,
invoke, draw, encode). Goal (issue 20): pipelined >= 1.3x sequential.

Usage: tools/bench_stream.py [--model digits_int8.tflite] [--rounds 3] [--json-only]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL = 1.3
sys.path.insert(0, str(ROOT / "tools"))
from bench_host import cpu_model


def make_video(path: Path, frames: int = 120) -> Path:
    import cv2
    import numpy as np

    with np.load(ROOT / "models" / "digits" / "test.npz") as data:
        x = data["x"]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 40, np.uint8)
        digit = cv2.resize((x[i % len(x), :, :, 0] * 255).astype(np.uint8), (320, 320),
                           interpolation=cv2.INTER_LINEAR)
        left = 40 + (i * 2) % 240
        frame[80:400, left:left + 320] = digit[..., None]
        writer.write(frame)
    writer.release()
    return path


def fps(model: Path, video: Path, out: Path, sequential: bool) -> float:
    flags = ["--sequential"] if sequential else []
    completed = subprocess.run([str(BIN / "tfedge-run"), "stream", str(model), "--video", str(video), "--json-lines",
                                "-o", str(out), *flags], capture_output=True, text=True, check=True)
    summary = json.loads(completed.stderr.strip().splitlines()[-1])["summary"]
    return summary["fps"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    if args.model is None:
        from bench_device import convert_digits

        args.model = convert_digits(tmp)
    video = make_video(tmp / "digits_640x480.avi")
    runs = {"pipelined": [], "sequential": []}
    for round_number in range(args.rounds):
        order = ("pipelined", "sequential") if round_number % 2 == 0 else ("sequential", "pipelined")
        for kind in order:
            runs[kind].append(fps(args.model, video, tmp / f"{kind}.avi", kind == "sequential"))
    medians = {kind: statistics.median(values) for kind, values in runs.items()}
    result = {"host": cpu_model(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "video": "120 frames 640x480 MJPG",
              "fps": runs, "median_fps": medians, "ratio": round(medians["pipelined"] / medians["sequential"], 2),
              "goal": GOAL}
    if not args.json_only:
        print(f"{'run':12s} {'median fps':>10s}  all")
        for kind, values in runs.items():
            print(f"{kind:12s} {medians[kind]:10.1f}  {values}")
        print(f"pipelined / sequential: {result['ratio']:.2f}x (goal >= {GOAL})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
