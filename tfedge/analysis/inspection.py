"""`tfedge inspect`: what is in a .tflite model — operators (versions, counts, MACs), tensors (dtypes,
quantization), parameters, FLOPs, size, manifest — and which device runtimes can run it.

The flatbuffer is read by tfedge.analysis.graph (on the `tflite` schema package); runtime compatibility comes from
tfedge.analysis.compat. MACs are multiply-accumulates; FLOPs = 2 x MACs (the convention of the seeds' tables).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

from tfedge_device.manifest import read_manifest
from tfedge_device.model import needs_edgetpu, read_model_bytes

from ..errors import BadInput
from . import compat


def _graph(path: Path):
    """The graph, with MACs at the runtime's allocated shapes when the model has dynamic inputs."""
    from . import graph

    model = graph.read_graph(path)
    if any(t.is_dynamic for t in model.inputs) and not needs_edgetpu(read_model_bytes(path)):
        model = _at_allocated_shapes(model, path)
    return model


def _at_allocated_shapes(model, path: Path):
    """A dynamic dimension is 1 in the flatbuffer's static shapes (e.g. a text model's sequence length), so
    graph MACs would be per token. Recount the main subgraph's MACs on the shapes of one inference at the
    inputs' default shape (tfedge writes [1, seq_len] there). Shapes settle only when the ops run, and the
    XNNPACK delegate hides them, so this runs once with the builtin kernels only; tensor indices of
    subgraph 0 are the interpreter's."""
    from dataclasses import replace

    import numpy as np
    from tfedge_device.quiet import quiet_native
    from tfedge_device.runtime import get_runtime

    from . import graph

    api = get_runtime().api
    resolver = getattr(getattr(api, "OpResolverType", None), "BUILTIN_WITHOUT_DEFAULT_DELEGATES", None)
    kwargs = {"experimental_op_resolver_type": resolver} if resolver is not None else {}
    try:
        with quiet_native():
            interpreter = api.Interpreter(model_content=read_model_bytes(path), **kwargs)
            interpreter.allocate_tensors()
            for detail in interpreter.get_input_details():
                interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
            interpreter.invoke()
    except (ValueError, RuntimeError):
        return model  # the compatibility check reports why the runtime cannot run it
    shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}
    main = model.main
    tensors = tuple(replace(t, shape=shapes.get(t.index, t.shape)) for t in main.tensors)
    ops = tuple(replace(op, macs=graph.macs(op, tensors)) for op in main.ops)
    subgraphs = (replace(main, tensors=tensors, ops=ops),) + tuple(model.subgraphs[1:])
    return replace(model, subgraphs=subgraphs)


def summary(path: str | Path) -> dict:
    """Params, MACs/FLOPs and size (what `tfedge compare` needs), without compatibility probing."""
    path = Path(path)
    model = _graph(path)
    macs = known_macs(model)
    return {"params": model.param_count, "macs": macs, "flops": None if macs is None else 2 * macs,
            "size_bytes": path.stat().st_size, "min_runtime_version": model.min_runtime_version,
            "macs_at": [list(t.shape) for t in model.inputs]}


def known_macs(model) -> int:
    """Total MACs of the ops whose MACs are known (graph.total_macs is None as soon as one is unknown)."""
    return sum(op.macs for op in model.ops if op.macs is not None)


def _quantization(tensor) -> dict | None:
    q = tensor.quantization
    if not q:
        return None
    scales = list(q.get("scale") or q.get("scales") or [])
    zero_points = list(q.get("zero_point") or q.get("zero_points") or [])
    if not scales:
        return None
    per_channel = len(scales) > 1
    return {"per_channel": per_channel, "axis": q.get("axis") if per_channel else None,
            "scale": scales if per_channel else scales[0],
            "zero_point": zero_points if per_channel else (zero_points[0] if zero_points else 0)}


def inspect(path: str | Path, check_runtimes: bool = True) -> dict:
    path = Path(path)
    data = read_model_bytes(path)  # refuses non-models with a clear message before the schema reader
    model = _graph(path)
    manifest = read_manifest(path, check_hash=False)  # shown even when stale: the mismatch is reported
    manifest_matches = manifest is None or manifest["model_sha256"] == hashlib.sha256(data).hexdigest()
    tensors = []
    for tensor in model.tensors:
        tensors.append({"name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype,
                        "constant": tensor.is_constant, "quantization": _quantization(tensor)})
    groups = Counter((op.name, op.version) for op in model.ops)
    op_macs: Counter = Counter()
    unknown_macs = set()
    for op in model.ops:
        if op.macs is None:
            unknown_macs.add(op.name)
        else:
            op_macs[(op.name, op.version)] += op.macs
    total = known_macs(model)
    operators = [{"op": name, "version": version, "count": count,
                  "macs": op_macs.get((name, version)) if name not in unknown_macs else None}
                 for (name, version), count in sorted(groups.items(), key=lambda kv: (-op_macs[kv[0]], kv[0]))]
    result = {
        "model": str(path),
        "size_bytes": len(data),
        "subgraphs": model.subgraph_count,
        "operator_count": len(model.ops),
        "operators": operators,
        "layers": [{"subgraph": op.subgraph, "index": op.index, "op": op.name, "version": op.version,
                    "macs": op.macs} for op in model.ops],
        "inputs": [_io(t) for t in model.inputs],
        "outputs": [_io(t) for t in model.outputs],
        "tensors": tensors,
        "dtypes": dict(Counter(t["dtype"] for t in tensors)),
        "params": model.param_count,
        "macs": total,
        "flops": None if total is None else 2 * total,
        "macs_unknown_for": sorted(unknown_macs),
        "macs_at": [list(t.shape) for t in model.inputs],  # input shapes the MACs are counted at
        "min_runtime_version": model.min_runtime_version,
        "edgetpu_custom_op": needs_edgetpu(data),
        "manifest": manifest,
        "manifest_matches_model": manifest_matches,
    }
    if check_runtimes:
        builtin_ops = [(op.name, op.version) for op in model.ops if not op.is_custom]  # custom ops: no versions
        result["compatibility"] = compat.check(path, builtin_ops, model.min_runtime_version,
                                               edgetpu_model=needs_edgetpu(data))
    return result


def _io(tensor) -> dict:
    return {"name": tensor.name, "shape": list(tensor.shape), "dtype": tensor.dtype,
            "quantization": _quantization(tensor)}


def human_count(value) -> str:
    if value is None:
        return "n/a"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.2f} {unit}"
    return str(value)


def check_model_path(path: Path) -> None:
    if path.suffix != ".tflite" and path.exists() and not path.is_dir():
        read_model_bytes(path)  # a clear "not a TFLite model" for anything else
    if path.is_dir():
        raise BadInput(f"model path is a directory, not a .tflite file: {path}")
