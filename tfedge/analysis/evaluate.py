"""Accuracy of a model variant on real data: top-1/top-5 against labels, or cosine to a reference model.

A variant is a converted `.tflite` (run through `tfedge_device.model.Model`, the one inference path) or the
source model (any SOURCE of `tfedge.convert.sources`, run in TensorFlow), so float and int8 figures compare.
Data:
  * `.npz` with `x` (or arrays named after the inputs) holding MODEL-READY inputs [N, ...] (already
    preprocessed, e.g. models/digits/test.npz is in [0, 1]), and optionally `y` (class indices [N]) and/or
    `reference` (expected outputs [N, ...], e.g. embeddings, compared by cosine);
  * an image folder with one sub-folder per class (names matched to the labels), preprocessed as the
    manifest says (or --preprocess).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tfedge_device.manifest import read_manifest
from tfedge_device.preprocess import ImageSpec, list_images, load_image

from ..convert.verify import TASKS_WITHOUT_TOP1, compare_outputs
from ..errors import BadInput

log = logging.getLogger(__name__)


class Variant:
    """One model to measure: `.name`, `.kind` ("tflite" | "source"), `.inputs` (name, shape, dtype),
    `.predict(list of batch-1 arrays) -> list of float outputs`, `.manifest`, `.path`."""

    def __init__(self, spec: str, threads: int | None = None, load_options=None):
        self.spec = spec
        prefix, _, rest = spec.partition(":")
        if prefix in ("keras-app", "hf"):  # hf: the directory's last two names (".../all-MiniLM/model")
            self.name = f"{prefix}:{'/'.join(Path(rest).parts[-2:])}"
            self.path = Path(rest) if prefix == "hf" else None
        else:
            self.name, self.path = Path(spec).name, Path(spec)
        self.manifest = None
        if spec.endswith(".tflite"):
            from tfedge_device.model import Model

            self.kind = "tflite"
            self.model = Model(spec, threads=threads)
            self.manifest = read_manifest(spec)
            # the allocated shapes (a dynamic dimension, -1 in the signature, has its default size here);
            # quantized inputs take real values (Model quantizes them): float32 in the real domain
            details = self.model.interpreter.get_input_details()
            current = [tuple(int(d) for d in detail["shape"]) for detail in details]
            self.inputs = [(s.name, shape, np.dtype(np.float32) if s.quantized else s.dtype)
                           for s, shape in zip(self.model.inputs, current)]
            self.dynamic = [tuple(d < 0 for d in s.shape) for s in self.model.inputs]
        else:
            from ..convert.sources import load_source

            self.kind = "source"
            self.model = load_source(spec, load_options)
            self.inputs = [(s.name, s.shape, np.dtype(s.dtype)) for s in self.model.inputs]
            self.dynamic = [(False,) * len(s.shape) for s in self.model.inputs]

    def fits(self, position: int, shape: tuple) -> bool:
        """Does a per-sample array of `shape` fit input `position` (dynamic dimensions take any size)?"""
        expected = self.inputs[position][1][1:]
        dynamic = self.dynamic[position][1:]
        return len(shape) == len(expected) and all(d or a == e for a, e, d in zip(shape, expected, dynamic))

    def predict(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        if self.kind == "tflite":
            shapes = [tuple(a.shape) for a in arrays]
            if shapes != [shape for _, shape, _ in self.inputs]:  # a dynamic dimension of another size
                self.model.resize_inputs(shapes)
                self.inputs = [(name, shape, dtype) for (name, _, dtype), shape in zip(self.inputs, shapes)]
            return self.model.predict(*arrays)
        return self.model.predict(arrays)

    @property
    def task(self) -> str | None:
        """The manifest's (or source's) task, e.g. image-classification, sentence-embedding."""
        if self.manifest:
            return self.manifest.get("task")
        return getattr(self.model, "task", None) if self.kind == "source" else None

    @property
    def labels(self) -> list[str] | None:
        if self.manifest and self.manifest.get("labels"):
            return list(self.manifest["labels"])
        return getattr(self.model, "labels", None)

    def image_spec(self, preset: str | None) -> ImageSpec:
        """How images become this variant's input: the manifest's spec, with `preset` overriding it."""
        image = ((self.manifest or {}).get("preprocess") or {}).get("image")
        if image:
            spec = ImageSpec.from_dict(image)
            return ImageSpec(spec.height, spec.width, spec.channels, preset or spec.preset, spec.resize)
        default = getattr(self.model, "preprocess", None) if self.kind == "source" else None
        if preset is None and default is None:
            raise BadInput(f"{self.name} has no manifest saying how to preprocess images",
                           hint="pass --preprocess (unit, mobilenet, caffe, torch or raw)")
        return ImageSpec.from_shape(self.inputs[0][1], preset or default)


def options_from_manifest(options, manifest: dict | None):
    """LoadOptions for a source compared with a converted variant: what the user did not say (an hf:
    source's task and sequence length) is taken from the variant's manifest, so the shapes match."""
    from dataclasses import replace

    from ..convert.sources import LoadOptions

    options = options or LoadOptions()
    text = (manifest or {}).get("text") or {}
    if options.seq_len is None and text.get("seq_len"):
        options = replace(options, seq_len=int(text["seq_len"]))
    if options.task is None and text and manifest.get("task"):
        options = replace(options, task=manifest["task"])
    return options


@dataclass
class EvalData:
    """Samples (list of batch-1 input arrays each) with labels and/or reference outputs."""

    samples: list[list[np.ndarray]]
    origin: str
    labels: np.ndarray | None = None
    reference: np.ndarray | None = None
    class_names: list[str] | None = None


def load_data(path: str | Path, variant: Variant, preset: str | None = None, limit: int | None = None,
              need_targets: bool = True) -> EvalData:
    """DATA (a .npz or a class-per-folder image directory) fitted to `variant`'s inputs. `need_targets`:
    refuse data without labels or reference outputs (not needed when a reference variant gives them)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"evaluation data not found: {path}")
    if path.is_dir():
        data = _from_folder(path, variant, preset, limit)
    elif path.suffix == ".npz":
        data = _from_npz(path, variant, limit)
    else:
        raise BadInput(f"unsupported evaluation data {path.name}: give a .npz (x, y) or a folder of class folders")
    if need_targets and data.labels is None and data.reference is None:
        raise BadInput(f"{path.name} has neither labels (y) nor reference outputs (reference)",
                       hint="add y (class indices) for accuracy, or reference outputs for cosine, "
                            "or compare against another variant with --reference")
    return data


