"""Image classification on the device: image file -> input tensor -> Model.predict -> top-k classes.

Preprocessing and labels come from the manifest `tfedge convert` wrote beside the model; without one they are
derived from the input tensor (shape, and the real value range its quantization implies), as pycoral's
classify_image does for Coral models. Scores are the model's first output, dequantized (Model does that).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput
from .labels import check_labels, read_labels
from .manifest import find_manifest
from .model import Model, TensorSpec
from .preprocess import ImageSpec, load_image

log = logging.getLogger(__name__)

# Real-valued input range implied by a quantized input -> the preset producing it. pycoral's
# classify_image feeds Coral's uint8 models (x - 128) / 128, i.e. [-1, 1] ("mobilenet").
RANGE_PRESETS = (((0.0, 1.0), "unit"), ((-1.0, 1.0), "mobilenet"), ((0.0, 255.0), "raw"))
RANGE_TOLERANCE = 0.05  # of the range's width
FLOAT_INPUT_PRESET = "unit"  # what `tfedge convert` assumes for image sources without a preset
TEXT_HINTS = {"sequence-classification": 'pass --text "..." (or --file) instead of --input',
              "sentence-embedding": "use tfedge-run embed for sentence embeddings"}


@dataclass(frozen=True)
class Prediction:
    """One class: id, label (the id as text without labels) and score."""

    id: int
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"id": self.id, "label": self.label, "score": round(self.score, 6)}


@dataclass
class Classified:
    """One classified item, an image file or a text (`kind`), with its classes and timings: preprocess_ms
    (decode, colour, resize, normalise; or tokenize) and inference_ms per run (quantize input, invoke,
    dequantize output)."""

    item: str
    classes: list
    preprocess_ms: float
    inference_ms: list = field(default_factory=list)
    kind: str = "image"

    @property
    def name(self) -> str:
        """The item as printed: an image's path, a text cut to 70 characters."""
        return self.item if self.kind != "text" or len(self.item) <= 70 else self.item[:67] + "..."

    def to_dict(self) -> dict:
        return {
            self.kind: self.item,
            "classes": [c.to_dict() for c in self.classes],
            "preprocess_ms": round(self.preprocess_ms, 3),
            "inference_ms": [round(t, 3) for t in self.inference_ms],
        }


