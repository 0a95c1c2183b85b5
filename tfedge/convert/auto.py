"""`--quant auto`: convert the candidate variants, measure each, keep the fastest that meets the budget.

Candidates (CANDIDATES, in this order): float16, dynamic, int8, selective-int8, int16x8. Each is measured on
held-out samples (half the calibration data, never used to calibrate) against the source through the device
runtime, and timed on the device runtime: the candidates within budget and the float32 baseline in turn
(interleaved, so load on a shared machine hits them alike), median of 20 invokes after 3 warm-ups, 1 thread.
float32 is the baseline of the speed-up column; it is not a candidate. The table of candidates is
logged (stderr) and returned in the result's `search.auto`; no candidate within budget -> BudgetNotMet (exit 4).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from ..analysis.latency import interleaved_latency_ms, median_latency_ms
from ..errors import BadInput, BudgetNotMet
from .calibration import progress
from .converter import run_converter
from .modes import BUILTIN
from .selective import (
    Evaluator,
    SearchMode,
    calibrate,
    default_budgets,
    quantize,
    selective_plan,
    split_samples,
)
from .verify import check_budgets

log = logging.getLogger(__name__)

CANDIDATES = ("float16", "dynamic", "int8", "selective-int8", "int16x8")
# int16x8 runs on TFLite's reference kernels: skip measuring it when one inference is this many times slower
# than float32 (LiteRT's own table shows int16x8 BERT-class models far slower than float).
TOO_SLOW_FACTOR = 8.0


def _configured(source, name: str, context, samples=None) -> bytes:
    """A plain mode's conversion (float I/O; calibrated modes on `samples`)."""
    converter = source.converter()
    context = replace(context, samples=samples, io_type="float32")  # run_converter sets its terminal
    BUILTIN[name].configure(converter, context)
    return run_converter(converter, f"{Path(source.location).name} ({name})", context)


def build_auto(source, samples, context, request) -> bytes:
    budgets = default_budgets(request)
    calibration, held_out = split_samples(samples)
    evaluator = Evaluator(source, held_out)
    timing_sample = held_out.arrays[0]
    float_bytes = evaluator.finalize(_configured(source, "float32", context))
    baseline_ms = median_latency_ms(float_bytes, timing_sample, runs=3)
    calibrated = calibrate(source, calibration, context)
    rows, models = [], {}

    def measure(name: str, model_bytes: bytes, note: str = "") -> None:
        model_bytes = evaluator.finalize(model_bytes)
        latency = median_latency_ms(model_bytes, timing_sample, runs=3)  # re-timed interleaved at the end
        row = {"mode": name, "size_mb": round(len(model_bytes) / 1e6, 2), "latency_ms": round(latency, 2),
               "speedup": round(baseline_ms / latency, 2), "note": note}
        if name == "int16x8" and latency > TOO_SLOW_FACTOR * baseline_ms:
            row.update(meets=False, note=f"reference kernels: {latency / baseline_ms:.0f}x slower than float32, "
                                         "accuracy not measured")
        else:
            figures = evaluator.figures(model_bytes)
            failures = check_budgets(figures, budgets)
            row.update(cosine_min=round(figures["cosine_min"], 5), cosine_mean=round(figures["cosine_mean"], 5),
                       top1_agreement=figures["top1_agreement"], meets=not failures,
                       note=note or "; ".join(failures))
        rows.append(row)
        models[name] = model_bytes
        log.info("auto: %s %.2f ms, %s", name, latency, row["note"] or "within budget")

    def make_candidate(name: str) -> None:
        if name in ("float16", "dynamic"):
            measure(name, _configured(source, name, context))
        elif name == "int8":
            measure(name, quantize(calibrated), "every op int8 (float I/O)")
        elif name == "int16x8":
            measure(name, _configured(source, name, context, calibration))
        else:
            plan = selective_plan(calibrated, evaluator, budgets, context.show_progress)
            context.options.setdefault("report", {})["selective"] = plan.to_dict()
            measure(name, plan.quantized(calibrated), plan.describe())

    for name in progress(CANDIDATES, len(CANDIDATES), "auto: candidates", context.show_progress, unit="model"):
        try:
            make_candidate(name)
        except BadInput as err:  # a candidate the converter cannot make is a row, not the end of the search
            rows.append({"mode": name, "meets": False, "note": f"cannot convert: {err.message}"})
            log.info("auto: %s cannot be converted: %s", name, err.message)

    # Final timing: the baseline and every candidate within budget, interleaved (the first pass only gated
    # int16x8's reference kernels).
    timed = interleaved_latency_ms({"float32": float_bytes, **{row["mode"]: models[row["mode"]] for row in rows
                                                                 if row["meets"]}}, timing_sample)
    baseline_ms = timed.pop("float32")
    for row in rows:
        if row["mode"] in timed:
            row.update(latency_ms=timed[row["mode"]], speedup=round(baseline_ms / timed[row["mode"]], 2))
    within = [row for row in rows if row["meets"]]
    chosen = min(within, key=lambda row: row["latency_ms"]) if within else None
    report = {"budgets": budgets, "held_out": held_out.origin, "threads": 1,
              "baseline": {"mode": "float32", "size_mb": round(len(float_bytes) / 1e6, 2),
                           "latency_ms": round(baseline_ms, 2)},
              "candidates": rows, "chosen": chosen["mode"] if chosen else None}
    context.options.setdefault("report", {})["auto"] = report
    log.warning("auto candidates (held-out %s, 1 thread):\n%s", held_out.origin, format_table(report))
    if chosen is None:
        best = ", ".join(f"{row['mode']} {row.get('cosine_min', 'n/a')}" for row in rows)
        raise BudgetNotMet(f"no candidate meets {budgets} (min cosine: {best})",
                           hint="relax the budget, or give more/better calibration data")
    log.warning("auto chose %s: %.2f ms, %.1fx float32", chosen["mode"], chosen["latency_ms"], chosen["speedup"])
    return models[chosen["mode"]]


def format_table(report: dict) -> str:
    lines = [f"{'mode':15s} {'MB':>6s} {'ms':>8s} {'x fp32':>6s} {'cos min':>8s} {'cos mean':>8s}  within  note",
             (f"{'float32':15s} {report['baseline']['size_mb']:6.1f} {report['baseline']['latency_ms']:8.2f} "
              f"{1.0:6.1f} {'(baseline)':>8s}")]
    for row in report["candidates"]:
        cos_min = f"{row['cosine_min']:.4f}" if "cosine_min" in row else "n/a"
        cos_mean = f"{row['cosine_mean']:.4f}" if "cosine_mean" in row else "n/a"
        mark = "*" if row["mode"] == report.get("chosen") else ""
        if "latency_ms" not in row:
            lines.append(f"{row['mode']:15s} {'-':>6s} {'-':>8s} {'-':>6s} {'-':>8s} {'-':>8s}  no      {row['note']}")
            continue
        lines.append(f"{row['mode'] + mark:15s} {row['size_mb']:6.1f} {row['latency_ms']:8.2f} {row['speedup']:6.1f} "
                     f"{cos_min:>8s} {cos_mean:>8s}  {'yes' if row['meets'] else 'no':6s}  {row['note']}")
    return "\n".join(lines)


MODE = SearchMode("auto", "fastest of float16/dynamic/int8/selective-int8/int16x8 within the budget",
                  BUILTIN["float32"].configure, needs_calibration=True, build=build_auto)
