"""Object detection on the device: image -> input tensor -> Model.predict -> boxes in the original image's pixels.

The library API (used by `tfedge-run detect` and by the host's detection evaluation):

    from tfedge_device.detect import Detector
    detector = Detector("model.tflite", labels="coco_labels.txt")   # layout, preprocessing, labels resolved once
    result = detector.detect("photo.jpg", threshold=0.4, top_k=100)  # -> Detected
    for obj in result.objects:                                        # Object(label_id, label, score, box)
        print(obj.label, obj.score, obj.box.xmin, obj.box.ymin, obj.box.xmax, obj.box.ymax)

    detect_image("model.tflite", "photo.jpg")                          # one call -> list[Object]
    detector.detect_pixels(uint8_array)                                # an image already in memory (H, W, 3|1)

The output layout (SSD's TFLite_Detection_PostProcess op, a YOLO grid, an end-to-end (1, N, 6) output) is
recognised from the model (layouts.py). Preprocessing comes from the manifest beside the model like classify's
(preprocess.image, with `fit`: "stretch" or "letterbox"; default per layout: SSD stretch, YOLO and
end-to-end letterbox as Ultralytics does); labels from --labels or the manifest; the manifest's
`detection.box_units` settles normalised vs pixel boxes for YOLO and end-to-end models (layouts.py).
Boxes are (xmin, ymin, xmax, ymax) in the original image's pixels (continuous coordinates, clipped to it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .classify import describe_run, find_manifest, label_source, resolve_spec, timed_runs
from .errors import BadInput
from .labels import check_labels
from .layouts import Candidates, Layout, recognise
from .model import Model
from .nms import IOU_THRESHOLD
from .preprocess import load_placed_image, prepare_image

log = logging.getLogger(__name__)

TASK = "object-detection"  # the manifest's task for detectors
THRESHOLD = 0.4  # pycoral's detect_image default
TOP_K = 100


class Box(NamedTuple):
    """(xmin, ymin, xmax, ymax) in the original image's pixels."""

    xmin: float
    ymin: float
    xmax: float
    ymax: float


@dataclass(frozen=True)
class Object:
    """One detected object: class id, label (the id as text without labels), score, box."""

    label_id: int
    label: str
    score: float
    box: Box

    def to_dict(self) -> dict:
        return {"id": self.label_id, "label": self.label, "score": round(self.score, 6),
                "box": [round(v, 2) for v in self.box]}


@dataclass
class Detected:
    """One image's objects (by descending score) and timings in ms: preprocess (decode, colour, resize or
    letterbox, normalise), inference per run (quantize input, invoke, dequantize outputs), decode (boxes,
    NMS, mapping to the original image)."""

    image: str
    size: tuple  # original (width, height)
    objects: list
    preprocess_ms: float
    inference_ms: list = field(default_factory=list)
    decode_ms: float = 0.0

    def to_dict(self) -> dict:
        return {"image": self.image, "size": list(self.size), "objects": [o.to_dict() for o in self.objects],
                "preprocess_ms": round(self.preprocess_ms, 3),
                "inference_ms": [round(t, 3) for t in self.inference_ms], "decode_ms": round(self.decode_ms, 3)}