def image_input(model: Model) -> TensorSpec:
    """The model's single image input, [1, H, W, C] with C 1 or 3; BadInput otherwise."""
    if len(model.inputs) != 1:
        raise BadInput(
            f"{model.path.name} takes {len(model.inputs)} inputs; an image model takes one image input",
            hint="use tfedge-run embed for text models",
        )
    spec = model.inputs[0]
    shape = tuple(model.interpreter.get_input_details()[0]["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] not in (1, 3):
        raise BadInput(
            f"{model.path.name}'s input {spec.name!r} has shape {list(shape)}, not an image [1, H, W, 1|3]"
        )
    return spec


def range_preset(spec: TensorSpec) -> str | None:
    """The preset whose output range the quantized input spans, or None when none fits."""
    info = np.iinfo(spec.dtype)
    low, high = (info.min - spec.zero_point) * spec.scale, (info.max - spec.zero_point) * spec.scale
    for (want_low, want_high), preset in RANGE_PRESETS:
        slack = RANGE_TOLERANCE * (want_high - want_low)
        if abs(low - want_low) <= slack and abs(high - want_high) <= slack:
            return preset
    return None


def derive_preset(spec: TensorSpec) -> tuple[str, str]:
    """(preset, why) for a model without a manifest."""
    if spec.quantized:
        preset = range_preset(spec)
        if preset:
            return preset, f"{spec.dtype.name} input scale {spec.scale:.6g} zero point {spec.zero_point}"
        return "raw", (
            f"{spec.dtype.name} input range matches no preset (scale {spec.scale:.6g}, zero point "
            f"{spec.zero_point}); pixel values fed as they are"
        )
    if np.issubdtype(spec.dtype, np.integer):
        return "raw", f"{spec.dtype.name} input takes pixel values"
    return FLOAT_INPUT_PRESET, "float input without a manifest: assumed [0, 1] like tfedge convert"


def resolve_spec(
    model: Model, manifest: dict | None, preset: str | None = None, resize: str | None = None,
    fit: str | None = None, default_fit: str = "stretch", default_preset: str | None = None,
) -> tuple[ImageSpec, str]:
    """The ImageSpec to feed `model` and a phrase saying where it came from; flags override. `default_fit`
    applies when the manifest names no fit, `default_preset` to a float input without a manifest (detection:
    per output layout)."""
    tensor = image_input(model)
    shape = model.interpreter.get_input_details()[0]["shape"]
    image = ((manifest or {}).get("preprocess") or {}).get("image")
    if image:
        spec, origin = ImageSpec.from_dict({"fit": default_fit, **image}), "manifest"
    else:
        derived, why = ((default_preset, "the output layout's convention") if default_preset and not tensor.quantized
                        else derive_preset(tensor))
        spec, origin = ImageSpec.from_shape(shape, derived, default_fit), f"input tensor ({why})"
    if (spec.height, spec.width, spec.channels) != tuple(int(d) for d in shape[1:]):
        raise BadInput(
            f"manifest preprocessing {spec.height}x{spec.width}x{spec.channels} does not match the "
            f"input shape {[int(d) for d in shape]}"
        )
    overrides = {key: value for key, value in (("preset", preset), ("resize", resize), ("fit", fit)) if value}
    if overrides:
        base = spec.to_dict()
        if preset:  # a preset flag replaces the checkpoint's own mean/std too
            base.pop("mean", None), base.pop("std", None)
        spec = ImageSpec.from_dict({**base, **overrides})
        origin += " with " + ", ".join(f"--{key} {value}" for key, value in overrides.items())
    return spec, origin


def num_classes(model: Model) -> int:
    shape = model.interpreter.get_output_details()[0]["shape"]
    return int(np.prod(shape))


def label_source(manifest: dict | None, labels_path=None) -> tuple[list[str] | None, str | None]:
    """(labels, origin): the --labels file, else the manifest's, else (None, None) (ids are printed)."""
    if labels_path:
        return read_labels(labels_path), str(labels_path)
    if manifest and manifest.get("labels"):
        return list(manifest["labels"]), "manifest"
    return None, None


def resolve_labels(
    model: Model, manifest: dict | None, labels_path=None
) -> tuple[list[str] | None, str | None]:
    """label_source, checked against the classes of the model's first output."""
    labels, origin = label_source(manifest, labels_path)
    if labels is not None:
        check_labels(labels, num_classes(model), origin)
    return labels, origin


def probabilities(scores: np.ndarray, manifest: dict | None) -> np.ndarray:
    """Scores as the model's manifest describes them -> class probabilities: a model whose head outputs
    logits (`head.outputs: logits`, Hugging Face checkpoints) gets a softmax; others are returned as they are."""
    if ((manifest or {}).get("head") or {}).get("outputs") != "logits":
        return scores
    logits = np.asarray(scores, np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def top_k(scores: np.ndarray, k: int, threshold: float, labels: list[str] | None = None) -> list[Prediction]:
    """The k best classes scoring >= threshold, best first, ties by class id (pycoral's get_classes, but
    deterministic: its argpartition orders ties differently on x86-64 and ARM)."""
    scores = np.asarray(scores, np.float32).reshape(-1)
    best, values = np.argsort(-scores, kind="stable")[:k].tolist(), scores.tolist()  # Python ints/floats
    return [Prediction(i, labels[i] if labels else str(i), values[i]) for i in best if values[i] >= threshold]


def timed_runs(model: Model, values: list, count: int) -> tuple[list[np.ndarray], list[float]]:
    """Run `model` on `values` count times -> (the outputs of the last run, ms of each run)."""
    times = []
    for _ in range(count):
        started = time.perf_counter()
        outputs = model.predict(*values)
        times.append((time.perf_counter() - started) * 1e3)
    return outputs, times


class Classifier:
    """A model ready to classify image files: its ImageSpec and labels resolved once.

    Args:
      model_path: the .tflite file; threads, edgetpu: as Model; labels: a label file overriding the manifest's;
      preset, resize: overrides of the preprocessing.
    """

    def __init__(
        self,
        model_path,
        threads: int | None = None,
        edgetpu: bool = False,
        labels=None,
        preset: str | None = None,
        resize: str | None = None,
    ):
        model_path = Path(model_path)
        self.model = Model(model_path, threads=threads, edgetpu=edgetpu)
        self.manifest, self.manifest_name = find_manifest(model_path)
        self.model.check_manifest(self.manifest, self.manifest_name)
        task = (self.manifest or {}).get("task")
        if task not in (None, "image-classification"):
            raise BadInput(
                f"{model_path.name} is a {task} model, not an image classifier",
                hint=TEXT_HINTS.get(task, "use tfedge-run embed for text models"),
            )
        self.spec, self.spec_origin = resolve_spec(self.model, self.manifest, preset, resize)
        self.labels, self.labels_origin = resolve_labels(self.model, self.manifest, labels)
        if self.manifest is None:
            log.info("no manifest beside %s: preprocessing from the %s", model_path.name, self.spec_origin)

    def preprocess(self, path) -> np.ndarray:
        """Image file -> the model's input batch [1, H, W, C] in real values."""
        return load_image(path, self.spec)[None]

    def classify(self, path, top: int = 5, threshold: float = 0.1, count: int = 1) -> Classified:
        """Classify one image; with count > 1 the inference is repeated and each run timed (pycoral's --count)."""
        started = time.perf_counter()
        return self._run(str(path), self.preprocess(path), started, top, threshold, count)

    def classify_pixels(self, image: np.ndarray, top: int = 5, threshold: float = 0.1,
                        name: str = "array") -> Classified:
        """Classify an image held in memory (a video frame): uint8 [H, W, 3] RGB or [H, W] grey."""
        from PIL import Image

        from .preprocess import prepare_image

        started = time.perf_counter()
        pixels, _ = prepare_image(Image.fromarray(np.asarray(image, np.uint8)), self.spec, name)
        return self._run(name, pixels[None], started, top, threshold, 1)

    def _run(self, name: str, batch: np.ndarray, started: float, top: int, threshold: float,
             count: int) -> Classified:
        preprocessed = time.perf_counter()
        outputs, times = timed_runs(self.model, [batch], count)
        scores = probabilities(outputs[0], self.manifest)
        return Classified(name, top_k(scores, top, threshold, self.labels), (preprocessed - started) * 1e3, times)

    def describe(self) -> dict:
        return describe_run(self)


def describe_run(runner, **extra) -> dict:
    """What an image Classifier or Detector runs: model, runtime, manifest, preprocessing, labels (+ extra)."""
    return {
        "model": str(runner.model.path),
        "runtime": f"{runner.model.runtime.name} {runner.model.runtime.version}",
        "edgetpu": runner.model.edgetpu,
        "manifest": runner.manifest_name,
        **extra,
        "preprocess": {**runner.spec.to_dict(), "from": runner.spec_origin},
        "labels": runner.labels_origin or "none (class ids)",
    }
