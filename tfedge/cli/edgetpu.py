"""`tfedge edgetpu check|compile`: Coral Edge TPU mapping, predicted anywhere or compiled on x86-64 Linux."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import BudgetNotMet
from .options import emit, json_option, require_full_option, table


@click.group("edgetpu")
def edgetpu():
    """Coral Edge TPU: predict the op mapping (check) or run edgetpu_compiler (compile)."""


@edgetpu.command("check")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--compiler-version", type=click.Choice(["16", "15"]), default="16", show_default=True,
              help="The edgetpu_compiler major version to predict (rules differ where the compilers differ).")
@require_full_option("Exit 4 unless every op is predicted on the TPU.")
@json_option
def check(model, compiler_version, require_full, as_json):
    """Predict which ops of MODEL.tflite the Edge TPU Compiler maps, by Coral's rules and the compiler's record.

    Needs no compiler (works on ARM and macOS). A prediction: only the compiler knows for sure; ops whose
    mapping hangs on a size limit nobody has pinned down are marked uncertain.
    """
    from ..edgetpu.check import check as run

    report = run(model, int(compiler_version))
    emit(report, as_json, print_report)
    _require_full(report, require_full)


@edgetpu.command("compile")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--out-dir", type=click.Path(path_type=Path), help="Where to write (default: beside MODEL).")
@click.option("--num-segments", type=int, default=None, help="Split into N segments for pipelining.")
@click.option("--timeout", type=float, default=180, show_default=True, help="Compiler timeout in seconds.")
@click.option("--compiler", help="Path of edgetpu_compiler (default: found on PATH).")
@click.option("--min-runtime-version", type=click.IntRange(10), default=None,
              help="Oldest Edge TPU runtime the model must run on (the compiler's --min_runtime_version).")
@click.option("--compiler-arg", "compiler_args", multiple=True,
              help="Pass one more argument to edgetpu_compiler (repeatable), e.g. --compiler-arg=--search_delegate.")
@require_full_option("Exit 4 unless the compiler mapped every op.")
@json_option
def compile_(model, out_dir, num_segments, timeout, compiler, min_runtime_version, compiler_args, require_full,
             as_json):
    """Compile MODEL.tflite with edgetpu_compiler into *_edgetpu.tflite plus manifest and log."""
    from ..edgetpu.compiler import compile_model

    report = compile_model(model, out_dir, num_segments, timeout, compiler, min_runtime_version, compiler_args)
    emit(report, as_json, print_report)
    _require_full(report, require_full)


def _require_full(report: dict, required: bool) -> None:
    if required and report.get("refusal"):
        raise BudgetNotMet(f"the compiler would refuse the model: {report['refusal']['message']}")
    if required and not report["fully_mapped"]:
        first = report["first_cpu_op"]
        raise BudgetNotMet(f"not every op maps to the Edge TPU: {first['op']}: {first['status']}")


def _percent(share) -> str:
    return "n/a" if share is None else f"{100 * share:.1f} %"


def print_report(r: dict) -> None:
    echo = click.echo
    predicted = r["source"] == "prediction"
    echo(f"{r['model']}: " + (f"predicted for edgetpu_compiler {r['compiler_version']} by tfedge's pre-check "
                              "(not a compilation)" if predicted
                              else f"edgetpu_compiler {r.get('compiler_version') or ''}".rstrip()))
    if r.get("refusal"):
        echo(f"the compiler refuses this model: {r['refusal']['message']} [{r['refusal']['source']}]")
    rows = []
    for op in r["ops"]:
        why = "; ".join(op["reasons"]) or ("see caveat below" if op["caveats"] else "")
        on = ("TPU" if op["on_tpu"] else "CPU") + ("?" if op.get("uncertain") else "")
        why = why or (f"uncertain: {op['uncertain']}" if op.get("uncertain") else "")
        rows.append((op["index"] if predicted else "", op["op"], op["count"], on, op["status"], why))
    echo(table(rows, ("#", "operator", "count", "on", "status", "why")))
    echo("")
    echo(table([
        ("Edge TPU subgraphs", r["tpu_subgraphs"]),
        ("ops on the Edge TPU", f"{r['ops_on_tpu']} of {r['ops_total']} ({_percent(r['share_ops_on_tpu'])})"),
        ("MACs on the Edge TPU", _percent(r["share_macs_on_tpu"])),
    ] + ([("placement certain / uncertain", f"{r['ops_certain']} / {r['ops_uncertain']} ops")] if predicted else []) + [(label, f"{r[key]} bytes") for label, key in (
        ("on-chip memory used", "on_chip_memory_used"), ("off-chip memory used", "off_chip_memory_used"))
        if r.get(key) is not None]
      + [("compiled model", path) for path in r.get("compiled_models", [])]))
    if r.get("first_cpu_op"):
        first = r["first_cpu_op"]
        where = f"op #{first['index']} " if predicted else ""
        echo(f"first CPU op: {where}{first['op']}: {first['status']}")
    for note in r.get("notes", []):
        echo(f"note: {note}")
    for caveat in r.get("caveats", []):
        ops = sorted({op["op"] for op in r["ops"] if caveat in op["caveats"]})
        echo(f"caveat ({', '.join(ops)}): {caveat}")
    if "agrees_with_prediction" in r:
        p, agrees = r["prediction"], r["agrees_with_prediction"]
        verdict = ("the compiler printed no operation table or counts to compare" if agrees is None else
                   "agrees" if agrees else "differs from the compiler (the compiler is right)")
        echo(f"pre-check predicted {p['ops_on_tpu']} of {p['ops_total']} ops on the TPU: {verdict}")
