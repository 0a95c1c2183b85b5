"""`tfedge-run doctor [--edgetpu] [--json]`: will inference (and the Edge TPU) work here? Each fact with a fix.

Python and the userland's word size, the runtime and what it cannot load, numpy and pillow, the CPU's SIMD
flags and frequency governor; libedgetpu (path, std/max flavour), its delegate and a Coral device (USB or
PCIe). Exit 0 when inference is ready, 3 when something required is missing — the Edge TPU lines are
required only with --edgetpu. How each fact is read: tfedge_device.doctor.
"""

from __future__ import annotations

import json

LABELS = {"ok": "ok", "warn": "warn", "info": "info"}


def add_arguments(parser) -> None:
    parser.add_argument("--edgetpu", action="store_true",
                        help="Require the Edge TPU too (libedgetpu, its delegate, a Coral device).")
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only.")


def label(row: dict) -> str:
    if row["status"] == "fail":
        return "FAIL" if row["required"] else "no"
    return LABELS[row["status"]]


def print_report(report: dict) -> None:
    width = max(len(row["name"]) for row in report["checks"])
    for row in report["checks"]:
        print(f"{label(row):<4}  {row['name'].ljust(width)}  {row['detail']}")
        if row["fix"] and row["status"] != "ok":
            print(f"{'':<4}  {''.ljust(width)}  fix: {row['fix']}")
    target = "inference with the Edge TPU" if report["edgetpu"] else "CPU inference"
    print(f"ready for {target}: {'yes' if report['ready'] else 'no'}"
          + ("" if report["edgetpu"] else " (tfedge-run doctor --edgetpu to require the Edge TPU)"))


def run(args) -> int:
    from ..doctor import Probe, diagnose
    from ..errors import EnvironmentMissing

    report = diagnose(Probe(edgetpu=args.edgetpu))
    if args.as_json:
        print(json.dumps(report))
    else:
        print_report(report)
    if not report["ready"]:
        raise EnvironmentMissing(f"not ready: {', '.join(report['missing'])} failed",
                                 hint="see the fix printed for each" + (" in the JSON" if args.as_json else " FAIL line"))
    return 0