def _from_npz(path: Path, variant: Variant, limit: int | None) -> EvalData:
    from ..convert.calibration import load_numpy

    with load_numpy(path) as archive:
        names = [name for name, _, _ in variant.inputs]
        keys = [matching_key(name, archive.files) for name in names]
        if None not in keys:
            arrays = [archive[key] for key in keys]
        elif "x" in archive.files and len(names) == 1:
            arrays = [archive["x"]]
        else:
            raise BadInput(f"{path.name} holds {archive.files}; expected 'x' (model-ready inputs) or arrays "
                           f"named after the inputs ({', '.join(names)})")
        labels = archive["y"] if "y" in archive.files else None
        reference = archive["reference"] if "reference" in archive.files else None
    count = len(arrays[0])
    for position, (array, (name, shape, dtype)) in enumerate(zip(arrays, variant.inputs)):
        if not variant.fits(position, tuple(array.shape[1:])) or array.dtype.kind not in "fiub":
            raise BadInput(f"{path.name}: array of shape {list(array.shape)} ({array.dtype}) does not fit input "
                           f"{name!r} of shape {list(shape)}")
        if len(array) != count:
            raise BadInput(f"{path.name}: input arrays hold different numbers of samples")
    for extra, what in ((labels, "y"), (reference, "reference")):
        if extra is not None and len(extra) != count:
            raise BadInput(f"{path.name}: {what} has {len(extra)} entries for {count} samples")
    if labels is not None and labels.dtype.kind not in "iu":
        raise BadInput(f"{path.name}: y must hold integer class indices, not {labels.dtype}")
    count = min(count, limit or count)
    samples = [[a[i:i + 1].astype(dtype, copy=False) for a, (_, _, dtype) in zip(arrays, variant.inputs)]
               for i in range(count)]
    return EvalData(samples, f"{count} samples from {path.name}",
                    labels=None if labels is None else labels[:count].astype(np.int64),
                    reference=None if reference is None else reference[:count])


def matching_key(input_name: str, keys: list[str]) -> str | None:
    """The archive key for an input: its exact name, or the name the source gave it (a converted model's
    inputs are called e.g. 'serving_default_token_ids:0' for the source's 'token_ids')."""
    if input_name in keys:
        return input_name
    bare = input_name.split(":")[0].removeprefix("serving_default_")
    return bare if bare in keys else None


def _from_folder(path: Path, variant: Variant, preset: str | None, limit: int | None) -> EvalData:
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise BadInput(f"{path} has no class sub-folders", hint="arrange images as DATA/<label>/*.png")
    index = class_indices(classes, variant.labels)
    spec = variant.image_spec(preset)
    files, labels = [], []
    for name in classes:
        found = list_images([path / name])
        files += found
        labels += [index[name]] * len(found)
    if not files:
        raise BadInput(f"no images in the class folders of {path}")
    if limit:
        picks = np.linspace(0, len(files) - 1, min(limit, len(files))).round().astype(int)
        files, labels = [files[i] for i in picks], [labels[i] for i in picks]
    samples = [[load_image(f, spec)[None]] for f in files]
    return EvalData(samples, f"{len(files)} images in {len(classes)} classes from {path}",
                    labels=np.asarray(labels, np.int64), class_names=classes)


