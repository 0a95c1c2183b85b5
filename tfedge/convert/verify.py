"""Compare a converted model with its source, through the device runtime (tfedge's one inference path).

Figures: top-1 agreement (classifier outputs), mean/min cosine similarity and max absolute error of the
outputs. Budgets are data: (flag name, figure, comparison).
"""

from __future__ import annotations

import operator

import numpy as np
from tfedge_device.model import Model

from ..errors import BudgetNotMet
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
                    top1: bool = True) -> dict:
    """Figures over samples; each sample is a list of outputs (paired by position). `top1`: the first
    output is class scores when it is [1, classes]."""
    cosines, max_errors, agreements = [], [], []
    for reference, candidate in zip(references, candidates):
        for ref, cand in zip(reference, candidate):
            ref = np.asarray(ref, np.float32)
            cand = np.asarray(cand, np.float32).reshape(ref.shape)
            cosines.append(cosine(ref, cand))
            max_errors.append(float(np.max(np.abs(ref - cand))) if ref.size else 0.0)
        if top1 and is_classifier_output(np.asarray(reference[0])):
            agreements.append(float(np.argmax(reference[0], -1)[0] == np.argmax(candidate[0], -1)[0]))
    return {
        "samples": len(references),
        "top1_agreement": float(np.mean(agreements)) if agreements else None,
        "cosine_mean": float(np.mean(cosines)) if cosines else None,
        "cosine_min": float(np.min(cosines)) if cosines else None,
        "max_abs_error": float(np.max(max_errors)) if max_errors else None,
    }


def verify(source: SourceModel, model: Model, samples) -> dict:
    """Run source (TensorFlow) and model (device runtime) on every sample and compare."""
    references = [source.predict(arrays) for arrays in samples.arrays]
    order = output_order(source, model)
    candidates = [[outputs[i] for i in order] for outputs in (model.predict(*arrays) for arrays in samples.arrays)]
    figures = None
    if getattr(source, "detection", None) is not None:  # a detector: its detections, matched (detection.py)
        from .detection import detection_figures

        figures = detection_figures(source, references, candidates)
    if figures is None:
        figures = compare_outputs(references, candidates, top1=source.task not in TASKS_WITHOUT_TOP1)
    figures["data"] = samples.origin
    figures["real_data"] = samples.real
    return figures


def output_order(source: SourceModel, model: Model) -> list[int]:
    """Positions of the model's outputs in the source's order: by the signature's output names when the source
    names its outputs and the model's signature has the same names (the converter does not keep a SavedModel's
    output order: a detector's num_detections may come first), else as they are."""
    positions = list(range(len(model.outputs)))
    signatures = getattr(model.interpreter, "_get_full_signature_list", dict)() or {}
    if not source.output_names or len(signatures) != 1:
        return positions
    by_name = next(iter(signatures.values())).get("outputs", {})
    index_position = {spec.index: i for i, spec in enumerate(model.outputs)}
    if sorted(by_name) != sorted(source.output_names) or not all(t in index_position for t in by_name.values()):
        return positions
    return [index_position[by_name[name]] for name in source.output_names]


# (option name, figure, comparison, wording)
BUDGETS = (
    ("min_cosine", "cosine_min", operator.ge, "min cosine"),
    ("min_top1_agreement", "top1_agreement", operator.ge, "top-1 agreement"),
    ("max_abs_error", "max_abs_error", operator.le, "max abs error"),
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

