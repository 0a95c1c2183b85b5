"""Selective int8: int8 where it is harmless, float where int8 hurts, chosen by measurement.

Why: full-int8 post-training quantization collapses Transformers (measured on all-MiniLM-L6-v2: min cosine
0.26 to float). The damage comes from a few op kinds (layer-norm statistics, the attention mask's -1e9
logits, residual sums with outlier channels), not from the matrix multiplications that cost the time.

How (after Intel Neural Compressor's accuracy-aware tuning, which orders fallbacks by measured impact, done
here for TFLite with the converter's own selective quantization):
  1. calibrate once (`_experimental_calibrate_only`: a float model carrying activation ranges);
  2. sensitivity: for each op kind K present, quantize ONLY K (every other kind denylisted) and measure
     the output cosine to the source on held-out samples through the device runtime;
  3. accumulate op kinds into int8 from the least to the most sensitive, keeping a kind only while the
     model still meets the budgets (default min cosine 0.99); what is left stays float.
Quantizing one calibrated model with a denylist (`mlir_quantize(denylisted_ops=...)`, what TFLite's
QuantizationDebugger uses for its selective models) takes seconds, so the search costs ~2 x kinds re-quantizations.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tfedge_device.model import Model

from .convert import run_converter
from .errors import BadInput
from .modes import Mode, configure_float32, register
from .tfrt import quiet_native, tensorflow
from .verify import check_budgets, compare_outputs

log = logging.getLogger(__name__)

# Not op kinds of the model: the runtime's delegate nodes and the quantizer's own conversions. Data-movement
# kinds (TRANSPOSE, SELECT_V2, ...) ARE searched: quantizing the attention mask's SELECT_V2 (-1e9 logits) or
# the heads' TRANSPOSE alone collapses MiniLM to cosine 0.29 (measured).
SKIPPED_KINDS = {"DELEGATE", "QUANTIZE", "DEQUANTIZE"}
DEFAULT_MIN_COSINE = 0.99


@dataclass
class SelectivePlan:
    """What the search measured and decided."""

    budgets: dict
    sensitivity: list = field(default_factory=list)  # [{"op": K, "cosine_min": c}] most harmless first
    int8_ops: list = field(default_factory=list)
    float_ops: list = field(default_factory=list)
    figures: dict | None = None  # of the chosen model on the held-out samples
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"budgets": self.budgets, "sensitivity": self.sensitivity, "int8_ops": self.int8_ops,
                "float_ops": self.float_ops, "figures": self.figures, "seconds": round(self.seconds, 1)}


def calibrate(source, samples, context=None) -> bytes:
    """A float TFLite model carrying calibrated activation ranges (input of `quantize`)."""
    tf = tensorflow()
    from .modes import _representative_dataset

    converter = source.converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(context) if context is not None else \
        (lambda: (list(arrays) for arrays in samples.arrays))
    converter._experimental_calibrate_only = True  # the QuantizationDebugger's route to selective models
    return run_converter(converter, Path(source.location).name, context)


def quantize(calibrated: bytes, float_ops=()) -> bytes:
    """int8 weights and activations except the op kinds in `float_ops`; float model I/O."""
    tensorflow()
    from tensorflow.lite.python import convert as lite_convert

    with quiet_native():
        return lite_convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_ops=sorted(float_ops))


def op_kinds(model_bytes: bytes) -> dict:
    """{op kind: count} of a TFLite model (read through the device runtime, without delegates)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model_bytes)
        details = Model(path, threads=1).interpreter._get_ops_details()
    counts: dict = {}
    for op in details:
        counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
    return counts


class Evaluator:
    """Outputs of candidate models vs the source's, through the device runtime, on fixed samples."""

    def __init__(self, source, samples):
        self.finalize = getattr(source, "finalize_model", lambda model_bytes: model_bytes)
        self.samples = samples
        self.references = [source.predict(arrays) for arrays in samples.arrays]

    def figures(self, model_bytes: bytes) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.tflite"
            path.write_bytes(self.finalize(model_bytes))
            model = Model(path)
            candidates = [model.predict(*arrays) for arrays in self.samples.arrays]
        figures = compare_outputs(self.references, candidates)
        if not all(np.isfinite(v) for v in (figures["cosine_min"], figures["cosine_mean"])):
            figures["cosine_min"] = figures["cosine_mean"] = -1.0
        return figures


