"""Compare a converted model with its source, through the device runtime (tfedge's one inference path).

Outputs are paired by name (tfedge.convert.pairing), never by position. Figures: top-1 agreement (the first
output, when it is class scores), mean/min cosine similarity of the float outputs, max absolute error of
every output, and per output (by name) its own figures; an integer output (an argmax, a count) is compared
for equality, since its cosine says nothing. Budgets are data: (flag name, figure, comparison).
"""

from __future__ import annotations

import operator

import numpy as np
from tfedge_device.model import Model

from ..errors import BadInput, BudgetNotMet
from .pairing import pair_with_model
from .sources import SourceModel


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    if norms == 0.0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.dot(a, b) / norms)


def is_classifier_output(array: np.ndarray) -> bool:
    return array.ndim == 2 and array.shape[1] > 1


# Tasks whose outputs are not class scores: top-1 agreement means nothing there (embeddings).
TASKS_WITHOUT_TOP1 = frozenset({"sentence-embedding"})


def compare_outputs(references: list[list[np.ndarray]], candidates: list[list[np.ndarray]],
                    top1: bool = True, names: list[str] | None = None) -> dict:
    """Figures over samples; each sample is a list of outputs, already paired (by name: the caller orders
    the candidate's outputs as the reference's). `top1`: the first output is class scores when it is
    [1, classes]. `names`: the outputs' names, for the per-output figures and messages."""
    names = list(names) if names else [f"output_{i}" for i in range(len(references[0]) if references else 0)]
    cosines, max_errors, agreements = [], [], []
    per_output = {name: {"cosines": [], "errors": [], "equal": []} for name in names}
    for reference, candidate in zip(references, candidates):
        for name, ref, cand in zip(names, reference, candidate):
            ref, cand = np.asarray(ref), np.asarray(cand)
            if ref.size != cand.size:
                raise BadInput(f"output {name!r}: the source gives shape {list(ref.shape)}, the converted model "
                               f"{list(cand.shape)}")
            integer = ref.dtype.kind in "iub" and cand.dtype.kind in "iub"
            ref, cand = ref.astype(np.float32), cand.astype(np.float32).reshape(ref.shape)
            entry = per_output[name]
            entry["errors"].append(float(np.max(np.abs(ref - cand))) if ref.size else 0.0)
            max_errors.append(entry["errors"][-1])
            if integer:
                entry["equal"].append(float(np.array_equal(ref, cand)))
            else:
                entry["cosines"].append(cosine(ref, cand))
                cosines.append(entry["cosines"][-1])
        if top1 and is_classifier_output(np.asarray(reference[0])):
            agreements.append(float(np.argmax(reference[0], -1)[0] == np.argmax(candidate[0], -1)[0]))
    return {
        "samples": len(references),
        "top1_agreement": float(np.mean(agreements)) if agreements else None,
        "cosine_mean": float(np.mean(cosines)) if cosines else None,
        "cosine_min": float(np.min(cosines)) if cosines else None,
        "max_abs_error": float(np.max(max_errors)) if max_errors else None,
        "outputs": {name: {"cosine_min": float(np.min(e["cosines"])) if e["cosines"] else None,
                           "max_abs_error": float(np.max(e["errors"])) if e["errors"] else None,
                           "equal": float(np.mean(e["equal"])) if e["equal"] else None}
                    for name, e in per_output.items()},
    }


def run_paired(source: SourceModel, model: Model, samples) -> tuple[list, list]:
    """(source outputs, model outputs) per sample, the model's inputs and outputs paired with the source's
    by name (exit 2 when they cannot be)."""
    pairing = pair_with_model(source, model)
    references = [source.predict(arrays) for arrays in samples.arrays]
    candidates = [pairing.our_outputs(model.predict(*pairing.their_inputs(arrays))) for arrays in samples.arrays]
    return references, candidates


def verify(source: SourceModel, model: Model, samples) -> dict:
    """Run source (TensorFlow) and model (device runtime) on every sample and compare."""
    references, candidates = run_paired(source, model, samples)
    figures = None
    if getattr(source, "detection", None) is not None:  # a detector: its detections, matched (detection.py)
        from .detection import detection_figures

        figures = detection_figures(source, references, candidates)
    if figures is None:
        figures = compare_outputs(references, candidates, top1=source.task not in TASKS_WITHOUT_TOP1,
                                  names=source.output_names)
    figures["data"] = samples.origin
    figures["real_data"] = samples.real
    return figures


# (option name, figure, comparison, wording)
BUDGETS = (
    ("min_cosine", "cosine_min", operator.ge, "min cosine"),
    ("min_top1_agreement", "top1_agreement", operator.ge, "top-1 agreement"),
    ("max_abs_error", "max_abs_error", operator.le, "max abs error"),
    ("min_detection_agreement", "detection_agreement", operator.ge, "detection agreement"),  # detectors
)


def check_budgets(figures: dict, budgets: dict) -> list[str]:
    """Return failures as text (empty when every requested budget is met)."""
    failures = []
    for option, figure, compare, wording in BUDGETS:
        wanted = budgets.get(option)
        if wanted is None:
            continue
        got = figures.get(figure)
        if got is None:
            failures.append(f"{wording} cannot be measured for this model (budget {wanted})")
        elif not compare(got, wanted):
            failures.append(f"{wording} {got:.4f} misses the budget {wanted}")
    return failures


def enforce_budgets(figures: dict, budgets: dict) -> None:
    failures = check_budgets(figures, budgets)
    if failures:
        raise BudgetNotMet("; ".join(failures))


def search_budget_note(report: dict | None, verification: dict | None) -> str | None:
    """When a search mode (selective-int8, auto) met its budgets on its held-out half of the calibration data
    but the verification samples miss them, one line that says so (`--min-cosine` etc. would refuse the model)."""
    budgets = next((entry["budgets"] for entry in (report or {}).values() if entry.get("budgets")), None)
    failures = check_budgets(verification, budgets) if budgets and verification else []
    if not failures:
        return None
    return (f"the search met {budgets} on its held-out half of the calibration data, but on the verification "
            f"samples {'; '.join(failures)}: give more --calib samples, or the budget as an option to enforce it")