class Detector:
    """A detection model ready to run on images: layout, preprocessing and labels resolved once.

    Args:
      model_path: the .tflite file; threads, edgetpu: as Model; labels: a label file overriding the manifest's;
      preset, resize, fit: overrides of the preprocessing (fit: "stretch" or "letterbox").
    Raises BadInput (exit 2) for a model of no known detection layout, labels that do not fit, bad images.
    """

    def __init__(self, model_path, threads: int | None = None, edgetpu: bool = False, labels=None,
                 preset: str | None = None, resize: str | None = None, fit: str | None = None):
        model_path = Path(model_path)
        self.model = Model(model_path, threads=threads, edgetpu=edgetpu)
        self.manifest, self.manifest_name = find_manifest(model_path)
        self.model.check_manifest(self.manifest, self.manifest_name)
        task = (self.manifest or {}).get("task")
        if task not in (None, TASK):
            raise BadInput(f"{model_path.name} is a {task} model, not an object detector",
                           hint="use tfedge-run classify or embed for it")
        self.layout: Layout = recognise(self.model, self.manifest)
        self.spec, self.spec_origin = resolve_spec(self.model, self.manifest, preset, resize, fit,
                                                   self.layout.default_fit, self.layout.default_preset)
        self.labels, self.labels_origin = label_source(self.manifest, labels)
        if self.labels is not None and self.layout.num_classes is not None:
            check_labels(self.labels, self.layout.num_classes, self.labels_origin)
        if self.manifest is None:
            log.info("no manifest beside %s: preprocessing from the %s", model_path.name, self.spec_origin)

    @property
    def input_size(self) -> tuple:
        """(height, width) of the model's input."""
        return self.spec.height, self.spec.width

    def detect(self, path, threshold: float = THRESHOLD, top_k: int = TOP_K, iou: float = IOU_THRESHOLD,
               count: int = 1) -> Detected:
        """Detect objects in one image file; count > 1 repeats and times the inference (pycoral's --count)."""
        started = time.perf_counter()
        pixels, placement = load_placed_image(path, self.spec)
        return self._run(str(path), pixels, placement, started, threshold, top_k, iou, count)

    def detect_pixels(self, image: np.ndarray, threshold: float = THRESHOLD, top_k: int = TOP_K,
                      iou: float = IOU_THRESHOLD, name: str = "array") -> Detected:
        """Detect objects in an image held in memory: uint8 [H, W, 3] RGB or [H, W] / [H, W, 1] grey."""
        from PIL import Image

        started = time.perf_counter()
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3)):
            raise BadInput(f"image array must be uint8 [H, W], [H, W, 1] or [H, W, 3]; got {array.dtype} "
                           f"{list(array.shape)}")
        pil = Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[2] == 1 else array)
        pixels, placement = prepare_image(pil, self.spec, name)
        return self._run(name, pixels, placement, started, threshold, top_k, iou, 1)

    def _run(self, name, pixels, placement, started, threshold, top_k, iou, count) -> Detected:
        prepared = time.perf_counter()
        outputs, times = timed_runs(self.model, [pixels[None]], count)
        decoding = time.perf_counter()
        found = self.layout.decode(outputs, self.input_size, threshold, iou, top_k)
        objects = self.objects(found, placement.to_original(found.boxes))
        return Detected(name, (placement.width, placement.height), objects, (prepared - started) * 1e3, times,
                        (time.perf_counter() - decoding) * 1e3)

    def objects(self, found: Candidates, boxes: np.ndarray) -> list[Object]:
        """Candidates with their boxes in the original image -> Objects, labelled."""
        labels = self.labels
        ids, scores = found.classes.tolist(), found.scores.tolist()
        if labels is not None and ids and max(ids) >= len(labels):
            raise BadInput(f"{self.labels_origin} has {len(labels)} labels but {self.model.path.name} "
                           f"detected class id {max(ids)}", hint="give the label file made for this model")
        return [Object(i, labels[i] if labels is not None else str(i), s, Box(*b))
                for i, s, b in zip(ids, scores, boxes.tolist())]

    def describe(self) -> dict:
        return describe_run(self, layout=self.layout.describe())


def detect_image(model, image, threshold: float = THRESHOLD, top_k: int = TOP_K,
                 iou: float = IOU_THRESHOLD, labels=None) -> list[Object]:
    """One call: `model` (a Detector or a .tflite path) on `image` (a path) -> list[Object], best first."""
    detector = model if isinstance(model, Detector) else Detector(model, labels=labels)
    return detector.detect(image, threshold, top_k, iou).objects
