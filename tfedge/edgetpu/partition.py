"""Place the judged ops as edgetpu_compiler does: one Edge TPU subgraph, cut along the dataflow.

The compiler maps ops in execution order into a single Edge TPU subgraph [rules.SPLIT]. An op it cannot map ends
that subgraph only for what DEPENDS on it: an op downstream (through tensors) of a CPU op that itself follows the
TPU subgraph would need a second subgraph, so it runs on the CPU ("More than one subgraph is not supported";
QUANTIZE reported differently, rules.CUT_STATUS). An op in a parallel branch that does not depend on such a CPU op
stays in the TPU subgraph wherever it sits in the file (pose/keypoint heads after CPU post-processing), and CPU ops
before the TPU subgraph (a float input's QUANTIZE) cut nothing: their outputs are the subgraph's inputs.

An op predicted on the TPU only under an unknown size limit (rules.UNCERTAIN) makes what depends on it uncertain:
had the compiler refused it, they would have been cut.
"""

from __future__ import annotations

from . import rules


def _doubt(index: int, verdict) -> str:
    return f"depends on op #{index} {verdict.op}, itself uncertain ({verdict.uncertain})"


def partition(verdicts: list, subgraph) -> list:
    """Apply the one-subgraph rule to `verdicts` (one per op of `subgraph`, in order); returns them."""
    producer = {t: op.index for op in subgraph.ops for t in op.outputs}
    after_tpu = {}  # op index -> some op it depends on is on the TPU
    closed = {}  # op index -> it depends on a CPU op that follows the TPU subgraph (a TPU op here = 2nd subgraph)
    doubt = {}  # op index -> reason its placement depends on an uncertain op upstream
    for op, verdict in zip(subgraph.ops, verdicts):
        parents = sorted({producer[t] for t in op.inputs if producer.get(t, op.index) < op.index})
        after_tpu[op.index] = any(verdicts[p].on_tpu or after_tpu[p] for p in parents)
        closed[op.index] = any(closed[p] or (not verdicts[p].on_tpu and after_tpu[p]) for p in parents)
        doubt[op.index] = next((doubt[p] or _doubt(p, verdicts[p]) for p in parents
                                if doubt[p] or (verdicts[p].status == rules.UNCERTAIN and after_tpu[p])), None)
        if verdict.on_tpu and closed[op.index]:
            verdict.status = rules.CUT_STATUS.get(op.name, rules.MORE_THAN_ONE_SUBGRAPH)
            verdict.reasons.append("runs on the CPU: it depends on a CPU op that follows the Edge TPU subgraph "
                                   f"[{rules.CUT_SOURCE}]")
            verdict.caveats = []  # "may not map" no longer matters: it runs on the CPU anyway
            verdict.uncertain = None
        if verdict.on_tpu and verdict.uncertain is None and doubt[op.index]:
            verdict.uncertain = doubt[op.index]
    return verdicts
