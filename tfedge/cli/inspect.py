"""`tfedge inspect`: operators, tensors, parameters, MACs/FLOPs, size, manifest and runtime compatibility."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .options import emit, json_option, table

log = logging.getLogger(__name__)


@click.command("inspect")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--tensors", "show_tensors", is_flag=True, help="List every tensor (default: inputs and outputs).")
@json_option
def inspect(model, show_tensors, as_json):
    """Describe MODEL.tflite and tell which device runtimes can run it."""
    from ..analysis.inspection import inspect as run

    result = run(model)
    emit(result, as_json, lambda r: print_result(r, show_tensors))
    if not as_json:
        for verdict in result["compatibility"]["runtimes"]:
            if verdict["ok"] is False:
                log.warning("%s cannot run %s: %s", verdict["runtime"], model.name, verdict["reason"])


def _quant(q) -> str:
    if not q:
        return "-"
    if q["per_channel"]:
        return f"per-channel ({len(q['scale'])} scales, axis {q['axis']})"
    return f"scale {q['scale']:.6g}, zero point {q['zero_point']}"


def print_result(r: dict, show_tensors: bool) -> None:
    from ..analysis.inspection import human_count

    echo = click.echo
    flops = "n/a" if r["flops"] is None else f"{r['flops'] / 1e9:.4g} GFLOPs ({human_count(r['macs'])} MACs)"
    echo(table([
        ("model", r["model"]), ("size", f"{r['size_bytes'] / 1e6:.3f} MB ({r['size_bytes']} bytes)"),
        ("parameters", f"{human_count(r['params'])} ({r['params']})"),
        ("compute", f"{flops} at input shapes {', '.join(map(str, r['macs_at']))}"),
        ("operators", f"{r['operator_count']} in {r['subgraphs']} subgraph(s)"),
        ("min runtime", r["min_runtime_version"] or "not recorded"),
    ]))
    if r["macs_unknown_for"]:
        echo(f"(no MAC rule for {', '.join(r['macs_unknown_for'])}: counted as 0)")
    echo("\nOperators")
    total = r["macs"] or 0
    echo(table([(o["op"], f"v{o['version']}", o["count"], human_count(o["macs"]),
                 f"{100 * o['macs'] / total:.1f} %" if total and o["macs"] is not None else "-")
                for o in r["operators"]], ("op", "version", "count", "MACs", "share")))
    echo("\nInputs and outputs")
    echo(table([(kind, t["name"], t["shape"], t["dtype"], _quant(t["quantization"]))
                for kind, key in (("input", "inputs"), ("output", "outputs")) for t in r[key]],
               ("", "name", "shape", "dtype", "quantization")))
    echo("\nTensors by dtype: " + ", ".join(f"{dtype} {count}" for dtype, count in sorted(r["dtypes"].items())))
    if show_tensors:
        echo(table([(t["name"], t["shape"], t["dtype"], "const" if t["constant"] else "", _quant(t["quantization"]))
                    for t in r["tensors"]], ("name", "shape", "dtype", "", "quantization")))
    compat = r["compatibility"]
    echo(f"\nRuntime compatibility (model needs TFLite runtime {compat['min_release'] or 'unknown'})")
    echo(table([(v["runtime"] + (f" {v['version']}" if v["version"] else ""),
                 {True: "yes", False: "NO", None: "unknown"}[v["ok"]], v["method"], v["reason"])
                for v in compat["runtimes"]], ("runtime", "can run", "how", "why")))
    manifest = r["manifest"]
    echo("\nManifest: " + ("none (no " + Path(r["model"]).with_suffix(".json").name + ")" if not manifest else
                          f"mode {manifest.get('mode')}, task {manifest.get('task')}, created {manifest.get('created')}"))
    if manifest and not r["manifest_matches_model"]:
        echo("  STALE: the manifest's sha256 does not match the model (re-run `tfedge convert`)")
    if manifest and manifest.get("verification"):
        figures = manifest["verification"]
        agreement = figures.get("top1_agreement")
        echo(f"  verified on {figures.get('data')}: cosine min {figures.get('cosine_min') or 0:.6f}"
             + ("" if agreement is None else f", top-1 agreement {agreement * 100:.1f} %"))
