"""The pipeline: source -> calibration -> mode (the converter call) -> verify -> atomic write of `OUT.tflite`
and its manifest `OUT.json`."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tfedge_device import __version__ as device_version
from tfedge_device.fileio import atomic_path, write_bytes
from tfedge_device.labels import check_labels, read_labels
from tfedge_device.manifest import manifest_path, write_manifest
from tfedge_device.model import Model

from .. import __version__
from ..errors import BadInput
from ..tf_loader import tensorflow
from .calibration import load_samples, random_samples
from .converter import run_converter
from .modes import ConvertContext, resolve_io_type
from .registry import get_mode
from .sources import LoadOptions, SourceModel, load_source
from .verify import enforce_budgets, search_budget_note, verify

log = logging.getLogger(__name__)


@dataclass
class ConvertRequest:
    source: str
    output: Path
    mode: str = "float32"
    io_type: str | None = None
    calib: str | None = None
    calib_count: int = 200
    preprocess: str | None = None
    labels: Path | None = None
    verify_count: int = 50
    budgets: dict = field(default_factory=dict)  # see verify.BUDGETS
    load: LoadOptions = field(default_factory=LoadOptions)
    show_progress: bool = True
    mode_options: dict = field(default_factory=dict)


def check_output_path(output: Path) -> None:
    """Fail before the expensive work when OUT cannot be written."""
    if output.suffix != ".tflite":
        raise BadInput(f"output must end in .tflite: {output}")
    parent = output.parent
    if not parent.is_dir():
        raise BadInput(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"output directory is not writable: {parent}")


def conversion_samples(request: ConvertRequest, mode, source: SourceModel, preset):
    """Calibration samples (required by calibrated modes), also used for verification."""
    if request.calib:
        return load_samples(request.calib, source, request.calib_count, preset, request.show_progress)
    if mode.needs_calibration:
        raise BadInput(f"--quant {mode.name} needs calibration data: --calib PATH (an image folder, "
                       f".npy or .npz of input tensors)",
                       hint="--calib random exists but makes accuracy meaningless")
    return random_samples(source, request.verify_count, preset)


def build_manifest(request, mode, io_type, source: SourceModel, model: Model, preset, labels, samples,
                   verification) -> dict:
    tf = tensorflow()
    manifest = {
        "task": source.task,
        "mode": mode.name,
        "io_type": io_type,
        "source": source.describe(),
        "inputs": [spec.to_dict() for spec in model.inputs],
        "outputs": [spec.to_dict() for spec in model.outputs],
        "preprocess": None,
        "labels": labels,
        "calibration": samples.origin if mode.needs_calibration else None,
        "verification": verification,
        "notes": source.notes,
        "versions": {"tfedge": __version__, "tfedge_device": device_version, "tensorflow": tf.__version__,
                     "runtime": f"{model.runtime.name} {model.runtime.version}"},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if source.is_image and preset:
        manifest["preprocess"] = {"image": source.image_spec(preset).to_dict()}
    manifest.update(source.extra_manifest)
    return manifest


def convert(request: ConvertRequest) -> dict:
    """Convert, verify and write. Returns the result (sizes, timings, verification figures)."""
    timings = {}
    started = time.perf_counter()
    mode = get_mode(request.mode)
    io_type = resolve_io_type(mode, request.io_type)
    output = Path(request.output)
    check_output_path(output)
    labels = read_labels(request.labels) if request.labels else None
    if request.verify_count < 0:
        raise BadInput("--verify-count must be 0 or more")

    source = load_source(request.source, request.load)
    labels = labels or source.labels
    preset = request.preprocess or source.preprocess or ("unit" if source.is_image else None)
    if request.preprocess is None and source.preprocess is None and source.is_image:
        source.notes.append("assumed image inputs in [0, 1] (--preprocess unit); pass --preprocess to change")
    timings["load_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    samples = conversion_samples(request, mode, source, preset)
    timings["calibration_data_s"] = time.perf_counter() - mark

    mark = time.perf_counter()
    context = ConvertContext(samples=samples, io_type=io_type, show_progress=request.show_progress,
                             options=dict(request.mode_options))
    build = getattr(mode, "build", None)  # modes that search (selective-int8, auto) make the model themselves
    if build is not None:
        model_bytes = build(source, samples, context, request)
    else:
        converter = source.converter()
        mode.configure(converter, context)
        model_bytes = run_converter(converter, Path(source.location).name, context)
    finalize = getattr(source, "finalize_model", None)  # e.g. text models: default sequence length
    if finalize is not None:
        model_bytes = finalize(model_bytes)
    timings["convert_s"] = time.perf_counter() - mark

    staged = None  # the new manifest, complete, until it is renamed into place
    try:
        with atomic_path(output) as tmp:
            write_bytes(tmp, model_bytes)
            model = Model(tmp)
            if labels is not None and model.outputs and len(model.outputs[0].shape) == 2:
                check_labels(labels, model.outputs[0].shape[-1], "--labels")
            mark = time.perf_counter()
            verification = (verify(source, model, samples.head(request.verify_count))
                            if request.verify_count else None)
            timings["verify_s"] = time.perf_counter() - mark
            if verification is not None:
                enforce_budgets(verification, request.budgets)
            search_note = search_budget_note(context.options.get("report"), verification)
            if search_note:
                source.notes.append(search_note)
            manifest = build_manifest(request, mode, io_type, source, model, preset, labels, samples,
                                      verification)
            if context.options.get("report"):
                manifest["search"] = context.options["report"]
            for name, path in source.extra_files.items():
                write_bytes(output.parent / name, Path(path).read_bytes())
            manifest["model_file"] = output.name
            # Model and manifest both complete before either is renamed: a failure (disk full, Ctrl-C) up to
            # here leaves an existing OUT.tflite and OUT.json exactly as they were.
            staged = write_manifest(tmp, {**manifest, "model": output.name})
        os.replace(staged, manifest_path(output))
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    timings["total_s"] = time.perf_counter() - started
    return {
        "output": str(output),
        "manifest": str(manifest_path(output)),
        "mode": mode.name,
        "io_type": io_type,
        "size_bytes": len(model_bytes),
        "source": source.describe(),
        "notes": source.notes,
        "verification": verification,
        "search": context.options.get("report"),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
