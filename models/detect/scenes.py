"""Detection scenes from real images: scikit-learn's handwritten digits on crops of its bundled photos.

Each scene is a SIZE x SIZE RGB canvas: a crop of `china.jpg` or `flower.jpg` (the two real photos scikit-learn
ships, dimmed so the strokes stand out) with 1-4 digits (real 8x8 scans, upscaled 1.8-3.6x, in a random bright
colour) at random positions, overlapping each other at most a little. The ground truth of a digit is the tight
box of its strokes, in canvas pixels, and its class (the digit).

Deterministic (fixed seeds). The splits are disjoint in everything that is real:
  train     digits of the training split of models/digits (train_test_split, seed 0, 25 % held out) on crops
            of the top 60 % of each photo;
  heldout   the held-out digits (never seen in training, by the detector or the digits CNN) on crops of the
            bottom 40 % of each photo.

Usage: python models/detect/scenes.py --split heldout --count 500 --out DIR
  writes DIR/scene_NNNN.png and DIR/annotations.json (COCO format: images, annotations with [x, y, w, h]
  boxes, categories with ids 0..9) — what `tfedge eval --task detection --data DIR` reads.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SIZE = 64  # canvas (and model input) side in pixels
CLASSES = [str(digit) for digit in range(10)]
SPLIT_SEEDS = {"train": 1, "heldout": 2}
PHOTO_ROWS = {"train": (0.0, 0.6), "heldout": (0.6, 1.0)}  # the part of each photo a split's crops come from
MAX_DIGITS = 4
SCALE_RANGE = (1.8, 3.6)  # digit side 14..29 px
STROKE_THRESHOLD = 0.25  # alpha above which a pixel is part of the digit's box
MAX_OVERLAP = 0.1  # IoU allowed between two digits of a scene


@dataclass
class Scene:
    image: np.ndarray  # [SIZE, SIZE, 3] uint8
    boxes: np.ndarray  # [N, 4] float32, (xmin, ymin, xmax, ymax) in pixels, max exclusive
    classes: np.ndarray  # [N] int64


def digit_split(split: str):
    """(images [N, 8, 8] in [0, 1], labels [N]) of the models/digits split the scenes' digits come from."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    train_x, test_x, train_y, test_y = train_test_split(images, digits.target, test_size=0.25, random_state=0,
                                                        stratify=digits.target)
    return (train_x, train_y) if split == "train" else (test_x, test_y)


def photos(split: str) -> list[np.ndarray]:
    """The split's rows of scikit-learn's two bundled photos, as float [H, W, 3] in [0, 1]."""
    from sklearn.datasets import load_sample_images

    top, bottom = PHOTO_ROWS[split]
    out = []
    for image in load_sample_images().images:
        rows = image.shape[0]
        out.append(image[int(top * rows):int(bottom * rows)].astype(np.float32) / 255.0)
    return out


def _resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float [H, W] or [H, W, C] array (Pillow, per channel)."""
    from PIL import Image

    planes = array[..., None] if array.ndim == 2 else array
    resized = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c]), "F")
                                   .resize((width, height), Image.Resampling.BILINEAR))
                        for c in range(planes.shape[-1])], -1)
    return resized[..., 0] if array.ndim == 2 else resized


def _iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    if not len(others):
        return np.zeros(0)
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / (area + areas - inter)


def compose(rng: np.random.Generator, digits: np.ndarray, labels: np.ndarray, backgrounds) -> Scene:
    """One scene: a dimmed photo crop with 1..MAX_DIGITS digits alpha-blended in bright colours."""
    photo = backgrounds[rng.integers(len(backgrounds))]
    side = int(rng.integers(SIZE, min(photo.shape[:2]) + 1))
    top = int(rng.integers(photo.shape[0] - side + 1))
    left = int(rng.integers(photo.shape[1] - side + 1))
    canvas = _resize(photo[top:top + side, left:left + side], SIZE, SIZE) * rng.uniform(0.3, 0.6)
    boxes, classes = [], []
    for _ in range(int(rng.integers(1, MAX_DIGITS + 1))):
        index = int(rng.integers(len(digits)))
        side = round(8 * rng.uniform(*SCALE_RANGE))
        alpha = np.clip(_resize(digits[index], side, side), 0.0, 1.0)
        rows = np.flatnonzero((alpha > STROKE_THRESHOLD).any(1))
        cols = np.flatnonzero((alpha > STROKE_THRESHOLD).any(0))
        for _attempt in range(20):
            y = int(rng.integers(-rows[0], SIZE - rows[-1]))  # the strokes stay inside the canvas
            x = int(rng.integers(-cols[0], SIZE - cols[-1]))
            box = np.array([x + cols[0], y + rows[0], x + cols[-1] + 1, y + rows[-1] + 1], np.float32)
            if not len(boxes) or _iou(box, np.array(boxes)).max() <= MAX_OVERLAP:
                break
        else:
            continue
        color = rng.uniform(0.75, 1.0, 3).astype(np.float32)
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + side, SIZE), min(x + side, SIZE)
        patch = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
        canvas[y0:y1, x0:x1] = canvas[y0:y1, x0:x1] * (1 - patch) + color * patch
        boxes.append(box)
        classes.append(int(labels[index]))
    image = np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)
    return Scene(image, np.array(boxes, np.float32).reshape(-1, 4), np.array(classes, np.int64))


def scenes(split: str, count: int, seed_offset: int = 0) -> list[Scene]:
    """`count` scenes of `split` (train | heldout), the same for the same arguments."""
    if split not in SPLIT_SEEDS:
        raise ValueError(f"unknown split {split!r}: train or heldout")
    digits, labels = digit_split(split)
    backgrounds = photos(split)
    rng = np.random.default_rng([SPLIT_SEEDS[split], seed_offset])
    return [compose(rng, digits, labels, backgrounds) for _ in range(count)]


def coco_annotations(items: list[Scene], file_names: list[str]) -> dict:
    """COCO detection ground truth (boxes as [x, y, width, height] in pixels)."""
    images, annotations = [], []
    for image_id, (scene, name) in enumerate(zip(items, file_names), start=1):
        images.append({"id": image_id, "file_name": name, "height": SIZE, "width": SIZE})
        for box, label in zip(scene.boxes, scene.classes):
            x0, y0, x1, y1 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": int(label),
                                "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0),
                                "iscrowd": 0})
    categories = [{"id": index, "name": name} for index, name in enumerate(CLASSES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def write_split(split: str, count: int, out: Path) -> Path:
    """Write `count` scenes as PNGs plus annotations.json (COCO) into `out`; returns the JSON's path."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    items = scenes(split, count)
    names = [f"scene_{index:04d}.png" for index in range(count)]
    for scene, name in zip(items, names):
        Image.fromarray(scene.image, "RGB").save(out / name)
    path = out / "annotations.json"
    path.write_text(json.dumps(coco_annotations(items, names)))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="heldout")
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    path = write_split(args.split, args.count, args.out)
    print(f"wrote {args.count} {args.split} scenes and {path}")


if __name__ == "__main__":
    main()