def class_indices(folders: list[str], labels: list[str] | None) -> dict[str, int]:
    """Folder name -> class index: by the model's labels when they name every folder, else integer folder
    names, else refuse (guessing an order would report a wrong accuracy)."""
    if labels and all(name in labels for name in folders):
        return {name: labels.index(name) for name in folders}
    if all(name.isdigit() for name in folders):
        return {name: int(name) for name in folders}
    raise BadInput("class folder names do not match the model's labels: " + ", ".join(folders[:5]),
                   hint="name the folders after the labels in the manifest, or by class index (0, 1, ...)")


def run_variant(variant: Variant, data: EvalData) -> list[list[np.ndarray]]:
    """Every sample through the variant -> list of output lists."""
    return [[np.asarray(out) for out in variant.predict(arrays)] for arrays in data.samples]


def check_fits(reference: Variant, variant: Variant) -> None:
    """The reference must take the same per-sample input shapes as the evaluated variant."""
    ours = [tuple(shape[1:]) for _, shape, _ in variant.inputs]
    theirs = [tuple(shape[1:]) for _, shape, _ in reference.inputs]
    if len(ours) != len(theirs) or not all(reference.fits(i, shape) for i, shape in enumerate(ours)):
        raise BadInput(f"reference {reference.name} takes inputs {theirs}, {variant.name} takes {ours}",
                       hint="build the source with the same shapes (e.g. --seq-len for hf: sources)")


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float | None:
    """Fraction of rows whose label is among the k highest scores (None when there are fewer than k+1
    classes: top-5 of a 5-class model says nothing)."""
    classes = scores.shape[-1]
    if classes == 1 or (k > 1 and classes <= k):
        return None
    top = np.argsort(-scores, axis=-1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def accuracy(outputs: list[list[np.ndarray]], labels: np.ndarray) -> dict:
    scores = np.concatenate([out[0].reshape(1, -1) for out in outputs])
    if scores.shape[-1] == 1:  # one sigmoid unit: class 1 above 0.5
        top1 = float(np.mean((scores[:, 0] > 0.5).astype(np.int64) == labels))
        return {"top1": top1, "top5": None, "classes": 2}
    if labels.max(initial=0) >= scores.shape[-1] or labels.min(initial=0) < 0:
        raise BadInput(f"labels range {labels.min()}..{labels.max()} but the model has {scores.shape[-1]} classes")
    return {"top1": top_k_accuracy(scores, labels, 1), "top5": top_k_accuracy(scores, labels, 5),
            "classes": int(scores.shape[-1])}


def evaluate(spec: str, data_path: str | Path, reference: str | None = None, preset: str | None = None,
             limit: int | None = None, threads: int | None = None, load_options=None) -> dict:
    """Evaluate variant `spec` on DATA: accuracy (labels), cosine to stored reference outputs, and/or
    agreement with a `reference` variant (another .tflite or the source)."""
    variant = spec if isinstance(spec, Variant) else Variant(spec, threads, load_options)
    reference_variant = None
    if reference is not None:
        options = options_from_manifest(load_options, variant.manifest)
        reference_variant = reference if isinstance(reference, Variant) else Variant(reference, threads, options)
    data = load_data(data_path, variant, preset, limit, need_targets=reference_variant is None)
    started = time.perf_counter()
    outputs = run_variant(variant, data)
    seconds = time.perf_counter() - started
    result = {"model": variant.spec, "kind": variant.kind, "data": data.origin, "samples": len(data.samples),
              "top1": None, "top5": None, "cosine_mean": None, "cosine_min": None, "top1_agreement": None, "reference": None,
              "seconds": round(seconds, 3)}
    if data.labels is not None:
        result.update(accuracy(outputs, data.labels))
    if data.reference is not None:
        stored = [[data.reference[i:i + 1]] for i in range(len(outputs))]
        figures = compare_outputs(stored, [out[:1] for out in outputs])
        result.update(cosine_mean=figures["cosine_mean"], cosine_min=figures["cosine_min"],
                      reference=f"reference outputs in {Path(data_path).name}")
    if reference_variant is not None:
        check_fits(reference_variant, variant)
        figures = compare_outputs(run_variant(reference_variant, data), outputs,
                                  top1=variant.task not in TASKS_WITHOUT_TOP1)
        result.update(cosine_mean=figures["cosine_mean"], cosine_min=figures["cosine_min"],
                      top1_agreement=figures["top1_agreement"], reference=reference_variant.spec)
    return result
