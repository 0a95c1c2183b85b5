"""What prune, qat and cluster share: one flow with a technique plugged in (wrap -> fine-tune -> strip).

OUT is chosen by its suffix (checked before any training):
  * `OUT.tflite`: converted by tfedge.convert (`--quant`, default int8) with its manifest OUT.json;
  * `OUT.h5`: a tf_keras HDF5 model (what `tfedge convert OUT.h5` accepts);
  * anything else: a tf_keras SavedModel directory (also accepted by `tfedge convert`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tfedge_device.fileio import atomic_path, sha256_file

from ..errors import BadInput
from .data import TrainData, load_data
from .train import FitOptions, fit, set_seed

log = logging.getLogger(__name__)

PRUNING_NOTE = ("pruning pays off in compressed (gzip) size only: TFLite kernels still multiply the zeros, "
                "so the .tflite size and latency stay those of a dense model unless the runtime exploits sparsity")
CLUSTERING_NOTE = ("clustering pays off in compressed (gzip) size only: the .tflite still stores every weight; "
                   "shared values compress well")


@dataclass
class OptimizeRequest:
    model: str
    data: str
    output: Path
    val: str | None = None
    preset: str = "unit"
    strategy: str = "default"
    quant: str = "int8"  # mode of the .tflite figures, and of OUT.tflite
    fit: FitOptions = field(default_factory=FitOptions)
    options: dict = field(default_factory=dict)  # technique-specific (sparsity, clusters, ...)


@dataclass(frozen=True)
class Technique:
    name: str
    wrap: Callable  # (tf_keras model, request, TrainData, steps_per_epoch) -> (model, callbacks, start_epoch)
    strip: Callable  # trained model -> exportable tf_keras model
    inspect: Callable  # stripped model -> dict of technique figures
    h5_ok: bool = True  # False when the result needs tfmot's custom objects to load (QAT)
    float_variant: bool = True  # also report the optimized model converted to float32
    note: str = ""
    # a context in which the model is traced for conversion or saving (QAT: Dense kernels left to the converter)
    exporting: Callable = contextlib.nullcontext


def output_kind(output: Path) -> str:
    return "tflite" if output.suffix == ".tflite" else "h5" if output.suffix in (".h5", ".hdf5") else "savedmodel"


def check_output(output: Path, technique: Technique) -> None:
    """Fail before training when OUT cannot be written."""
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"output directory is not writable: {parent}")
    if output_kind(output) == "h5" and not technique.h5_ok:
        raise BadInput(f"{technique.name} cannot write {output.name}: its layers need tfmot to load from .h5",
                       hint="write OUT.tflite (converted to int8) or a SavedModel directory")


def outputs_probabilities(model) -> bool:
    """True when the model ends in softmax (probabilities), False for logits."""
    last = model.layers[-1]
    activation = getattr(last, "activation", None)
    name = getattr(activation, "__name__", "") or type(last).__name__
    return "softmax" in name.lower()


def compile_classifier(model, tf_keras, learning_rate: float, probabilities: bool) -> None:
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate),
                  loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities),
                  metrics=["accuracy"])


def check_labels_fit(data: TrainData, model) -> None:
    if data.y is None:
        raise BadInput(f"{data.origin} has no labels (y): fine-tuning needs class indices")
    units = model.outputs[0].shape[-1]
    if len(model.outputs) != 1 or units is None or units < 2:
        raise BadInput("fine-tuning needs a classifier with one output [N, classes]")
    if data.classes > units:
        raise BadInput(f"{data.origin} has class index {data.classes - 1} but the model has {units} classes")


def optimize(request: OptimizeRequest, technique: Technique) -> dict:
    """Load (bridging Keras 3), fine-tune under the technique, strip, measure, write OUT -> result dict."""
    from .keras_bridge import load_trainable, tf_keras_module
    from .measure import count_params, keras_top1
    from .strategy import get_strategy

    check_output(Path(request.output), technique)
    strategy = get_strategy(request.strategy)
    set_seed(request.fit.seed)
    tf_keras = tf_keras_module()
    with strategy.scope():
        bridged = load_trainable(request.model)
        model = bridged.model
        data = load_data(request.data, tuple(model.inputs[0].shape), request.preset, request.val)
        check_labels_fit(data, model)
        probabilities = outputs_probabilities(model)
        before = keras_top1(model, data.x_val, data.y_val)
        # measured now: tfmot wrappers share the original layers, so training changes `model` too
        baseline = original_variants(model, request.quant, data)
        steps = math.ceil(len(data.x) / request.fit.batch_size)
        wrapped, callbacks, start = technique.wrap(model, request, data, steps)
        compile_classifier(wrapped, tf_keras, request.fit.learning_rate, probabilities)
    options = FitOptions(**{**request.fit.__dict__, "start_from_epoch": start})
    training = fit(wrapped, tf_keras, data.x, data.y, (data.x_val, data.y_val), options, technique.name, callbacks)
    final = technique.strip(wrapped)
    after = keras_top1(final, data.x_val, data.y_val)
    result = {
        "technique": technique.name,
        "model": request.model,
        "data": data.describe(),
        "bridge": bridged.describe(),
        "strategy": {"name": request.strategy, "replicas": strategy.num_replicas_in_sync},
        "training": training,
        "params": count_params(final),
        "accuracy_before": before,
        "accuracy_after": after,
        technique.name: technique.inspect(final),
        "notes": bridged.notes + ([technique.note] if technique.note else []),
    }
    with technique.exporting():
        result["tflite"] = {**baseline, **optimized_variants(final, technique, request.quant, data)}
        result["output"] = write_output(final, request, data, result)
    return result


def converted_figures(variants: dict, data: TrainData) -> dict:
    """{name: (keras model, mode)} -> {name: figures of the converted model on the validation data}."""
    from .measure import tflite_figures, to_tflite

    return {name: {"mode": mode, **tflite_figures(to_tflite(model, mode, data.x), data.x_val, data.y_val)}
            for name, (model, mode) in variants.items()}


def original_variants(original, quant: str, data: TrainData) -> dict:
    """The original model as float32 and post-training `quant` (the baseline of every table)."""
    return converted_figures({"original float32": (original, "float32"),
                              f"original {quant} (post-training)": (original, quant)}, data)


def optimized_variants(optimized, technique: Technique, quant: str, data: TrainData) -> dict:
    variants = {f"{technique.name} float32": (optimized, "float32")} if technique.float_variant else {}
    variants[f"{technique.name} {quant}"] = (optimized, quant)
    return converted_figures(variants, data)


def write_output(model, request: OptimizeRequest, data: TrainData, result: dict) -> dict:
    """Write OUT atomically in the format its suffix names (see the module docstring)."""
    from .strategy import is_chief

    output = Path(request.output)
    kind = output_kind(output)
    if not is_chief():
        log.info("not the chief worker: %s is written by the chief", output)
        return {"path": None, "format": kind}
    if kind == "h5":
        with atomic_path(output) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tf_keras calls HDF5 "legacy"; it is what tfedge convert reads
            model.save(str(tmp), save_format="h5")
        return {"path": str(output), "format": "tf_keras HDF5 (.h5)"}
    if kind == "savedmodel":
        with atomic_path(output) as tmp:
            model.save(str(tmp), save_format="tf")
        return {"path": str(output), "format": "tf_keras SavedModel directory"}
    return {"path": str(output), "format": f"TFLite ({request.quant}) + manifest",
            "convert": convert_output(model, request, result, data.labels)}


def convert_output(model, request: OptimizeRequest, result: dict, labels: list[str] | None = None) -> dict:
    """Hand over to tfedge.convert (through a scratch SavedModel), then record where the model came from."""
    from tfedge_device.manifest import read_manifest, write_manifest

    from ..convert.pipeline import ConvertRequest, convert
    from ..convert.registry import get_mode

    with tempfile.TemporaryDirectory(prefix="tfedge_optimize_") as scratch:
        saved = Path(scratch) / "model"
        model.save(str(saved), save_format="tf")
        calibrated = get_mode(request.quant).needs_calibration
        converted = convert(ConvertRequest(source=str(saved), output=Path(request.output), mode=request.quant,
                                           calib=request.data if calibrated else None, preprocess=request.preset,
                                           show_progress=request.fit.show_progress))
    manifest = read_manifest(request.output)
    manifest["source"] = {"kind": "optimized", "location": request.model,
                          "sha256": sha256_file(request.model) if Path(request.model).is_file() else None,
                          "inputs": manifest["source"]["inputs"]}
    if labels and not manifest.get("labels"):  # class sub-folder names of an image-folder DATA
        manifest["labels"] = labels
    manifest["optimization"] = {k: result[k] for k in ("technique", "accuracy_before", "accuracy_after",
                                                       "params", result["technique"])}
    for key in ("format", "model", "model_sha256"):  # write_manifest sets them again
        manifest.pop(key, None)
    write_manifest(request.output, manifest)
    return {k: converted[k] for k in ("output", "manifest", "mode", "size_bytes", "verification")}
