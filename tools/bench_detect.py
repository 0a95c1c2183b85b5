#!/usr/bin/env python3
"""tfedge-run detect's cost per image against a bare LiteRT + numpy loop, and NMS over 8,400 YOLO candidates.

1. Per image: Detector.detect (decode image + letterbox + normalise + quantize + invoke + dequantize + YOLO
   decode + class-aware NMS + boxes to the original image) against the least a user would write for the same
   model (PIL letterbox as Ultralytics does, numpy scaling, interpreter set_tensor/invoke/get_tensor, numpy
   decode, the classic greedy NMS loop of py-faster-rcnn's py_cpu_nms with a per-class offset), same model,
   same photos (scikit-image's), same runtime, one thread; each round is one pass over the images per path,
   the order alternating between rounds; medians. Both paths must find the same boxes (checked).
   The model: a YOLOv8-shaped grid, 640x640 input, output (1, 84, 8400) (80 classes, strides 8/16/32), a small
   convolutional backbone with random weights (class scores biased so that tens to a few thousand candidates
   pass the 0.25 threshold, crowded in few classes as around large objects: candidates_per_image), converted
   to float32 by TF 2.21.
2. NMS: tfedge_device.nms.nms on 8,400 candidates in 80 classes, all entering NMS (the worst case: no score
   threshold) — random boxes 8..200 px in 640x640; and a YOLO-like case: 40 objects each with 25 jittered
   candidates plus 7,400 others, decoded from a (84, 8400) grid at threshold 0.25 (decode + NMS).
Goals (issue 18): per-image ratio <= 1.1; NMS over 8,400 candidates <= 2 ms. Wall and CPU time (this process's,
time.process_time) are both reported: on a shared, oversubscribed machine the CPU time is the steadier figure.

Usage: tools/bench_detect.py [--rounds 15] [--nms-runs 200] [--json-only]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOALS = {"per_image_ratio_max": 1.1, "nms_8400_ms_max": 2.0}
SIZE, CLASSES, THRESHOLD, IOU = 640, 80, 0.25, 0.45
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
CLASS_BIAS = -1.6  # class logits' bias: chosen so that a realistic few hundred candidates pass THRESHOLD


def build_model(out: Path) -> Path:
    """A YOLOv8-shaped float32 model: (1, 640, 640, 3) -> (1, 84, 8400), sigmoid class scores, pixel boxes."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(18)
    layers, init = tf.keras.layers, tf.keras.initializers
    image = layers.Input((SIZE, SIZE, 3), batch_size=1)
    x = image
    for filters in (8, 16, 24):  # /8
        x = layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
    heads = []
    for level in range(3):  # 80x80, 40x40, 20x20
        if level:
            x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
        cells = x.shape[1]
        box = layers.Conv2D(4, 1, activation="sigmoid")(x)  # cx, cy, w, h as fractions of the input
        cls = layers.Conv2D(CLASSES, 1, activation="sigmoid", kernel_initializer=init.RandomNormal(0, 1.0),
                            bias_initializer=init.Constant(CLASS_BIAS))(x)
        heads.append(layers.Reshape((cells * cells, 4 + CLASSES))(layers.Concatenate()([box * SIZE, cls])))
    grid = layers.Permute((2, 1))(layers.Concatenate(axis=1)(heads))  # (1, 84, 8400)
    model = tf.keras.Model(image, grid)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    out.write_bytes(converter.convert())
    return out


def photos(out_dir: Path) -> list[Path]:
    from PIL import Image
    from skimage import data

    paths = []
    for name in PHOTOS:
        paths.append(out_dir / f"{name}.jpg")
        Image.fromarray(getattr(data, name)()).save(paths[-1], quality=92)
    return paths


