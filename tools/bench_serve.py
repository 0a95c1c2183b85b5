#!/usr/bin/env python3
"""`tfedge-run serve` under load: 32 concurrent clients, 2,000 single-image :predict requests (TF Serving's row
format) on the digits int8 model over loopback, with `--threads 1`, `--threads 2` (two interpreters, one
process) and `--workers 2` (two processes) in the same run.

The load comes from ApacheBench (`ab -k -l`: C, keep-alive, answers of varying length accepted — :classify's
carry timings; Debian's apache2-utils, installed by tools/setup), so the client takes little of the 2 cores the
server needs. Reported per server: throughput (requests/s), latency p50/p99 (ab's, ms), failed and non-2xx counts; the ratio of throughputs; and the server's overhead per request:
the p50 of sequential requests from one keep-alive client (http.client) minus the p50 of a bare
Model.predict of the same input in this process (the inference path the server runs). Goals (issue 20):
0 errors, threads-2/threads-1 >= 1.6, overhead <= 1 ms.

With `--classify` the requests are `:classify` instead, each a real photo (scikit-image's astronaut, JPEG) as the
raw body: decoding, resizing and the invoke per request, the way an image model is served. Overhead is then
the sequential p50 minus a bare Classifier.classify of the same JPEG bytes.

Usage: tools/bench_serve.py [--model digits_int8.tflite] [--classify] [--requests 2000] [--clients 32] [--json-only]
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


def ab(port: int, name: str, body: Path, requests: int, clients: int, verb: str, kind: str) -> dict:
    out = subprocess.run(["ab", "-q", "-k", "-l", "-n", str(requests), "-c", str(clients), "-p", str(body), "-T",
                          kind, f"http://127.0.0.1:{port}/v1/models/{name}:{verb}"],
                         capture_output=True, text=True, check=True).stdout

    def number(pattern, default=0.0):
        match = re.search(pattern, out)
        return float(match.group(1)) if match else default

    return {"requests": requests, "clients": clients, "rps": number(r"Requests per second:\s+([\d.]+)"),
            "p50_ms": number(r"\n\s+50%\s+(\d+)"), "p99_ms": number(r"\n\s+99%\s+(\d+)"),
            "failed": int(number(r"Failed requests:\s+(\d+)")), "non_2xx": int(number(r"Non-2xx responses:\s+(\d+)"))}


def sequential_ms(port: int, name: str, body: bytes, runs: int, verb: str, kind: str) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        connection.request("POST", f"/v1/models/{name}:{verb}", body, {"Content-Type": kind})
        response = connection.getresponse()
        response.read()
        times.append((time.perf_counter() - started) * 1e3)
        assert response.status == 200
    connection.close()
    return statistics.median(times[20:])


def bare_ms(model: Path, request, runs: int, classify: bool) -> float:
    """p50 of what the server runs per request, in this process: Model.predict(x), or Classifier.classify(jpeg)."""
    if classify:
        from tfedge_device.classify import Classifier

        loaded = Classifier(model, threads=1)
        call = lambda: loaded.classify(request, 5, 0.0)
    else:
        from tfedge_device.model import Model

        loaded = Model(model, threads=1)
        call = lambda: loaded.predict(request)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times[20:])


def photo_jpeg() -> bytes:
    import io

    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--json-only", action="store_true")
    parser.add_argument("--classify", action="store_true", help=":classify a JPEG photo instead of :predict")
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
    if args.classify:
        verb, kind, body = "classify", "image/jpeg", photo_jpeg()
        request = body
    else:
        with np.load(ROOT / "models" / "digits" / "test.npz") as data:
            request = data["x"][:1]
        verb, kind, body = "predict", "application/json", json.dumps({"instances": request.tolist()}).encode()
    (tmp / "body").write_bytes(body)
    rows = {}
    for label, flags in SERVERS.items():
        proc, port = start(args.model, flags, tmp)
        try:
            ab(port, name, tmp / "body", 200, args.clients, verb, kind)  # warm-up: interpreters built, caches warm
            rows[label] = ab(port, name, tmp / "body", args.requests, args.clients, verb, kind)
            if label == "threads 1":
                rows[label]["sequential_p50_ms"] = round(sequential_ms(port, name, body, 500, verb, kind), 3)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    bare = bare_ms(args.model, request, 2000 if not args.classify else 300, args.classify)
    result = {
        "host": cpu_model(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "model": str(args.model), "verb": verb, "servers": rows,
        "threads_ratio": round(rows["threads 2"]["rps"] / rows["threads 1"]["rps"], 2),
        "workers_ratio": round(rows["workers 2"]["rps"] / rows["threads 1"]["rps"], 2),
        f"bare_{verb}_p50_ms": round(bare, 4),
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
        print(f"overhead per request: {rows['threads 1']['sequential_p50_ms']:.3f} ms sequential p50 - {bare:.4f} ms "
              f"bare {verb} = {result['overhead_p50_ms']:.3f} ms (goal <= {GOALS['overhead_ms_max']})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
