"""What the compiler decides from sizes and versions rather than from the op table: size limits, whole-model refusals.

Both are data in rules.py (SIZE_LIMITS, UNKNOWN_OP_VERSIONS, NOT_QUANTIZED), each with its evidence; this module
measures an op or a model against them.
"""

from __future__ import annotations

import math

from . import rules


def _input_elements(op, tensor) -> float:
    return tensor(op.inputs[0]).elements


def _reduced_elements(op, tensor) -> float | None:
    """Elements folded into each output value of a reduction (MEAN: input, axes)."""
    shape = tensor(op.inputs[0]).shape
    axes = tensor(op.inputs[1]).values
    if axes is None or not shape:
        return None
    return math.prod(shape[a % len(shape)] for a in set(axes))


def _resize_scale(op, tensor) -> float | None:
    """The largest output/input ratio along y and x of an NHWC resize."""
    before, after = tensor(op.inputs[0]).shape, tensor(op.outputs[0]).shape
    if len(before) != 4 or len(after) != 4 or not all(before[1:3]):
        return None
    return max(after[1] / before[1], after[2] / before[2])


MEASURES = {"input_elements": _input_elements, "reduced_elements": _reduced_elements,
            "resize_scale": _resize_scale}
assert {limit.measure for limit in rules.SIZE_LIMITS.values()} <= set(MEASURES), "rules.SIZE_LIMITS and MEASURES"


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.2f}"


def judge_size(op, tensor, version: int):
    """(status, reason) when a size limit in rules.SIZE_LIMITS decides or leaves open the op's mapping, else None."""
    limit = rules.SIZE_LIMITS.get(op.name)
    if limit is None or version not in limit.versions:
        return None
    try:
        value = MEASURES[limit.measure](op, tensor)
    except (IndexError, TypeError, ZeroDivisionError):
        value = None
    if value is None:
        return None
    name = limit.measure.replace("_", " ")
    if limit.mapped_up_to is not None and value <= limit.mapped_up_to:
        return None
    if limit.unmapped_from is not None and value >= limit.unmapped_from:
        refused_here = (f"{name} {_figure(value)} >= {_figure(limit.unmapped_from)}, a size the compiler left on "
                        f"the CPU [{limit.source}]")
        return rules.UNSPECIFIED, refused_here
    known = (f"mapped up to {_figure(limit.mapped_up_to)}" if limit.mapped_up_to is not None
             else "no mapped size known")
    refused = (f"refused from {_figure(limit.unmapped_from)}" if limit.unmapped_from is not None
               else "no refused size known")
    return (rules.UNCERTAIN, f"{name} {_figure(value)}: {known}, {refused} [{limit.source}]")


def model_refusal(model, version: int) -> dict | None:
    """The compiler's whole-model refusal, if it would refuse: {"message", "source"} (its own words), else None."""
    unknown = rules.UNKNOWN_OP_VERSIONS.get(version, {})
    for op in model.ops:
        entry = None if op.is_custom else unknown.get(op.name)
        if entry is not None and op.version >= entry.first_unknown:
            return {"message": rules.UNKNOWN_OP_MESSAGE.format(op=op.name, version=op.version),
                    "source": entry.source, "op": op.name, "version": op.version}
    rule = rules.NOT_QUANTIZED
    if version in rule["versions"] and not any(t.quantization for t in model.tensors):
        return {"message": rule["message"], "source": rule["source"]}
    return None
