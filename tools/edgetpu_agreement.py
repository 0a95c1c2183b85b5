#!/usr/bin/env python3
"""How often `tfedge edgetpu check` agrees with the real edgetpu_compiler: models exact, ops placed right.

    tools/edgetpu_agreement.py FOLDER [--json]

FOLDER is either a truth set with `expected.json` (../shared/edgetpu-truth: one record per model, its files and
the ops the compiler left on the CPU) or any folder of `NAME.tflite` with the compiler's `NAME_edgetpu.log` and/or
`NAME_edgetpu.tflite` beside it (the CPU ops are then read from those). For each model the pre-check runs for the
compiler major version that produced the result (16 when unknown) and its CPU ops are compared with the compiler's:

  exact           the multiset of CPU ops (name -> count) is the compiler's
  ops placed right  ops - sum over op names of |predicted CPU count - compiler's CPU count| (a lower bound per op:
                  the compiler's table gives counts per name, not op indices)
  uncertain       ops the pre-check marked uncertain (an unknown size limit), counted apart

Prints a table, then the same as JSON (`--json`: the JSON alone). Runs against whatever `tfedge` is importable,
so the same script measures an older checkout (PYTHONPATH=OLD:OLD/device) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from collections import Counter
from pathlib import Path


def _cpu_ops(report: dict, custom_codes: set) -> Counter:
    """CPU ops by name; custom codes (older checkouts name custom ops by code) counted as CUSTOM."""
    counts = Counter()
    for op in report["ops"]:
        if not op["on_tpu"]:
            counts["CUSTOM" if op["op"] in custom_codes else op["op"]] += op.get("count", 1)
    return counts


def _cases_from_expected(folder: Path) -> list:
    cases = []
    for record in json.loads((folder / "expected.json").read_text()):
        truth = record["compiled_cpu_ops"] if "compiled_cpu_ops" in record else record["not_mapped"]
        cases.append({"id": record["id"], "model": folder / record["files"]["model"]["file"],
                      "compiler": record.get("compiler"), "truth": Counter(truth),
                      "truth_from": "compiled" if "compiled_cpu_ops" in record else "log"})
    return cases


def _cases_from_files(folder: Path) -> list:
    from tfedge.edgetpu.compiler import parse_operation_table, parse_summary

    cases = []
    for model in sorted(p for p in folder.rglob("*.tflite") if not p.stem.endswith("_edgetpu")):
        compiled, log = model.with_name(f"{model.stem}_edgetpu.tflite"), model.with_name(f"{model.stem}_edgetpu.log")
        if compiled.is_file():  # custom ops other than the Edge TPU's: CUSTOM, as the compiler's log names them
            truth = Counter("CUSTOM" if op.is_custom else op.name for op in _read_graph(compiled).ops
                            if op.name != "edgetpu-custom-op")
            version, source = None, "compiled"
        elif log.is_file():
            text = log.read_text(encoding="utf-8", errors="replace")
            truth = Counter()
            for row in parse_operation_table(text):
                if row.status != "Mapped to Edge TPU":
                    truth[row.op] += row.count
            version, source = parse_summary(text).get("compiler_version"), "log"
        else:
            continue
        cases.append({"id": str(model.relative_to(folder)), "model": model, "compiler": version, "truth": truth,
                      "truth_from": source})
    return cases


def _read_graph(path: Path):
    try:
        from tfedge.analysis.graph import read_graph
    except ImportError:  # a checkout from before the regroup (tfedge/graph.py), measured for "before"
        from tfedge.graph import read_graph
    return read_graph(path)


def _custom_codes(path: Path) -> set:
    return {op.name for op in _read_graph(path).ops if op.is_custom}


def _predict(path: Path, compiler: str | None) -> dict:
    from tfedge.edgetpu.check import check

    major = (compiler or "").split(".", 1)[0]
    version = int(major) if major in ("15", "16") else 16
    if "compiler_version" in inspect.signature(check).parameters:  # older checkouts predict one compiler only
        return check(path, compiler_version=version)
    return check(path)


def measure(folder: Path) -> dict:
    cases = _cases_from_expected(folder) if (folder / "expected.json").is_file() else _cases_from_files(folder)
    rows = []
    for case in cases:
        report = _predict(case["model"], case["compiler"])
        predicted, truth = _cpu_ops(report, _custom_codes(case["model"])), case["truth"]
        wrong = sum(abs(predicted[name] - truth[name]) for name in set(predicted) | set(truth))
        rows.append({"id": case["id"], "compiler": case["compiler"], "truth_from": case["truth_from"],
                     "ops": report["ops_total"], "cpu_truth": dict(truth), "cpu_predicted": dict(predicted),
                     "exact": predicted == truth, "ops_placed_right": report["ops_total"] - wrong,
                     "ops_uncertain": report.get("ops_uncertain", 0),
                     "refusal": (report.get("refusal") or {}).get("message")})
    ops = sum(r["ops"] for r in rows)
    right = sum(r["ops_placed_right"] for r in rows)
    return {"folder": str(folder), "models": len(rows), "models_exact": sum(r["exact"] for r in rows),
            "ops": ops, "ops_placed_right": right, "share_ops_placed_right": round(right / ops, 4) if ops else None,
            "ops_uncertain": sum(r["ops_uncertain"] for r in rows), "per_model": rows}


def _table(result: dict) -> str:
    lines = [f"{'model':<56} {'ops':>5} {'right':>5} {'unc.':>4}  exact  CPU ops (compiler | predicted)"]
    for r in result["per_model"]:
        lines.append(f"{r['id'][:56]:<56} {r['ops']:>5} {r['ops_placed_right']:>5} {r['ops_uncertain']:>4}  "
                     f"{'yes' if r['exact'] else 'NO':<5}  {r['cpu_truth']} | {r['cpu_predicted']}")
    share = result["share_ops_placed_right"]
    lines.append(f"models exact: {result['models_exact']} of {result['models']}; ops placed right: "
                 f"{result['ops_placed_right']} of {result['ops']} ({100 * share:.1f} %); uncertain ops: "
                 f"{result['ops_uncertain']}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        print(f"error: not a folder: {args.folder}", file=sys.stderr)
        return 2
    result = measure(args.folder)
    if not result["models"]:
        print(f"error: no model with a compiler log or compiled model in {args.folder}", file=sys.stderr)
        return 2
    if not args.json:
        print(_table(result))
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