def py_cpu_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """py-faster-rcnn's greedy NMS (lib/nms/py_cpu_nms.py), continuous coordinates."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[np.where(iou <= threshold)[0] + 1]
    return keep


def bare_loop(model: Path):
    """The least a user writes for this model: letterbox, invoke, decode, NMS, scale boxes back."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def detect(path):
        with Image.open(path) as image:
            image = image.convert("RGB")
            gain = min(SIZE / image.height, SIZE / image.width)
            new = (round(image.width * gain), round(image.height * gain))
            left, top = round((SIZE - new[0]) / 2 - 0.1), round((SIZE - new[1]) / 2 - 0.1)
            canvas = Image.new("RGB", (SIZE, SIZE), (114, 114, 114))
            canvas.paste(image.resize(new, Image.Resampling.BILINEAR), (left, top))
        x = np.asarray(canvas, np.float32)[None] / 255.0
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        grid = interpreter.get_tensor(out["index"])[0]
        scores = grid[4:].max(0)
        keep = scores > THRESHOLD
        cand, scores = grid[:, keep], scores[keep]
        classes = cand[4:].argmax(0)
        cx, cy, w, h = cand[:4]
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        kept = py_cpu_nms(boxes + (classes * 4096.0)[:, None], scores, IOU)[:300]
        boxes = (boxes[kept] - [left, top, left, top]) / gain
        return np.clip(boxes, 0, [image.width, image.height] * 2)

    return detect


def per_image(model: Path, images: list[Path], rounds: int) -> dict:
    from tfedge_device.detect import Detector

    detector = Detector(model, threads=1)
    bare = bare_loop(model)
    def tfedge(path):
        return np.array([o.box for o in detector.detect(path, THRESHOLD, 300, IOU).objects]).reshape(-1, 4)

    runners = {"tfedge": tfedge, "bare": bare}
    times = {name: [] for name in runners}
    cpu = {name: [] for name in runners}
    found = {name: {} for name in runners}
    for round_index in range(rounds):
        for name in (("tfedge", "bare") if round_index % 2 == 0 else ("bare", "tfedge")):
            for path in images:
                started, started_cpu = time.perf_counter(), time.process_time()
                found[name][path] = runners[name](path)
                times[name].append((time.perf_counter() - started) * 1e3)
                cpu[name].append((time.process_time() - started_cpu) * 1e3)
    same = all(found["tfedge"][p].shape == found["bare"][p].shape
               and np.allclose(np.sort(found["tfedge"][p], 0), np.sort(found["bare"][p], 0), atol=0.5)
               for p in images)
    tfedge_ms, bare_ms = statistics.median(times["tfedge"]), statistics.median(times["bare"])
    tfedge_cpu, bare_cpu = statistics.median(cpu["tfedge"]), statistics.median(cpu["bare"])
    return {"images": [p.stem for p in images], "rounds": rounds, "tfedge_ms": round(tfedge_ms, 3),
            "bare_ms": round(bare_ms, 3), "ratio": round(tfedge_ms / bare_ms, 3),
            "tfedge_cpu_ms": round(tfedge_cpu, 3), "bare_cpu_ms": round(bare_cpu, 3),
            "cpu_ratio": round(tfedge_cpu / bare_cpu, 3), "same_boxes": same,
            "candidates_per_image": {p.stem: candidates(detector, p) for p in images},
            "objects_per_image": {p.stem: len(found["tfedge"][p]) for p in images}}


def candidates(detector, path) -> int:
    """How many of the 8,400 candidates score >= THRESHOLD on this photo (they enter NMS)."""
    from tfedge_device.preprocess import load_placed_image

    grid = detector.model.predict(load_placed_image(path, detector.spec)[0][None])[0][0]
    return int((grid[4:].max(axis=0) >= THRESHOLD).sum())


