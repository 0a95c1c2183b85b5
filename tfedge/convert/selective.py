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
     model still meets the budgets (default min cosine 0.99); what is left stays float;
  4. per layer, for the kinds that carry the multiply-accumulates (graph.MAC_RULES: FULLY_CONNECTED, CONV_2D,
     BATCH_MATMUL, ...) left float by step 3: measure each layer alone in int8 (on top of step 3's kinds), then
     start from every layer that meets the min cosine alone and fall back the most sensitive one to float
     until the whole model meets the budgets (INC's order). On MiniLM the feed-forward output layers (their
     input is the GELU's heavy-tailed output) are the sensitive ones; the other fully-connected layers go int8;
  5. int8 must pay (`keep_int8_that_pays`): accuracy alone would keep int8 ops LiteRT runs slower than float
     (on MiniLM int8 BATCH_MATMUL runs outside XNNPACK: 13.4 ms with its int8 layers, 9.5 ms without). Each
     int8 kind is timed with and without its int8 (interleaved, the device runtime, 1 thread) and goes back to
     float when that is faster by more than FLOAT_IF_FASTER_BY.
Quantizing one calibrated model with a denylist (`mlir_quantize(denylisted_ops=..., denylisted_nodes=...)`, what
TFLite's QuantizationDebugger uses for its selective models) takes seconds, so the search costs ~2 x kinds
+ layers (+ a few fall-backs) re-quantizations.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tfedge_device.model import Model

from ..analysis.graph import MAC_RULES, graph_from_bytes
from ..analysis.latency import interleaved_latency_ms
from ..errors import BadInput
from ..tf_loader import quiet_native, tensorflow
from .calibration import progress, split_samples
from .converter import run_converter
from .modes import Mode, configure_float32
from .pairing import pair_with_model
from .verify import check_budgets, compare_outputs

log = logging.getLogger(__name__)

# Not op kinds of the model: the quantizer's own conversions. Data-movement
# kinds (TRANSPOSE, SELECT_V2, ...) ARE searched: in MiniLM as traced without tfedge.convert.rewrites, quantizing the
# attention mask's SELECT_V2 (-1e9 logits) or the heads' TRANSPOSE alone collapsed it to cosine 0.29 (measured).
SKIPPED_KINDS = {"QUANTIZE", "DEQUANTIZE"}
DEFAULT_MIN_COSINE = 0.99
# Kinds searched layer by layer when they stay float as a kind: the ones that carry the multiply-accumulates,
# i.e. where int8 pays. Element-wise kinds (ADD, MUL, ...) are many, cheap and gain nothing per layer.
LAYER_KINDS = frozenset(MAC_RULES)
FLOAT_IF_FASTER_BY = 0.02  # step 5: below this, timing noise; an int8 kind that costs nothing stays (smaller)
PAYS_TIMED_RUNS = 10


@dataclass
class SelectivePlan:
    """What the search measured and decided."""

    budgets: dict
    sensitivity: list = field(default_factory=list)  # [{"op": K, "cosine_min": c}] most harmless first
    int8_ops: list = field(default_factory=list)  # kinds int8 in every layer
    float_ops: list = field(default_factory=list)  # kinds float in every layer
    # step 4: [{"layer": output tensor name, "op": K, "cosine_min": c}] most harmless first
    layer_sensitivity: list = field(default_factory=list)
    int8_layers: list = field(default_factory=list)  # layers of LAYER_KINDS made int8 one by one
    float_layers: list = field(default_factory=list)  # the other layers of those kinds (kept float)
    figures: dict | None = None  # of the chosen model on the held-out samples
    timing: list = field(default_factory=list)  # step 5: [{"op": K, "int8_ms": a, "float_ms": b, "kept": ...}]
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"budgets": self.budgets, "sensitivity": self.sensitivity, "int8_ops": self.int8_ops,
                "float_ops": self.float_ops, "layer_sensitivity": self.layer_sensitivity,
                "int8_layers": self.int8_layers, "float_layers": self.float_layers, "figures": self.figures,
                "timing": self.timing, "seconds": round(self.seconds, 1), "summary": self.describe()}

    def describe(self) -> str:
        """One line: the float kinds and, per kind searched by layer, how many layers went int8."""
        parts = [f"float: {', '.join(self.float_ops) or 'none'}"]
        per_kind: dict = {}
        for row in self.layer_sensitivity:
            counts = per_kind.setdefault(row["op"], [0, 0])
            counts[0] += row["layer"] in self.int8_layers
            counts[1] += 1
        parts += [f"int8 {done} of {total} {kind} layers" for kind, (done, total) in sorted(per_kind.items())
                  if kind not in self.float_ops]
        slower = [row["op"] for row in self.timing if row["kept"] == "float"]
        if slower:
            parts.append(f"float because int8 was slower: {', '.join(slower)}")
        return "; ".join(parts)

    def quantized(self, calibrated: bytes) -> bytes:
        return quantize(calibrated, self.float_ops, self.float_layers)


def calibrate(source, samples, context=None) -> bytes:
    """A float TFLite model carrying activation ranges calibrated on `samples` only, never on the context's
    (auto and selective-int8 hold half of the calibration data out to measure on)."""
    tf = tensorflow()
    from .modes import ConvertContext, _representative_dataset

    context = replace(context, samples=samples) if context is not None else ConvertContext(samples,
                                                                                          show_progress=False)
    converter = source.converter()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(context)  # its terminal is set by run_converter
    converter._experimental_calibrate_only = True  # the QuantizationDebugger's route to selective models
    return run_converter(converter, Path(source.location).name, context)


def quantize(calibrated: bytes, float_ops=(), float_layers=()) -> bytes:
    """int8 weights and activations except the op kinds in `float_ops` and the layers (output tensor names,
    see `layer_names`) in `float_layers`; float model I/O."""
    tensorflow()
    from tensorflow.lite.python import convert as lite_convert

    with quiet_native():
        return lite_convert.mlir_quantize(calibrated, fully_quantize=False, denylisted_ops=sorted(float_ops),
                                          denylisted_nodes=sorted(float_layers))


def layer_names(model_bytes: bytes, kinds) -> list:
    """[(kind, output tensor name)] of the ops of `kinds`, in execution order: the names the quantizer's
    `denylisted_nodes` takes."""
    main = graph_from_bytes(model_bytes).main
    return [(op.name, main.tensors[op.outputs[0]].name) for op in main.ops if op.name in kinds]


def op_kinds(model_bytes: bytes) -> dict:
    """{op kind: count} of a TFLite model, read from the flatbuffer (tfedge.analysis.graph)."""
    counts: dict = {}
    for op in graph_from_bytes(model_bytes).ops:
        counts[op.name] = counts.get(op.name, 0) + 1
    return counts


class Evaluator:
    """Outputs of candidate models vs the source's, through the device runtime, on fixed samples."""

    def __init__(self, source, samples):
        self.finalize = getattr(source, "finalize_model", lambda model_bytes: model_bytes)
        self.source = source
        self.samples = samples
        self.references = [source.predict(arrays) for arrays in samples.arrays]

    def figures(self, model_bytes: bytes) -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "candidate.tflite"
            path.write_bytes(self.finalize(model_bytes))
            model = Model(path)
            pairing = pair_with_model(self.source, model)
            candidates = [pairing.our_outputs(model.predict(*pairing.their_inputs(arrays)))
                          for arrays in self.samples.arrays]
        figures = compare_outputs(self.references, candidates, names=self.source.output_names)
        if not all(np.isfinite(v) for v in (figures["cosine_min"], figures["cosine_mean"])):
            figures["cosine_min"] = figures["cosine_mean"] = -1.0
        return figures


def default_budgets(request) -> dict:
    """The request's budgets (verify.BUDGETS names), or min cosine 0.99 when it gave none."""
    budgets = {k: v for k, v in (request.budgets or {}).items() if v is not None}
    if "min_detection_agreement" in budgets:  # the search compares raw outputs, not matched detections
        raise BadInput(f"--quant {request.mode} searches on cosine, top-1 agreement and abs error; "
                       "--min-detection-agreement is checked by the plain modes",
                       hint="--quant int8 (or edgetpu, float16, dynamic) --min-detection-agreement X")
    return budgets or {"min_cosine": DEFAULT_MIN_COSINE}


def search(calibrated: bytes, evaluator: Evaluator, budgets: dict, show_progress: bool = False) -> SelectivePlan:
    """Choose which op kinds run int8 (see the module docstring). Sensitivity is ranked by min cosine; a
    kind is kept int8 while the model meets every budget (min cosine, top-1 agreement, max abs error).
    `show_progress`: a progress bar per step on stderr (a terminal only)."""
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
    for kind in progress(kinds, len(kinds), "selective int8: op kinds", show_progress, unit="kind"):
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
    if any(kind in LAYER_KINDS for kind in plan.float_ops):
        _search_layers(calibrated, evaluator, budgets, plan, meets, show_progress)
    plan.seconds = time.perf_counter() - started
    return plan


def _search_layers(calibrated: bytes, evaluator: Evaluator, budgets: dict, plan: SelectivePlan, meets,
                   show_progress: bool) -> None:
    """Step 4 (module docstring): layers of the float LAYER_KINDS, int8 one by one."""
    layers = layer_names(calibrated, [k for k in plan.float_ops if k in LAYER_KINDS])
    float_ops = [k for k in plan.float_ops if k not in LAYER_KINDS]

    def with_int8(names: set) -> bytes:
        return quantize(calibrated, float_ops, [name for _, name in layers if name not in names])

    for kind, name in progress(layers, len(layers), "selective int8: layers", show_progress, unit="layer"):
        figures = evaluator.figures(with_int8({name}))
        plan.layer_sensitivity.append({"layer": name, "op": kind, "cosine_min": round(figures["cosine_min"], 5)})
        log.info("int8 layer %s alone: min cosine %.4f", name, figures["cosine_min"])
    plan.layer_sensitivity.sort(key=lambda row: -row["cosine_min"])
    floor = budgets.get("min_cosine")
    trial = [row["layer"] for row in plan.layer_sensitivity if floor is None or row["cosine_min"] >= floor]
    while trial:  # fall back the most sensitive layer until the model meets the budgets
        figures = evaluator.figures(with_int8(set(trial)))
        log.info("int8 %d layers: min cosine %.4f", len(trial), figures["cosine_min"])
        if meets(figures):
            plan.float_ops, plan.figures = float_ops, figures
            plan.int8_layers = trial
            plan.float_layers = [name for _, name in layers if name not in trial]
            return
        trial.pop()


def keep_int8_that_pays(calibrated: bytes, plan: SelectivePlan, evaluator: Evaluator, budgets: dict,
                        timer=interleaved_latency_ms, show_progress: bool = False) -> SelectivePlan:
    """Step 5 (module docstring): every kind with int8 ops (int8_ops, and the LAYER_KINDS with int8 layers) goes
    back to float when the model runs faster so and still meets the budgets. `timer(models, sample, runs=)` ->
    {name: ms}."""
    started = time.perf_counter()
    sample = evaluator.samples.arrays[0]
    # the kinds decided per layer first (the most compute): the others are then timed in the model as it will be
    kinds = sorted({row["op"] for row in plan.layer_sensitivity if row["layer"] in plan.int8_layers}) + \
        list(plan.int8_ops)
    current = evaluator.finalize(plan.quantized(calibrated))
    for kind in progress(kinds, len(kinds), "selective int8: timing int8 kinds", show_progress, unit="kind"):
        trial = _with_float(plan, kind)
        trial_bytes = trial.quantized(calibrated)
        times = timer({"int8": current, "float": evaluator.finalize(trial_bytes)}, sample, runs=PAYS_TIMED_RUNS)
        row = {"op": kind, "int8_ms": times["int8"], "float_ms": times["float"], "kept": "int8"}
        if times["float"] < times["int8"] * (1 - FLOAT_IF_FASTER_BY):
            figures = evaluator.figures(trial_bytes)
            if not check_budgets(figures, budgets):
                trial.figures = figures
                plan, current, row["kept"] = trial, evaluator.finalize(trial_bytes), "float"
        plan.timing.append(row)
        log.info("int8 %s: %.2f ms, float: %.2f ms -> %s", kind, times["int8"], times["float"], row["kept"])
    plan.seconds += time.perf_counter() - started
    return plan


def _with_float(plan: SelectivePlan, kind: str) -> SelectivePlan:
    """A copy of `plan` with every op of `kind` float (the timing list is shared)."""
    layers = {row["layer"] for row in plan.layer_sensitivity if row["op"] == kind}
    return replace(plan, int8_ops=[k for k in plan.int8_ops if k != kind],
                   float_ops=sorted(set(plan.float_ops) | {kind}),
                   int8_layers=[name for name in plan.int8_layers if name not in layers],
                   float_layers=[name for name in plan.float_layers if name not in layers])


def selective_plan(calibrated: bytes, evaluator: Evaluator, budgets: dict, show_progress: bool = False):
    """Steps 1-5 of the module docstring -> SelectivePlan (`plan.quantized(calibrated)` is the model)."""
    plan = search(calibrated, evaluator, budgets, show_progress)
    return keep_int8_that_pays(calibrated, plan, evaluator, budgets, show_progress=show_progress)


def build_selective(source, samples, context, request) -> bytes:
    """The `selective-int8` mode: calibrate on half the samples, search on the other half."""
    calibration, held_out = split_samples(samples)
    calibrated = calibrate(source, calibration, context)
    plan = selective_plan(calibrated, Evaluator(source, held_out), default_budgets(request), context.show_progress)
    context.options["report"] = {"selective": plan.to_dict()}
    return plan.quantized(calibrated)


@dataclass(frozen=True)
class SearchMode(Mode):
    """A mode that makes the model itself (a search over conversions) instead of configuring one converter:
    convert() calls `build(source, samples, context, request) -> model bytes` and reports
    `context.options["report"]`."""

    build: Callable | None = None


MODE = SearchMode("selective-int8", "int8 except the ops measured to hurt accuracy or speed (kept float)",
                  configure_float32, aliases=("selective", "mixed-int8"), needs_calibration=True,
                  build=build_selective)
