#!/usr/bin/env python
"""What the model guard costs: structural check, crash probe (first use) and cache hit, per model.

Medians of --runs repetitions; side by side with the plain in-process load (Model with the probe off), so
the probe's cost reads as a ratio. Table on stdout, then the JSON on the last line.

    .venv/bin/python tools/bench_guard.py                      # the digits model, int8 and float32
    .venv/bin/python tools/bench_guard.py a.tflite b.tflite --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _median_s(function, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure(path: Path, runs: int) -> dict:
    from tfedge_device import guard
    from tfedge_device.model import Model
    from tfedge_device.runtime import get_runtime

    data = path.read_bytes()
    runtime = get_runtime()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TFEDGE_CACHE_DIR"] = cache
        os.environ["TFEDGE_PROBE"] = "always"
        probe = _median_s(lambda: guard.probe(data, runtime, path.name), runs)
        os.environ["TFEDGE_PROBE"] = "auto"
        guard.probe(data, runtime, path.name)
        cached = _median_s(lambda: guard.probe(data, runtime, path.name), runs)
        os.environ["TFEDGE_PROBE"] = "0"
        load = _median_s(lambda: Model(path), runs)
    structure = _median_s(lambda: guard._walk(data, path.name), runs)  # the walk itself, not its cache
    return {"model": path.name, "size_mb": round(len(data) / 1e6, 3), "structure_ms": round(structure * 1e3, 2),
            "probe_s": round(probe, 3), "cache_hit_ms": round(cached * 1e3, 2), "load_s": round(load, 4),
            "probe_vs_load": round(probe / load, 1) if load else None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.models:
            models = args.models
        else:
            from fuzz_models import default_models

            models = default_models(Path(tmp))
        rows = [measure(path, args.runs) for path in models]
    print(f"{'model':<28} {'MB':>8} {'structure ms':>13} {'probe s':>8} {'cache hit ms':>13} {'load s':>8} "
          f"{'probe/load':>11}")
    for row in rows:
        print(f"{row['model']:<28} {row['size_mb']:>8} {row['structure_ms']:>13} {row['probe_s']:>8} "
              f"{row['cache_hit_ms']:>13} {row['load_s']:>8} {row['probe_vs_load']:>11}")
    print(json.dumps({"runs": args.runs, "python": sys.version.split()[0], "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