def median_ms(function, runs: int) -> tuple[float, float]:
    """(median wall ms, median CPU ms of this process) of `runs` calls."""
    wall, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        function()
        wall.append((time.perf_counter() - started) * 1e3)
        cpu.append((time.process_time() - started_cpu) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def nms_figures(runs: int) -> dict:
    from tfedge_device.layouts import Layout
    from tfedge_device.nms import nms

    rng = np.random.default_rng(8400)
    n = 8400
    corners = rng.uniform(0, SIZE, (n, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(8, 200, (n, 2))], 1).astype(np.float32)
    scores, classes = rng.random(n).astype(np.float32), rng.integers(0, CLASSES, n)
    worst = median_ms(lambda: nms(boxes, scores, classes, IOU), runs)
    loop = median_ms(lambda: py_cpu_nms(boxes + (classes * 4096.0)[:, None], scores, IOU), max(3, runs // 20))

    grid = np.zeros((4 + CLASSES, n), np.float32)  # YOLO-like: 40 objects x 25 candidates, the rest low
    grid[:2] = rng.uniform(0, SIZE, (2, n))
    grid[2:4] = rng.uniform(8, 120, (2, n))
    grid[4:] = rng.uniform(0, 0.05, (CLASSES, n))
    for k in range(40):
        members = np.arange(k * 25, k * 25 + 25)
        centre, size = rng.uniform(60, SIZE - 60, 2), rng.uniform(30, 150, 2)
        grid[:2, members] = centre[:, None] + rng.normal(0, 4, (2, 25))
        grid[2:4, members] = size[:, None] * rng.uniform(0.9, 1.1, (2, 25))
        grid[4 + rng.integers(CLASSES), members] = rng.uniform(0.3, 0.95, 25)
    layout = Layout("yolo", {"grid": 0, "channels_first": True}, CLASSES, "letterbox", "pixels")
    kept = layout.decode([grid[None]], (SIZE, SIZE), THRESHOLD, IOU)
    typical = median_ms(lambda: layout.decode([grid[None]], (SIZE, SIZE), THRESHOLD, IOU), runs)
    return {"candidates": n, "classes": CLASSES, "iou": IOU, "runs": runs,
            "all_enter_nms_ms": round(worst[0], 3), "all_enter_nms_cpu_ms": round(worst[1], 3),
            "py_cpu_nms_loop_ms": round(loop[0], 3),
            "yolo_like_decode_and_nms_ms": round(typical[0], 3), "yolo_like_decode_and_nms_cpu_ms": round(typical[1], 3),
            "yolo_like_kept": len(kept.scores)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--nms-runs", type=int, default=200)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        temp = Path(temp)
        model = build_model(temp / "yolo640.tflite")
        result = {"goals": GOALS, "load_average": round(os.getloadavg()[0], 2), "per_image": per_image(model, photos(temp), args.rounds),
                  "nms": nms_figures(args.nms_runs)}
    if not args.json_only:
        row, nms = result["per_image"], result["nms"]
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; wall and CPU-time medians")
        print(f"{'per image, 640x640 YOLO grid':<30} {'tfedge ms':>10} {'bare ms':>9} {'ratio':>6} "
              f"{'tfedge cpu':>11} {'bare cpu':>9} {'ratio':>6}  same boxes")
        print(f"{', '.join(row['images']):<30} {row['tfedge_ms']:>10.2f} {row['bare_ms']:>9.2f} {row['ratio']:>6.3f} "
              f"{row['tfedge_cpu_ms']:>11.2f} {row['bare_cpu_ms']:>9.2f} {row['cpu_ratio']:>6.3f}  {row['same_boxes']}"
              f"   goal <= {GOALS['per_image_ratio_max']}")
        print(f"NMS, 8,400 candidates / 80 classes, all entering NMS: {nms['all_enter_nms_ms']:.3f} ms wall, "
              f"{nms['all_enter_nms_cpu_ms']:.3f} ms CPU (py_cpu_nms loop {nms['py_cpu_nms_loop_ms']:.1f} ms); "
              f"goal <= {GOALS['nms_8400_ms_max']} ms")
        print(f"YOLO-like (84, 8400) grid, decode + NMS at {THRESHOLD}: {nms['yolo_like_decode_and_nms_ms']:.3f} ms "
              f"wall, {nms['yolo_like_decode_and_nms_cpu_ms']:.3f} ms CPU ({nms['yolo_like_kept']} kept)")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
