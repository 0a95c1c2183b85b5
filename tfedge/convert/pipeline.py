"""The pipeline: source -> calibration -> mode (the converter call) -> verify -> atomic write of `OUT.tflite`
and its manifest `OUT.json`.

Verification is held out: a calibrated mode is verified on samples it was not calibrated on — `--verify-data
PATH`, else up to `--verify-count` samples split off `--calib` (tfedge.convert.calibration.split_samples) —
unless `--calib` holds fewer than MIN_SAMPLES_TO_HOLD_OUT, when it verifies on its calibration samples and
says "in-sample" (output and manifest). Modes without calibration verify on what they are given ("not
calibrated": held out by construction). A budget with nothing to check it against is refused (exit 2).
"""

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
from .calibration import Samples, load_samples, random_samples, split_samples
from .converter import run_converter
from .modes import ConvertContext, resolve_io_type
from .registry import get_mode
from .sources import LoadOptions, SourceModel, load_source
from .verify import BUDGETS, enforce_budgets, search_budget_note, verify

log = logging.getLogger(__name__)

# Fewer --calib samples than this are not split: calibration keeps them all and verification reuses them,
# marked "in-sample" (half of 9 would calibrate on 5 and verify on 4, too few for either to mean much).
MIN_SAMPLES_TO_HOLD_OUT = 10


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
    verify_data: str | None = None  # a separate verification set (same formats as calib)
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


@dataclass
class SampleSets:
    """What calibrates (None: the mode needs no calibration) and what verifies (None: --verify-count 0),
    and how they relate: split is "held-out", "separate", "in-sample" or "not calibrated"."""

    calibration: Samples | None
    verification: Samples | None
    split: str

    def describe(self) -> dict:
        """The manifest's and result's account of it: counts and which samples (positions in their file)."""
        calibration, verification = self.calibration, self.verification
        return {"split": self.split,
                "calibration_samples": len(calibration) if calibration is not None else 0,
                "verification_samples": len(verification) if verification is not None else 0,
                "calibration_ids": calibration.ids if calibration is not None else None,
                "verification_ids": verification.ids if verification is not None else None}


def requested_budgets(request: ConvertRequest) -> str:
    """The budgets given, as the user typed them ('--min-cosine 0.99'), '' for none."""
    return ", ".join(f"--{option.replace('_', '-')} {request.budgets[option]}" for option, *_ in BUDGETS
                     if request.budgets.get(option) is not None)


def refuse_unchecked_budget(request: ConvertRequest, why: str) -> None:
    budgets = requested_budgets(request)
    if budgets:
        raise BadInput(f"{budgets}: nothing to check the budget against ({why})",
                       hint="give --verify-count N (N > 0) and samples to verify on (--calib or --verify-data)")


def conversion_samples(request: ConvertRequest, mode, source: SourceModel, preset) -> SampleSets:
    """Calibration samples (required by calibrated modes) and the verification samples, held out of them."""
    def load(spec: str, count: int) -> Samples:
        return load_samples(spec, source, count, preset, request.show_progress)

    wanted = request.verify_count
    separate = load(request.verify_data, wanted) if request.verify_data and wanted else None
    if not mode.needs_calibration:
        given = separate
        if given is None and wanted:
            given = load(request.calib, wanted) if request.calib else random_samples(source, wanted, preset)
        return SampleSets(None, given, "not calibrated")
    if not request.calib:
        raise BadInput(f"--quant {mode.name} needs calibration data: --calib PATH (an image folder, "
                       f".npy or .npz of input tensors)",
                       hint="--calib random exists but makes accuracy meaningless")
    calibration = load(request.calib, request.calib_count)
    if separate is not None or not wanted:
        return SampleSets(calibration, separate, "separate")
    if len(calibration) < MIN_SAMPLES_TO_HOLD_OUT:
        source.notes.append(
            f"verified IN-SAMPLE: --calib holds {len(calibration)} samples (fewer than "
            f"{MIN_SAMPLES_TO_HOLD_OUT} are not split), so the model is verified on the samples it was calibrated "
            f"on; give more --calib samples, or --verify-data PATH")
        return SampleSets(calibration, calibration.head(wanted), "in-sample")
    calibration, held_out = split_samples(calibration, min(wanted, len(calibration) // 2), "verification",
                                          "half are held out to verify")
    return SampleSets(calibration, held_out, "held-out")


def build_manifest(request, mode, io_type, source: SourceModel, model: Model, preset, labels,
                   sets: SampleSets, verification) -> dict:
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
        "calibration": ({"data": sets.calibration.origin, "samples": len(sets.calibration),
                         "ids": sets.calibration.ids} if sets.calibration is not None else None),
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
    if request.verify_count == 0:
        refuse_unchecked_budget(request, "--verify-count is 0")

    source = load_source(request.source, request.load)
    labels = labels or source.labels
    preset = request.preprocess or source.preprocess or ("unit" if source.is_image else None)
    if request.preprocess is None and source.preprocess is None and source.is_image:
        source.notes.append("assumed image inputs in [0, 1] (--preprocess unit); pass --preprocess to change")
    timings["load_s"] = time.perf_counter() - started

    mark = time.perf_counter()
    sets = conversion_samples(request, mode, source, preset)
    if sets.verification is None or not len(sets.verification):
        refuse_unchecked_budget(request, "no verification samples")
    samples = sets.calibration
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
        adjust = getattr(source, "adjust_converter", None)  # e.g. detectors: float outputs after the NMS op
        if adjust is not None:
            adjust(converter, mode)
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
            verification = None
            if sets.verification is not None:
                verification = {**verify(source, model, sets.verification), **sets.describe()}
            timings["verify_s"] = time.perf_counter() - mark
            if verification is not None:
                enforce_budgets(verification, request.budgets)
            search_note = search_budget_note(context.options.get("report"), verification)
            if search_note:
                source.notes.append(search_note)
            manifest = build_manifest(request, mode, io_type, source, model, preset, labels, sets,
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
