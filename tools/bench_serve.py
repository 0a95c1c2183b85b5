#!/usr/bin/env python3
"""`tfedge-run serve` under load: 32 concurrent clients, 2,000 single-image :predict requests (TF Serving's row
format) on the digits int8 model over loopback, with `--threads 1`, `--threads 2` (two interpreters, one
process) and `--workers 2` (two processes) in the same run.

The load comes from ApacheBench (`ab -k`, C, keep-alive; Debian's apache2-utils, installed by tools/setup), so
the client takes little of the 2 cores the server needs. Reported per server: throughput (requests/s), latency
p50/p99 (ab's, ms), failed and non-2xx counts; the ratio of throughputs; and the server's overhead per request:
the p50 of sequential requests from one keep-alive client (http.client) minus the p50 of a bare
Model.predict of the same input in this process (the inference path the server runs). Goals (issue 20):
0 errors, threads-2/threads-1 >= 1.6, overhead <= 1 ms.

Usage: tools/bench_serve.py [--model digits_int8.tflite] [--requests 2000] [--clients 32] [--json-only]
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# label -> tfedge-run serve flags
SERVERS = {"threads 1": ["--threads", "1"], "threads 2": ["--threads", "2"], "workers 2": ["--workers", "2"]}
GOALS = {"threads_ratio_min": 1.6, "overhead_ms_max": 1.0, "errors": 0}
sys.path.insert(0, str(ROOT / "tools"))
from bench_host import cpu_model


def start(model: Path, flags: list[str], tmp: Path) -> tuple[subprocess.Popen, int]:
    port_file = tmp / ("port" + "".join(flags).replace("-", ""))
    proc = subprocess.Popen([str(BIN / "tfedge-run"), "serve", str(model), *flags, "--port", "0",
                             "--port-file", str(port_file), "--queue", "256"], stderr=subprocess.DEVNULL)
    while not port_file.exists():
        if proc.poll() is not None:
            raise SystemExit("tfedge-run serve did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text())


def ab(port: int, name: str, body: Path, requests: int, clients: int) -> dict:
    out = subprocess.run(["ab", "-q", "-k", "-n", str(requests), "-c", str(clients), "-p", str(body), "-T",
                          "application/json", f"http://127.0.0.1:{port}/v1/models/{name}:predict"],
                         capture_output=True, text=True, check=True).stdout

    def number(pattern, default=0.0):
        match = re.search(pattern, out)
        return float(match.group(1)) if match else default

    return {"requests": requests, "clients": clients, "rps": number(r"Requests per second:\s+([\d.]+)"),
            "p50_ms": number(r"\n\s+50%\s+(\d+)"), "p99_ms": number(r"\n\s+99%\s+(\d+)"),
            "failed": int(number(r"Failed requests:\s+(\d+)")), "non_2xx": int(number(r"Non-2xx responses:\s+(\d+)"))}


def sequential_ms(port: int, name: str, body: bytes, runs: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        connection.request("POST", f"/v1/models/{name}:predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        times.append((time.perf_counter() - started) * 1e3)
        assert response.status == 200
    connection.close()
    return statistics.median(times[20:])


def bare_ms(model: Path, x, runs: int) -> float:
    from tfedge_device.model import Model

    loaded = Model(model, threads=1)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        loaded.predict(x)
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times[20:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    if shutil.which("ab") is None:
        print("bench_serve: ApacheBench (ab) is missing: apt-get install apache2-utils (tools/setup does)",
              file=sys.stderr)
        return 3
    import numpy as np

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    if args.model is None:
        from bench_device import convert_digits

        args.model = convert_digits(tmp)
    name = args.model.name.split(".")[0]
    with np.load(ROOT / "models" / "digits" / "test.npz") as data:
        x = data["x"][:1]
    body = json.dumps({"instances": x.tolist()}).encode()
    (tmp / "body.json").write_bytes(body)
    rows = {}
    for label, flags in SERVERS.items():
        proc, port = start(args.model, flags, tmp)
        try:
            ab(port, name, tmp / "body.json", 200, args.clients)  # warm-up: interpreters built, caches warm
            rows[label] = ab(port, name, tmp / "body.json", args.requests, args.clients)
            if label == "threads 1":
                rows[label]["sequential_p50_ms"] = round(sequential_ms(port, name, body, 500), 3)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    bare = bare_ms(args.model, x, 2000)
    result = {
        "host": cpu_model(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": str(args.model), "servers": rows,
        "threads_ratio": round(rows["threads 2"]["rps"] / rows["threads 1"]["rps"], 2),
        "workers_ratio": round(rows["workers 2"]["rps"] / rows["threads 1"]["rps"], 2),
        "bare_predict_p50_ms": round(bare, 4),
        "overhead_p50_ms": round(rows["threads 1"]["sequential_p50_ms"] - bare, 3),
        "goals": GOALS,
    }
    result["errors"] = sum(row["failed"] + row["non_2xx"] for row in rows.values())
    if not args.json_only:
        print(f"{'server':12s} {'req/s':>8s} {'p50 ms':>7s} {'p99 ms':>7s} {'failed':>6s} {'non-2xx':>7s}")
        for label, row in rows.items():
            print(f"{label:12s} {row['rps']:8.0f} {row['p50_ms']:7.0f} {row['p99_ms']:7.0f} "
                  f"{row['failed']:6d} {row['non_2xx']:7d}")
        print(f"threads 2 / threads 1: {result['threads_ratio']:.2f}x; workers 2 / threads 1: "
              f"{result['workers_ratio']:.2f}x (goal >= {GOALS['threads_ratio_min']})")
        print(f"overhead per request: {rows['threads 1']['sequential_p50_ms']:.3f} ms sequential p50 - {bare:.4f} ms bare "
              f"predict = {result['overhead_p50_ms']:.3f} ms (goal <= {GOALS['overhead_ms_max']})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