def default_budgets(request) -> dict:
    """The request's budgets (verify.BUDGETS names), or min cosine 0.99 when it gave none."""
    budgets = {k: v for k, v in (request.budgets or {}).items() if v is not None}
    return budgets or {"min_cosine": DEFAULT_MIN_COSINE}


def search(calibrated: bytes, evaluator: Evaluator, budgets: dict) -> SelectivePlan:
    """Choose which op kinds run int8 (see the module docstring). Sensitivity is ranked by min cosine; a
    kind is kept int8 while the model meets every budget (min cosine, top-1 agreement, max abs error)."""
    started = time.perf_counter()
    plan = SelectivePlan(budgets)

    def meets(figures: dict) -> bool:
        return not check_budgets(figures, budgets)

    kinds = sorted(k for k in op_kinds(calibrated) if k not in SKIPPED_KINDS)
    if not kinds:
        raise BadInput("the model has no op the quantizer can make int8")
    figures = evaluator.figures(quantize(calibrated))
    if meets(figures):  # nothing to keep in float
        plan.int8_ops, plan.figures, plan.seconds = kinds, figures, time.perf_counter() - started
        return plan
    for kind in kinds:
        figures = evaluator.figures(quantize(calibrated, float_ops=[k for k in kinds if k != kind]))
        plan.sensitivity.append({"op": kind, "cosine_min": round(figures["cosine_min"], 5)})
        log.info("int8 %s alone: min cosine %.4f", kind, figures["cosine_min"])
    plan.sensitivity.sort(key=lambda row: -row["cosine_min"])
    chosen: list[str] = []
    for row in plan.sensitivity:
        if budgets.get("min_cosine") is not None and row["cosine_min"] < budgets["min_cosine"]:
            break  # alone it misses the budget: it and every more sensitive kind stay float
        trial = chosen + [row["op"]]
        figures = evaluator.figures(quantize(calibrated, float_ops=[k for k in kinds if k not in trial]))
        if meets(figures):
            chosen, plan.figures = trial, figures
        log.info("int8 %s: min cosine %.4f -> %s", "+".join(trial), figures["cosine_min"],
                 "kept" if chosen is trial else "float")
    plan.int8_ops = chosen
    plan.float_ops = [k for k in kinds if k not in chosen]
    plan.seconds = time.perf_counter() - started
    return plan


def split_samples(samples):
    """(calibration, held-out) halves, alternating, so both cover the whole file."""
    from .calibration import Samples

    if len(samples) < 2:
        raise BadInput("selective int8 needs at least 2 calibration samples (half are held out to measure)")
    calibration = Samples(samples.arrays[0::2], f"{len(samples.arrays[0::2])} of {samples.origin}", samples.real)
    held_out = Samples(samples.arrays[1::2], f"{len(samples.arrays[1::2])} held out of {samples.origin}",
                       samples.real)
    return calibration, held_out


def build_selective(source, samples, context, request) -> bytes:
    """The `selective-int8` mode: calibrate on half the samples, search on the other half."""
    calibration, held_out = split_samples(samples)
    calibrated = calibrate(source, calibration, context)
    plan = search(calibrated, Evaluator(source, held_out), default_budgets(request))
    context.options["report"] = {"selective": plan.to_dict()}
    return quantize(calibrated, plan.float_ops)


@dataclass(frozen=True)
class SearchMode(Mode):
    """A mode that makes the model itself (a search over conversions) instead of configuring one converter:
    convert() calls `build(source, samples, context, request) -> model bytes` and reports
    `context.options["report"]`."""

    build: Callable | None = None


def _register() -> None:
    register(SearchMode("selective-int8", "int8 except the op kinds measured to hurt (kept float)",
                        configure_float32, aliases=("selective", "mixed-int8"), needs_calibration=True,
                        build=build_selective))


_register()
