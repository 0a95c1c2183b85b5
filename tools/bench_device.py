#!/usr/bin/env python3
"""tfedge-run's cost: cold start to the first result, and per-image time against a bare PIL + interpreter loop.

1. Cold start: wall time of `tfedge-run classify MODEL -i IMG` (a new process: Python start, imports, model
   load, decode, inference, print), median of --starts runs with tfedge's probe cache warm; the very first run
   of a file (cache cold: one crash-probe subprocess, see device/tfedge_device/guard.py) is reported apart.
   For scale, `python -c "import tensorflow"` once. Goal: <= 1.0 s.
2. Per image: tfedge-run's path (Classifier.classify: decode + colour + resize + normalise + quantize + invoke +
   dequantize + top-k) against the least a user would write (PIL open/convert/resize, numpy scaling,
   interpreter set_tensor/invoke/get_tensor), same model, same images, same runtime, one thread; each round
   is one pass over the images per path, the order alternating between rounds; medians. Two image sets: the digits images (8x8 PNG) and
   the same digits as 640x480 JPEG (decode and resize dominate). Goal: ratio <= 1.15.

Usage: tools/bench_device.py [--model digits_int8.tflite] [--rounds 30] [--starts 7] [--json-only]
Without --model, models/digits/digits.keras is converted to int8 (tfedge convert) into a temp dir first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"
BIN = Path(sys.executable).parent
GOALS = {"cold_start_s_max": 1.0, "per_image_ratio_max": 1.15}


def convert_digits(out_dir: Path) -> Path:
    from tfedge.convert.pipeline import ConvertRequest, convert

    out = out_dir / "digits_int8.tflite"
    convert(
        ConvertRequest(
            source=str(DIGITS / "digits.keras"),
            output=out,
            mode="int8",
            calib=str(DIGITS / "calib"),
            labels=DIGITS / "labels.txt",
            show_progress=False,
        )
    )
    return out


def large_images(out_dir: Path) -> list[Path]:
    """The digits images upscaled to 640x480 RGB JPEG, like camera frames."""
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for path in sorted((DIGITS / "images").glob("*.png")):
        with Image.open(path) as image:
            target = out_dir / f"{path.stem}.jpg"
            image.convert("RGB").resize((640, 480), Image.Resampling.BICUBIC).save(target, quality=90)
            paths.append(target)
    return paths


def time_process(argv: list, env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.strip()}")
    return elapsed


def cold_start(model: Path, image: Path, starts: int) -> dict:
    argv = [str(BIN / "tfedge-run"), "classify", str(model), "-i", str(image)]
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "TFEDGE_CACHE_DIR": cache}
        first = time_process(argv, env)  # probe cache cold: this file was never seen
        warm = [time_process(argv, env) for _ in range(starts)]
    tensorflow = time_process(
        [sys.executable, "-c", "import tensorflow"], {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    return {
        "first_run_s": round(first, 3),
        "median_s": round(statistics.median(warm), 3),
        "min_s": round(min(warm), 3),
        "runs": starts,
        "import_tensorflow_s": round(tensorflow, 3),
    }


def bare_loop(model: Path):
    """The least a user writes: PIL + numpy + the interpreter, preprocessing hard-coded for this model."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    (in_scale, in_zero), (out_scale, out_zero) = inp["quantization"], out["quantization"]
    height, width = int(inp["shape"][1]), int(inp["shape"][2])

    def classify(path):
        with Image.open(path) as image:
            pixels = np.asarray(
                image.convert("L").resize((width, height), Image.Resampling.BILINEAR), np.float32
            )
        q = np.clip(np.round(pixels / 255.0 / in_scale) + in_zero, -128, 127).astype(np.int8)
        interpreter.set_tensor(inp["index"], q[None, :, :, None])
        interpreter.invoke()
        scores = (interpreter.get_tensor(out["index"]).astype(np.float32) - out_zero) * out_scale
        return int(np.argmax(scores))

    return classify


def per_image(model: Path, images: list[Path], rounds: int) -> dict:
    from tfedge_device.classify import Classifier

    classifier = Classifier(model, threads=1)
    bare = bare_loop(model)
    times = {"tfedge": [], "bare": []}
    runners = {
        "tfedge": lambda path: classifier.classify(path, top=5, threshold=0.1).classes[0].id,
        "bare": bare,
    }
    top1 = {"tfedge": [], "bare": []}
    for round_index in range(rounds):
        order = ("tfedge", "bare") if round_index % 2 == 0 else ("bare", "tfedge")  # one pass over the images
        for name in order:  # each, alternating who goes
            for path in images:  # first: same cache state
                started = time.perf_counter()
                top1[name].append(runners[name](path))
                times[name].append((time.perf_counter() - started) * 1e3)
    agree = top1["tfedge"] == top1["bare"]
    tfedge_ms, bare_ms = statistics.median(times["tfedge"]), statistics.median(times["bare"])
    return {
        "images": len(images),
        "rounds": rounds,
        "tfedge_ms": round(tfedge_ms, 4),
        "bare_ms": round(bare_ms, 4),
        "ratio": round(tfedge_ms / bare_ms, 3),
        "same_top1": agree,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, help="An int8 image classifier with its manifest (default: digits)."
    )
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--starts", type=int, default=7)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        model = args.model or convert_digits(temp)
        small = sorted((DIGITS / "images").glob("*.png"))
        result = {
            "model": str(args.model or "models/digits/digits.keras -> int8"),
            "goals": GOALS,
            "cold_start": cold_start(model, small[0], args.starts),
            "per_image": {
                "digits 8x8 png": per_image(model, small, args.rounds),
                "digits 640x480 jpeg": per_image(model, large_images(temp / "large"), args.rounds),
            },
        }
    if not args.json_only:
        cold = result["cold_start"]
        print(
            f"cold start, tfedge-run classify to first result: median {cold['median_s']:.3f} s over {cold['runs']} "
            f"(min {cold['min_s']:.3f} s; first run with probe {cold['first_run_s']:.3f} s; "
            f"import tensorflow alone {cold['import_tensorflow_s']:.2f} s); goal <= {GOALS['cold_start_s_max']} s"
        )
        print(f"{'images':<22} {'tfedge-run ms':>14} {'bare loop ms':>13} {'ratio':>7}  same top-1")
        for name, row in result["per_image"].items():
            print(
                f"{name:<22} {row['tfedge_ms']:>14.4f} {row['bare_ms']:>13.4f} {row['ratio']:>7.3f}  {row['same_top1']}"
            )
        print(f"goal: ratio <= {GOALS['per_image_ratio_max']}")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
