"""`tfedge edgetpu check`: predict, without the compiler, which ops the Edge TPU Compiler maps to the TPU.

Applies rules.py (Coral's documented rules) to the model read by tfedge.analysis.graph, in execution order:
ops before the first mappable op run on the CPU; the TPU subgraph starts at the first mappable op and ends at
the first op that cannot map; every later op runs on the CPU ("More than one subgraph is not supported").
A prediction, not a compilation: undocumented compiler limits (op versions, sizes, the resize caveats) are
reported as caveats, and ops in parallel branches are judged by execution order, as the compiler's log is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import graph as graph_module
from . import rules

EIGHT_BIT = ("int8", "uint8")


@dataclass
class OpVerdict:
    index: int
    op: str
    version: int | None
    status: str
    reasons: list = field(default_factory=list)
    caveats: list = field(default_factory=list)
    macs: int | None = 0
    count: int = 1  # > 1 only for the compiler's grouped rows (its log has counts, not single ops)

    @property
    def on_tpu(self) -> bool:
        return self.status == rules.MAPPED

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.op, "version": self.version, "count": self.count,
                "on_tpu": self.on_tpu, "status": self.status, "reasons": self.reasons, "caveats": self.caveats,
                "macs": self.macs}


# -- Constraint checks: (op, tensor) -> a detail string when the constraint FAILS, else None. -------------

def _activations(op, tensor):
    return [tensor(i) for i in (*op.inputs, *op.outputs) if i >= 0 and not tensor(i).is_constant]


def _rank(t) -> int:
    return len(t.shape)


def _axes(values, rank: int):
    return None if values is None else sorted({v % rank for v in values}) if rank else list(values)


def _first_failing(tensors, predicate):
    return next((t for t in tensors if predicate(t)), None)


def check_8bit(op, tensor):
    bad = _first_failing(_activations(op, tensor), lambda t: t.dtype not in EIGHT_BIT)
    return f"{bad.name!r} ({bad.dtype})" if bad else None


def check_static(op, tensor):
    bad = _first_failing(_activations(op, tensor), lambda t: t.is_dynamic)
    return f"{bad.name!r} {list(bad.shape_signature)}" if bad else None


def check_innermost_3(op, tensor):
    bad = _first_failing(_activations(op, tensor), lambda t: any(d > 1 for d in t.shape[:-3]))
    return f"{bad.name!r} {list(bad.shape)}" if bad else None


def check_no_fused_activation(op, tensor):
    activation = op.options.get("fused_activation_function", "NONE")
    return activation if activation != "NONE" else None


def check_same_dilation(op, tensor):
    h, w = op.options.get("dilation_hfactor", 1), op.options.get("dilation_wfactor", 1)
    return f"{h}x{w}" if h != w else None


def check_constant_weights(op, tensor):
    for position, what in ((1, "weights"), (2, "bias")):
        if op.name == "TRANSPOSE_CONV" and position == 2:
            continue  # TRANSPOSE_CONV: inputs are (output_shape, weights, input, bias)
        if len(op.inputs) > position and op.inputs[position] >= 0 and not tensor(op.inputs[position]).is_constant:
            return f"the {what} tensor {tensor(op.inputs[position]).name!r}"
    return None


def check_default_weights_format(op, tensor):
    fmt = op.options.get("weights_format", 0)
    return str(fmt) if fmt not in (0, "DEFAULT") else None


def _non_trivial(shape) -> list:
    return [d for d in shape if d > 1]


def check_one_dim_output(op, tensor):
    shape = tensor(op.outputs[0]).shape
    return str(list(shape)) if len(_non_trivial(shape)) > 1 else None


def check_concat_constant_input(op, tensor):
    constants = [i for i in op.inputs if i >= 0 and tensor(i).is_constant]
    if constants and len(op.inputs) != 2:
        return f"{len(constants)} constant input(s) among {len(op.inputs)}"
    return None


def check_z_reduction(op, tensor):
    shape = tensor(op.inputs[0]).shape
    axes = _axes(tensor(op.inputs[1]).values, len(shape))
    if axes is None:
        return None  # reported by not_batch_axis
    return str(shape[-1]) if shape and len(shape) - 1 in axes and shape[-1] % 4 else None


def check_pad_not_batch(op, tensor):
    rank = _rank(tensor(op.inputs[0]))
    values = tensor(op.inputs[1]).values
    if values is None:
        return "given by a non-constant tensor"
    padded = [dim for dim in range(rank) if any(values[2 * dim: 2 * dim + 2])]
    return str(padded) if rank >= 4 and 0 in padded else None


def check_prelu_alpha(op, tensor):
    shape = tensor(op.inputs[1]).shape
    return str(list(shape)) if any(d > 1 for d in shape[:-1]) else None


def check_not_batch_axis(op, tensor):
    if op.name == "PACK":
        rank, axes = _rank(tensor(op.outputs[0])), [op.options.get("axis", 0)]
    elif op.name == "SPLIT":  # inputs: (axis, value)
        rank, axes = _rank(tensor(op.inputs[1])), tensor(op.inputs[0]).values
    else:  # reductions: (input, axes)
        rank, axes = _rank(tensor(op.inputs[0])), tensor(op.inputs[1]).values
    if axes is None:
        return "given by a non-constant tensor"
    # Only a 4-D (NHWC) tensor has a batch dimension distinct from y/x/channels.
    return "0" if rank >= 4 and 0 in _axes(axes, rank) else None


def check_io_3d(op, tensor):
    for t in (tensor(op.inputs[0]), tensor(op.outputs[0])):
        if any(d > 1 for d in t.shape[:-3]):
            return str(list(t.shape))
    return None


def check_softmax(op, tensor):
    t = tensor(op.inputs[0])
    return str(list(t.shape)) if len(_non_trivial(t.shape)) > 1 or t.elements > 16000 else None


def check_unit_strides(op, tensor):
    strides = tensor(op.inputs[3]).values if len(op.inputs) > 3 else None
    if strides is None:
        return "given by a non-constant tensor"
    return str(list(strides)) if any(s != 1 for s in strides) else None


def check_integer_quantize(op, tensor):
    dtypes = {tensor(i).dtype for i in (*op.inputs, *op.outputs) if i >= 0}
    floats = sorted(d for d in dtypes if d.startswith("float"))
    return floats[0] if floats else None


CHECKS = {
    "8bit_tensors": check_8bit,
    "static_size": check_static,
    "innermost_3_dims": check_innermost_3,
    "no_fused_activation": check_no_fused_activation,
    "same_dilation": check_same_dilation,
    "constant_weights": check_constant_weights,
    "default_weights_format": check_default_weights_format,
    "one_dim_output": check_one_dim_output,
    "concat_constant_input": check_concat_constant_input,
    "z_reduction_multiple_of_4": check_z_reduction,
    "pad_not_batch": check_pad_not_batch,
    "prelu_alpha_1d": check_prelu_alpha,
    "not_batch_axis": check_not_batch_axis,
    "io_3d": check_io_3d,
    "softmax_1d_16k": check_softmax,
    "unit_strides": check_unit_strides,
    "integer_quantize": check_integer_quantize,
}
assert set(CHECKS) == set(rules.CONSTRAINTS) | set(rules.TENSOR_REQUIREMENTS), "rules.py and CHECKS disagree"


def _failures(names, table, op, tensor) -> list:
    """[(status, reason)] for each failed constraint, in table order."""
    failed = []
    for name in names:
        try:
            detail = CHECKS[name](op, tensor)
        except (IndexError, TypeError, ZeroDivisionError):  # operands unlike the op's usual form
            detail = f"(op #{op.index} has operands the check does not understand)"
        if detail is not None:
            constraint = table[name]
            failed.append((constraint.status, f"{constraint.message.format(detail=detail)} [{constraint.source}]"))
    return failed


def judge_op(op, tensors) -> OpVerdict:
    """The status of one op on its own (before the one-subgraph rule)."""
    def tensor(i):
        return tensors[i]

    verdict = OpVerdict(op.index, op.name, op.version, rules.MAPPED, macs=op.macs)
    if op.name == rules.EDGETPU_CUSTOM_OP:
        verdict.reasons.append("already compiled: this op is the Edge TPU segment")
        return verdict
    rule = rules.OP_RULES.get(op.name)
    if rule is None:
        dtype = _failures(["8bit_tensors"], rules.TENSOR_REQUIREMENTS, op, tensor)
        verdict.status = dtype[0][0] if dtype else rules.NOT_SUPPORTED
        missing = f"{op.name} is not in the Edge TPU's supported operations [{rules.OPS}]"
        verdict.reasons = [r for _, r in dtype] or [missing]
        return verdict
    failed = _failures(rule.constraints, rules.CONSTRAINTS, op, tensor)
    failed += _failures(rules.TENSOR_REQUIREMENTS, rules.TENSOR_REQUIREMENTS, op, tensor)
    if failed:
        verdict.status = failed[0][0]
        verdict.reasons = [reason for _, reason in failed]
    elif rule.caveat:
        verdict.caveats.append(rule.caveat)
    return verdict


def partition(verdicts: list) -> list:
    """Apply the one-subgraph rule [rules.SPLIT] in execution order; returns the same verdicts."""
    state = "before"  # before the TPU subgraph, inside it, after it
    for verdict in verdicts:
        if verdict.on_tpu:
            if state == "after":
                verdict.reasons.append(f"runs on the CPU: the Edge TPU subgraph ended earlier [{rules.SPLIT}]")
                verdict.status = rules.MORE_THAN_ONE_SUBGRAPH
                verdict.caveats = []  # "may not map" no longer matters: it runs on the CPU anyway
            else:
                state = "in"
        elif state == "in":
            state = "after"
    return verdicts


def summarize(model: str, verdicts: list, source: str, tpu_subgraphs: int | None = None,
              extra: dict | None = None) -> dict:
    """The report shared by `check` (source "prediction") and `compile` (source "edgetpu_compiler")."""
    ops_total = sum(v.count for v in verdicts)
    ops_tpu = sum(v.count for v in verdicts if v.on_tpu)
    macs_known = all(v.macs is not None for v in verdicts)
    macs_total = sum(v.macs for v in verdicts) if macs_known else None
    macs_tpu = sum(v.macs for v in verdicts if v.on_tpu) if macs_known else None
    if tpu_subgraphs is None:
        tpu_subgraphs = 1 if ops_tpu else 0
    first_cpu = next((v for v in verdicts if not v.on_tpu), None)
    statuses = Counter()
    for v in verdicts:
        statuses[v.status] += v.count
    report = {
        "model": model,
        "source": source,
        "fully_mapped": ops_total > 0 and ops_tpu == ops_total,
        "tpu_subgraphs": tpu_subgraphs,
        "ops_total": ops_total,
        "ops_on_tpu": ops_tpu,
        "ops_on_cpu": ops_total - ops_tpu,
        "share_ops_on_tpu": round(ops_tpu / ops_total, 4) if ops_total else 0.0,
        "macs_total": macs_total,
        "macs_on_tpu": macs_tpu,
        "share_macs_on_tpu": round(macs_tpu / macs_total, 4) if macs_total else None,
        "first_cpu_op": first_cpu.to_dict() if first_cpu else None,
        "statuses": dict(statuses),
        "ops": [v.to_dict() for v in verdicts],
    }
    report.update(extra or {})
    return report


def check_graph(model) -> dict:
    """Predict the compiler's mapping for a parsed graph (tfedge.analysis.graph.Graph)."""
    main = model.main
    verdicts = partition([judge_op(op, main.tensors) for op in main.ops])
    notes = []
    for sg in model.subgraphs[1:]:
        notes.append(f"subgraph {sg.index} ({sg.name or 'unnamed'}, {len(sg.ops)} ops) runs on the CPU: "
                     "the compiler maps only the main subgraph")
        for op in sg.ops:
            verdicts.append(OpVerdict(op.index, op.name, op.version, rules.MORE_THAN_ONE_SUBGRAPH,
                                      [f"in subgraph {sg.index}, not the main one"], macs=op.macs))
    compiled = any(op.name == rules.EDGETPU_CUSTOM_OP for op in model.ops)
    if compiled:
        notes.append("this model was already compiled by edgetpu_compiler; check the source model instead")
    caveats = sorted({c for v in verdicts for c in v.caveats})
    return summarize(str(model.path), verdicts, "prediction",
                     extra={"compiled": compiled, "notes": notes, "caveats": caveats})


def check(path: str | Path) -> dict:
    """`tfedge edgetpu check MODEL.tflite`: the predicted report (see summarize)."""
    return check_graph(graph_module.read_graph(path))
