"""Detection accuracy: COCO-style mAP of a converted detector on images with COCO ground truth.

The model runs through `tfedge_device.detect.Detector` (the device's one inference path: the layout recognised
from the model, preprocessing and labels from its manifest, boxes in the original image's pixels); the metric is
pycocotools' COCOeval (the reference implementation of COCO's mAP, not a re-implementation):
  map_50      AP at IoU 0.5 (PASCAL-style), averaged over the classes;
  map_50_95   AP averaged over IoU 0.5, 0.55, ..., 0.95 (COCO's primary metric).
DATA: a COCO annotations JSON (`images` with `file_name` relative to the JSON's folder, `annotations` with
[x, y, width, height] boxes, `categories`), or a folder holding `annotations.json` (what
models/detect/scenes.py writes). Categories are matched to the model's labels by name, else by id.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

import numpy as np

from ..errors import BadInput, EnvironmentMissing

ANNOTATIONS_FILE = "annotations.json"
# Every detection the model keeps counts toward AP (COCO evaluates up to 100 per image, lowest scores included).
EVAL_THRESHOLD = 0.0
EVAL_TOP_K = 100


def annotations_path(data: str | Path) -> Path:
    path = Path(data)
    if path.is_dir():
        path = path / ANNOTATIONS_FILE
        if not path.is_file():
            raise BadInput(f"{data} has no {ANNOTATIONS_FILE} (COCO ground truth)",
                           hint="write one with models/detect/scenes.py, or pass the COCO JSON itself")
    elif not path.is_file():
        raise BadInput(f"evaluation data not found: {data}")
    return path


def load_ground_truth(path: Path) -> dict:
    try:
        truth = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"{path.name} is not a JSON file: {err}") from None
    if not isinstance(truth, dict) or not all(isinstance(truth.get(k), list) for k in ("images", "annotations",
                                                                                        "categories")):
        raise BadInput(f"{path.name} is not COCO ground truth (needs lists images, annotations, categories)")
    if not truth["images"]:
        raise BadInput(f"{path.name} lists no images")
    return truth


def category_map(categories: list[dict], labels: list[str] | None) -> dict[int, int]:
    """Model class index -> COCO category id: by label name when every category is named in the labels,
    else the ids themselves (refused when they do not fit the labels)."""
    names = {c["name"]: c["id"] for c in categories}
    if labels and all(name in labels for name in names):
        return {labels.index(name): category for name, category in names.items()}
    ids = [c["id"] for c in categories]
    if labels and (min(ids) < 0 or max(ids) >= len(labels)):
        raise BadInput(f"category names {sorted(names)[:5]} are not the model's labels and ids {min(ids)}.."
                       f"{max(ids)} do not fit its {len(labels)} labels")
    return {category: category for category in ids}


def _pick(images: list[dict], limit: int | None) -> list[dict]:
    if not limit or limit >= len(images):
        return images
    picks = np.linspace(0, len(images) - 1, limit).round().astype(int)
    return [images[i] for i in picks]


def detector_for(spec: str, threads: int | None = None):
    """A device Detector for a converted model (it refuses a classifier or any model of no detection layout,
    exit 2); a source model is bad input here."""
    from tfedge_device.detect import Detector

    if not str(spec).endswith(".tflite"):
        raise BadInput(f"--task detection evaluates converted models (.tflite), not the source {spec}",
                       hint="convert it first: tfedge convert SOURCE -o model.tflite --quant float32")
    return Detector(spec, threads=threads)


def evaluate_detection(spec: str, data: str | Path, limit: int | None = None, threads: int | None = None) -> dict:
    """mAP@0.5 and mAP@0.5:0.95 of the converted detector `spec` on COCO ground truth `data`."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        raise EnvironmentMissing("pycocotools is not installed", hint="pip install pycocotools") from None
    path = annotations_path(data)
    truth = load_ground_truth(path)
    detector = detector_for(spec, threads)
    mapping = category_map(truth["categories"], detector.labels)
    images = _pick(truth["images"], limit)
    results = []
    started = time.perf_counter()
    for image in images:
        file = path.parent / image["file_name"]
        if not file.is_file():
            raise BadInput(f"{path.name} names an image that is not there: {file}")
        found = detector.detect(file, threshold=EVAL_THRESHOLD, top_k=EVAL_TOP_K)
        for obj in found.objects:
            if obj.label_id not in mapping:
                continue  # a class the ground truth does not have cannot be right or wrong
            box = obj.box
            results.append({"image_id": image["id"], "category_id": mapping[obj.label_id], "score": float(obj.score),
                            "bbox": [float(box.xmin), float(box.ymin), float(box.xmax - box.xmin),
                                     float(box.ymax - box.ymin)]})
    seconds = time.perf_counter() - started
    kept = {image["id"] for image in images}
    subset = {**truth, "images": images, "annotations": [a for a in truth["annotations"] if a["image_id"] in kept]}
    for annotation in subset["annotations"]:
        annotation.setdefault("iscrowd", 0)
        annotation.setdefault("area", float(annotation["bbox"][2] * annotation["bbox"][3]))
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground = COCO()
        ground.dataset = subset
        ground.createIndex()
        if results:
            evaluation = COCOeval(ground, ground.loadRes(results), "bbox")
            evaluation.params.imgIds = sorted(kept)
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
            stats = [max(float(v), 0.0) for v in evaluation.stats[:2]]
        else:
            stats = [0.0, 0.0]
    return {"model": str(spec), "kind": "tflite", "task": "detection", "data": f"{len(images)} images from {path}",
            "samples": len(images), "objects": len(subset["annotations"]), "detections": len(results),
            "map_50_95": stats[0], "map_50": stats[1], "layout": detector.describe().get("layout"),
            "seconds": round(seconds, 3)}
