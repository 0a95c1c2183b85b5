"""`tfedge edgetpu check`: predict, without the compiler, which ops the Edge TPU Compiler maps to the TPU.

Applies rules.py (Coral's documented rules, relaxed where the real compiler showed otherwise, per compiler
version) to the model read by tfedge.analysis.graph: each op is judged on its own (judge_op), then partition.py places
the ops along the dataflow as the compiler does (one Edge TPU subgraph; what depends on a CPU op that follows
it is cut). Whole-model refusals (op versions the compiler's TFLite does not know, an unquantized model) are
predicted with the compiler's own message. Size limits the evidence does not pin down give "uncertain".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..analysis import graph as graph_module
from ..errors import BadInput
from . import limits, rules
from .partition import partition

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
    uncertain: str | None = None  # why the placement is not certain (an unknown size limit here or upstream)

    @property
    def on_tpu(self) -> bool:
        return self.status in rules.ON_TPU

    def to_dict(self) -> dict:
        return {"index": self.index, "op": self.op, "version": self.version, "count": self.count,
                "on_tpu": self.on_tpu, "status": self.status, "certain": self.uncertain is None,
                "uncertain": self.uncertain, "reasons": self.reasons, "caveats": self.caveats, "macs": self.macs}


# -- Constraint checks: (op, tensor, version) -> a detail string when the constraint FAILS, else None. ------

def _activations(op, tensor):
    return [tensor(i) for i in (*op.inputs, *op.outputs) if i >= 0 and not tensor(i).is_constant]


def _rank(t) -> int:
    return len(t.shape)


def _axes(values, rank: int):
    return None if values is None else sorted({v % rank for v in values}) if rank else list(values)


def _first_failing(tensors, predicate):
    return next((t for t in tensors if predicate(t)), None)


def check_8bit(op, tensor, version):
    rule = rules.OP_RULES.get(op.name)
    if rule is not None and version in rule.data_io_8bit:  # internal state may be wider (rules.OP_RULES)
        tensors = [tensor(i) for i in (op.inputs[:1] + op.outputs[:1]) if i >= 0]
    else:
        tensors = _activations(op, tensor)
    bad = _first_failing(tensors, lambda t: t.dtype not in EIGHT_BIT)
    return f"{bad.name!r} ({bad.dtype})" if bad else None


def dynamic_dims(t, version) -> list:
    """Indices of the dimensions the compiler sees as dynamic (a leading batch -1 is taken as 1)."""
    batch_as_one = version in rules.BATCH_AS_ONE["versions"] and len(t.shape_signature) >= 2
    return [i for i, d in enumerate(t.shape_signature) if d < 0 and not (i == 0 and batch_as_one)]


def check_static(op, tensor, version):
    bad = _first_failing(_activations(op, tensor), lambda t: dynamic_dims(t, version))
    return f"{bad.name!r} {list(bad.shape_signature)}" if bad else None


def check_innermost_3(op, tensor, version):
    bad = _first_failing(_activations(op, tensor), lambda t: any(d > 1 for d in t.shape[:-3]))
    return f"{bad.name!r} {list(bad.shape)}" if bad else None


def check_no_fused_activation(op, tensor, version):
    activation = op.options.get("fused_activation_function", "NONE")
    return activation if activation != "NONE" else None


def check_same_dilation(op, tensor, version):
    h, w = op.options.get("dilation_hfactor", 1), op.options.get("dilation_wfactor", 1)
    return f"{h}x{w}" if h != w else None


def check_constant_weights(op, tensor, version):
    for position, what in ((1, "weights"), (2, "bias")):
        if op.name == "TRANSPOSE_CONV" and position == 2:
            continue  # TRANSPOSE_CONV: inputs are (output_shape, weights, input, bias)
        if len(op.inputs) > position and op.inputs[position] >= 0 and not tensor(op.inputs[position]).is_constant:
            return f"the {what} tensor {tensor(op.inputs[position]).name!r}"
    return None


def check_default_weights_format(op, tensor, version):
    fmt = op.options.get("weights_format", 0)
    return str(fmt) if fmt not in (0, "DEFAULT") else None


def _non_trivial(shape) -> list:
    return [d for d in shape if d > 1]


def check_one_dim_output(op, tensor, version):
    shape = tensor(op.outputs[0]).shape
    return str(list(shape)) if len(_non_trivial(shape)) > 1 else None


def check_concat_constant_input(op, tensor, version):
    constants = [i for i in op.inputs if i >= 0 and tensor(i).is_constant]
    if constants and len(op.inputs) != 2:
        return f"{len(constants)} constant input(s) among {len(op.inputs)}"
    return None


def check_z_reduction(op, tensor, version):
    shape = tensor(op.inputs[0]).shape
    axes = _axes(tensor(op.inputs[1]).values, len(shape))
    if axes is None:
        return None  # reported by not_batch_axis
    return str(shape[-1]) if shape and len(shape) - 1 in axes and shape[-1] % 4 else None


def check_pad_not_batch(op, tensor, version):
    rank = _rank(tensor(op.inputs[0]))
    values = tensor(op.inputs[1]).values
    if values is None:
        return "given by a non-constant tensor"
    padded = [dim for dim in range(rank) if any(values[2 * dim: 2 * dim + 2])]
    return str(padded) if rank >= 4 and 0 in padded else None


def check_prelu_alpha(op, tensor, version):
    shape = tensor(op.inputs[1]).shape
    return str(list(shape)) if any(d > 1 for d in shape[:-1]) else None


def check_not_batch_axis(op, tensor, version):
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


def check_io_3d(op, tensor, version):
    for t in (tensor(op.inputs[0]), tensor(op.outputs[0])):
        if any(d > 1 for d in t.shape[:-3]):
            return str(list(t.shape))
    return None


def check_softmax(op, tensor, version):
    t = tensor(op.inputs[0])
    return str(list(t.shape)) if len(_non_trivial(t.shape)) > 1 or t.elements > 16000 else None


def check_unit_strides(op, tensor, version):
    strides = tensor(op.inputs[3]).values if len(op.inputs) > 3 else None
    if strides is None:
        return "given by a non-constant tensor"
    return str(list(strides)) if any(s != 1 for s in strides) else None


def check_integer_quantize(op, tensor, version):
    dtypes = {tensor(i).dtype for i in (*op.inputs, *op.outputs) if i >= 0}
    floats = sorted(d for d in dtypes if d.startswith("float"))
    return floats[0] if floats else None


def check_softmax_axis(op, tensor, version):
    shape = tensor(op.inputs[0]).shape
    return str(shape[-1]) if shape and shape[-1] > 16000 else None


def check_resize_op_version(op, tensor, version):
    return str(op.version) if op.version >= 3 else None


CHECKS = {
    "8bit_tensors": check_8bit,
    "static_size": check_static,
    "innermost_3_dims": check_innermost_3,
    "no_fused_activation": check_no_fused_activation,
    "same_dilation": check_same_dilation,
    "same_dilation_conv": check_same_dilation,
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
    "softmax_axis_16k": check_softmax_axis,
    "unit_strides": check_unit_strides,
    "integer_quantize": check_integer_quantize,
    "resize_op_version": check_resize_op_version,
}
assert set(CHECKS) == set(rules.CONSTRAINTS) | set(rules.TENSOR_REQUIREMENTS), "rules.py and CHECKS disagree"


def _failures(names, table, op, tensor, version) -> list:
    """[(status, reason)] for each failed constraint that holds for this compiler version, in table order."""
    failed = []
    for name in names:
        constraint = table[name]
        if version not in constraint.versions:
            continue
        try:
            detail = CHECKS[name](op, tensor, version)
        except (IndexError, TypeError, ZeroDivisionError):  # operands unlike the op's usual form
            detail = f"(op #{op.index} has operands the check does not understand)"
        if detail is not None:
            failed.append((constraint.status, f"{constraint.message.format(detail=detail)} [{constraint.source}]"))
    return failed


def log_name(op) -> str:
    """The op's name as the compiler's log prints it: CUSTOM for a custom op (its code is in the reasons;
    tensorflow/models#10695, an SSD's TFLite_Detection_PostProcess), except the Edge TPU's own."""
    return "CUSTOM" if op.is_custom and op.name != rules.EDGETPU_CUSTOM_OP else op.name


def judge_op(op, tensors, version: int = rules.DEFAULT_COMPILER) -> OpVerdict:
    """The status of one op on its own (before the one-subgraph rule), for compiler major `version`."""
    def tensor(i):
        return tensors[i]

    verdict = OpVerdict(op.index, log_name(op), op.version, rules.MAPPED, macs=op.macs)
    if op.name == rules.EDGETPU_CUSTOM_OP:
        verdict.reasons.append("already compiled: this op is the Edge TPU segment")
        return verdict
    rule = None if op.is_custom else rules.OP_RULES.get(op.name)
    if rule is None or version not in rule.versions:
        dtype = _failures(["8bit_tensors"], rules.TENSOR_REQUIREMENTS, op, tensor, version)
        verdict.status = dtype[0][0] if dtype else rules.NOT_SUPPORTED
        what = f"custom op {op.name}" if op.is_custom else op.name
        missing = (f"{what} is not in the Edge TPU's supported operations [{rules.OPS}]" if rule is None else
                   f"{op.name} is mapped only by compiler {'/'.join(map(str, rule.versions))} [{rule.source}]")
        verdict.reasons = [r for _, r in dtype] or [missing]
        if op.is_custom and dtype:  # the log's name is CUSTOM: say which (e.g. TFLite_Detection_PostProcess)
            verdict.reasons.insert(0, f"custom op {op.name}")
        return verdict
    failed = _failures(rule.constraints, rules.CONSTRAINTS, op, tensor, version)
    failed += _failures(rules.TENSOR_REQUIREMENTS, rules.TENSOR_REQUIREMENTS, op, tensor, version)
    if failed:
        verdict.status = failed[0][0]
        verdict.reasons = [reason for _, reason in failed]
        return verdict
    size = limits.judge_size(op, tensor, version)
    if size is not None:
        verdict.status, reason = size
        verdict.reasons.append(reason)
        if verdict.status == rules.UNCERTAIN:
            verdict.uncertain = reason
    elif rule.caveat:
        verdict.caveats.append(rule.caveat)
    return verdict


def summarize(model: str, verdicts: list, source: str, tpu_subgraphs: int | None = None,
              extra: dict | None = None) -> dict:
    """The report shared by `check` (source "prediction") and `compile` (source "edgetpu_compiler")."""
    ops_total = sum(v.count for v in verdicts)
    ops_tpu = sum(v.count for v in verdicts if v.on_tpu)
    ops_uncertain = sum(v.count for v in verdicts if v.uncertain)
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
        "ops_certain": ops_total - ops_uncertain,
        "ops_uncertain": ops_uncertain,
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


def cpu_op_counts(report: dict) -> dict:
    """{op name: count} of the ops a report (predicted or the compiler's) places on the CPU."""
    counts = Counter()
    for op in report["ops"]:
        if not op["on_tpu"]:
            counts[op["op"]] += op["count"]
    return dict(counts)


def check_graph(model, compiler_version: int = rules.DEFAULT_COMPILER) -> dict:
    """Predict edgetpu_compiler `compiler_version`'s (16 or 15) mapping for a parsed graph (tfedge.analysis.graph.Graph)."""
    if compiler_version not in rules.COMPILER_VERSIONS:
        raise BadInput(f"--compiler-version {compiler_version}: the rules describe compiler "
                       f"{' and '.join(map(str, rules.COMPILER_VERSIONS))}")
    main = model.main
    verdicts = partition([judge_op(op, main.tensors, compiler_version) for op in main.ops], main)
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
    refusal = None if compiled else limits.model_refusal(model, compiler_version)
    if refusal is not None:
        for verdict in verdicts:
            verdict.status, verdict.uncertain, verdict.caveats = rules.MODEL_REFUSED, None, []
            verdict.reasons = [f"{refusal['message']} [{refusal['source']}]"]
    caveats = sorted({c for v in verdicts for c in v.caveats})
    return summarize(str(model.path), verdicts, "prediction",
                     tpu_subgraphs=0 if refusal else None,
                     extra={"compiled": compiled, "compiler_version": compiler_version, "refusal": refusal,
                            "notes": notes, "caveats": caveats})


def check(path: str | Path, compiler_version: int = rules.DEFAULT_COMPILER) -> dict:
    """`tfedge edgetpu check MODEL.tflite`: the predicted report (see summarize)."""
    return check_graph(graph_module.read_graph(path), compiler_version)
