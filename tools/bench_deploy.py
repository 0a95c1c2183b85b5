#!/usr/bin/env python3
"""Wall time of `tfedge deploy` to a real OpenSSH server on 127.0.0.1: first deploy, unchanged re-deploy,
and a re-deploy where only the labels changed. Medians over --rounds fresh device directories.

The "device" is this machine (the sshd the deploy tests start, tests/test_deploy.py): the bundle is the digits
int8 model; the device side runs this checkout's tfedge-run (`tfedge-run verify` after each deploy unless
--no-verify). Prints a table and JSON.

Usage: tools/bench_deploy.py [--rounds 3] [--no-verify]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
sys.path.insert(0, str(ROOT / "tests"))


def tfedge(*args) -> dict:
    result = subprocess.run([str(VENV / "bin" / "tfedge"), *map(str, args)], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        sys.exit(f"bench_deploy: tfedge {args[0]} failed ({result.returncode}): {result.stderr.strip()[-300:]}")
    return json.loads(result.stdout) if "--json" in args else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-verify", action="store_true")
    args = parser.parse_args()
    from _pytest.outcomes import Skipped
    from test_deploy import make_bundle, start_sshd, stop_sshd

    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as tmp:
        tmp = Path(tmp)
        model = tmp / "digits_int8.tflite"
        tfedge("convert", ROOT / "models/digits/digits.keras", "-o", model, "--quant", "int8", "--calib",
               ROOT / "models/digits/calib", "--labels", ROOT / "models/digits/labels.txt", "--json")
        bundles = {"same": make_bundle(model, tmp / "a"),
                   "relabelled": make_bundle(model, tmp / "b", [f"digit {i}" for i in range(10)])}
        try:
            (tmp / "sshd").mkdir()
            server, process = start_sshd(tmp / "sshd")
        except Skipped as reason:
            sys.exit(f"bench_deploy: no sshd here: {reason}")
        try:
            times = {"first": [], "unchanged": [], "changed labels": []}
            sent = {}
            for index in range(args.rounds):
                device_dir = tmp / f"device{index}"
                for case, bundle in (("first", "same"), ("unchanged", "same"), ("changed labels", "relabelled")):
                    started = time.perf_counter()
                    result = tfedge("deploy", bundles[bundle], server.target(device_dir), *server.options(),
                                    "--venv", VENV, *(["--no-verify"] if args.no_verify else []), "--json")
                    times[case].append(time.perf_counter() - started)
                    sent[case] = {k: result["transfer"][k] for k in ("sent_files", "sent_bytes")}
        finally:
            stop_sshd(process)
    rows = {case: {"median_s": round(statistics.median(values), 3), "min_s": round(min(values), 3), **sent[case]}
            for case, values in times.items()}
    print(f"tfedge deploy to sshd on 127.0.0.1, digits int8 bundle, {args.rounds} rounds, "
          f"{'no verify' if args.no_verify else 'with tfedge-run verify'}")
    print(f"{'deploy':16s} {'median s':>9s} {'min s':>7s} {'files sent':>10s} {'bytes sent':>10s}")
    for case, row in rows.items():
        print(f"{case:16s} {row['median_s']:9.2f} {row['min_s']:7.2f} {row['sent_files']:10d} {row['sent_bytes']:10d}")
    print(json.dumps({"rounds": args.rounds, "verify": not args.no_verify, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
