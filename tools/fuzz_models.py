#!/usr/bin/env python
"""Fuzz `tfedge-run info` and `tfedge-run classify` with damaged .tflite files: 0 crashes expected.

Mutations of valid models (bit flips, truncation, zeroed regions, field splices, 32-bit overwrites),
aimed mostly at the flatbuffer's structure (tables, vectors, offsets) rather than at weight bytes, where a
change only alters results. Each mutant runs through the real device CLI (`tfedge_device.cli.main`) in a
harness process; if the harness dies (a signal: the native runtime crashed), that case is a crash and a
new harness carries on. `--subprocess` runs every case as its own `tfedge-run` process instead (slower).

A case passes when it ends in exit 0 (a valid result) or a clean error: exit 2 or 3, one `error:` line,
no traceback. Anything else (a signal, exit 1, a traceback) is a crash and is kept in --keep DIR.

    .venv/bin/python tools/fuzz_models.py --count 1000            # table, then JSON on the last line
    .venv/bin/python tools/fuzz_models.py --count 200 --model m.tflite --image img.png --json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"
CLEAN_EXITS = (0, 2, 3)


# -- mutations ---------------------------------------------------------------------------------------
def structural_positions(data: bytes) -> list[int]:
    """Byte positions outside constant-buffer data (weights): the flatbuffer's tables, vectors, strings."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    in_buffers = bytearray(len(data))
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            start = buffer._tab.Vector(buffer._tab.Offset(4))
            in_buffers[start:start + buffer.DataLength()] = b"\x01" * buffer.DataLength()
    return [p for p in range(8, len(data)) if not in_buffers[p]]


def _flip(data, rng, where):
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        out[rng.choice(where)] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data, rng, where):
    return data[:rng.randrange(8, len(data))]


def _zero(data, rng, where):
    out = bytearray(data)
    start, length = rng.choice(where), rng.randint(1, 32)
    out[start:start + length] = bytes(len(out[start:start + length]))
    return bytes(out)


def _splice(data, rng, where):
    """Copy a field-sized run of bytes from one place of the file over another."""
    out = bytearray(data)
    target, source, length = rng.choice(where), rng.choice(where), rng.choice((4, 8, 12, 16, 32))
    out[target:target + length] = data[source:source + length]
    return bytes(out[:len(data)])


def _overwrite_int(data, rng, where):
    """A 32-bit field (offset, length, index, dimension) set to an extreme or random value."""
    out = bytearray(data)
    position = rng.choice(where) & ~3
    value = rng.choice((0, 1, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, len(data), rng.randrange(1 << 32)))
    out[position:position + 4] = value.to_bytes(4, "little")
    return bytes(out[:len(data)])


MUTATORS = {"flip": _flip, "truncate": _truncate, "zero": _zero, "splice": _splice, "int32": _overwrite_int}


def mutants(models: list[Path], count: int, seed: int = 0):
    """Yield (model name, mutation kind, bytes), `count` in all, spread over the models and mutators."""
    rng = random.Random(seed)
    originals = []
    for path in models:
        data = path.read_bytes()
        structural = structural_positions(data)
        everywhere = list(range(8, len(data)))
        originals.append((path.stem, data, structural, everywhere))
    kinds = list(MUTATORS)
    for i in range(count):
        name, data, structural, everywhere = originals[i % len(originals)]
        kind = kinds[(i // len(originals)) % len(kinds)]
        where = structural if rng.random() < 0.85 else everywhere  # mostly the structure, sometimes weights
        yield name, kind, MUTATORS[kind](data, rng, where)


# -- running the CLI ---------------------------------------------------------------------------------
def commands_for(model: Path, image: Path) -> dict:
    return {"info": ["info", str(model), "--json"], "classify": ["classify", str(model), "--input", str(image)]}


def verdict(exit_code: int | None, stderr: str) -> str:
    """valid | clean-error | crash."""
    if exit_code is None or exit_code < 0 or exit_code not in CLEAN_EXITS or "Traceback" in stderr:
        return "crash"
    if exit_code == 0:
        return "valid"
    errors = [line for line in stderr.splitlines() if "error" in line]
    return "clean-error" if len(errors) == 1 else "crash"


def _harness() -> int:
    """Child: one JSON case per stdin line -> one JSON result per stdout line (fd 1/2 captured per case)."""
    from tfedge_device.cli import main

    results = os.fdopen(os.dup(1), "w", buffering=1)
    for line in sys.stdin:
        argv = json.loads(line)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            saved = os.dup(1), os.dup(2)
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
            try:
                code = main(argv)
            finally:
                sys.stdout.flush(), sys.stderr.flush()
                os.dup2(saved[0], 1), os.dup2(saved[1], 2)
                os.close(saved[0]), os.close(saved[1])
            err.seek(0)
            stderr = err.read().decode("utf-8", "replace")
        results.write(json.dumps({"exit": code, "stderr": stderr[-2000:]}) + "\n")
    return 0


class Harness:
    """A long-lived harness process; restarted after it dies."""

    def __init__(self, env: dict):
        self.env = env
        self.process = None

    def run(self, argv: list[str]) -> tuple[int | None, str]:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen([sys.executable, __file__, "--harness"], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                            env=self.env)
        try:
            self.process.stdin.write(json.dumps(argv) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:  # the harness died on this case
            code = self.process.wait()
            stderr = self.process.stderr.read()
            self.process = None
            return code, f"harness died (exit {code}): {stderr[-500:]}"
        result = json.loads(line)
        return result["exit"], result["stderr"]

    def close(self):
        if self.process is not None and self.process.poll() is None:
            self.process.stdin.close()
            self.process.wait(timeout=30)


def run_subprocess(argv: list[str], env: dict) -> tuple[int | None, str]:
    tfedge_run = Path(sys.executable).parent / "tfedge-run"
    done = subprocess.run([str(tfedge_run), *argv], check=False, capture_output=True, text=True,
                          env=env, timeout=600)
    return done.returncode, done.stderr


def fuzz(models: list[Path], image: Path, count: int, seed: int = 0, work: Path | None = None,
         keep: Path | None = None, subprocess_each: bool = False, time_limit: float | None = None) -> dict:
    """Run `count` mutants through info and classify. Returns counts per kind/command/verdict and crashes."""
    work = Path(work or tempfile.mkdtemp(prefix="tfedge-fuzz-"))
    env = {**os.environ, "TFEDGE_CACHE_DIR": str(work / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TFEDGE_PROBE", None)
    harness = Harness(env)
    counts = collections.Counter()
    crashes, errors = [], collections.Counter()
    started = time.perf_counter()
    tried = 0
    try:
        for i, (name, kind, data) in enumerate(mutants(models, count, seed)):
            if time_limit is not None and time.perf_counter() - started > time_limit:
                break
            path = work / f"{name}_{i:05d}_{kind}.tflite"
            path.write_bytes(data)
            for command, argv in commands_for(path, image).items():
                code, stderr = run_subprocess(argv, env) if subprocess_each else harness.run(argv)
                outcome = verdict(code, stderr)
                counts[(kind, command, outcome)] += 1
                if outcome == "clean-error":
                    errors[_error_kind(stderr)] += 1
                if outcome == "crash":
                    crashes.append({"case": path.name, "command": command, "exit": code, "stderr": stderr[-500:]})
                    if keep:
                        keep.mkdir(parents=True, exist_ok=True)
                        shutil.copy(path, keep / path.name)
            path.unlink()
            tried += 1
    finally:
        harness.close()
    return {"mutants": tried, "runs": sum(counts.values()), "crashes": len(crashes),
            "seconds": round(time.perf_counter() - started, 1), "seed": seed,
            "by_kind": _table(counts), "errors": dict(errors.most_common(12)), "crash_cases": crashes[:20]}


def _error_kind(stderr: str) -> str:
    """The message of an error line with its file names dropped, for a tally of what was caught where."""
    line = next(line for line in stderr.splitlines() if "error" in line)
    text = re.sub(r"\S+\.tflite", "MODEL", line.split("error:", 1)[-1].split("(hint:")[0]).strip()
    return text[:72]


def _table(counts) -> dict:
    table = collections.defaultdict(lambda: collections.Counter())
    for (kind, command, outcome), n in counts.items():
        table[f"{kind}/{command}"][outcome] += n
    return {key: dict(value) for key, value in sorted(table.items())}


def print_table(report: dict) -> None:
    print(f"{'mutation/command':<20} {'valid':>7} {'clean-error':>12} {'crash':>7}")
    for key, value in report["by_kind"].items():
        print(f"{key:<20} {value.get('valid', 0):>7} {value.get('clean-error', 0):>12} {value.get('crash', 0):>7}")
    print(f"{report['mutants']} mutants, {report['runs']} runs, {report['crashes']} crashes in {report['seconds']} s")
    print("clean errors by message:")
    for message, n in report["errors"].items():
        print(f"  {n:>5}  {message}")


def default_models(work: Path) -> list[Path]:
    """The digits model converted to int8 and float32 (needs the host package: `tfedge convert`)."""
    tfedge = Path(sys.executable).parent / "tfedge"
    models = []
    for mode in ("int8", "float32"):
        out = work / f"digits_{mode}.tflite"
        subprocess.run([str(tfedge), "convert", str(DIGITS / "digits.keras"), "-o", str(out), "--quant", mode,
                        "--calib", str(DIGITS / "calib"), "-q", "--verify-count", "0"], check=True,
                       capture_output=True)
        models.append(out)
    return models


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--harness"]:
        return _harness()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="Mutants (each runs info and classify).")
    parser.add_argument("--model", action="append", type=Path, help="Valid .tflite to mutate (repeatable); "
                        "default: the digits model converted to int8 and float32.")
    parser.add_argument("--image", type=Path, default=DIGITS / "images" / "digit_3.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="Copy crashing mutants here.")
    parser.add_argument("--subprocess", action="store_true", help="One tfedge-run process per case.")
    parser.add_argument("--json", action="store_true", help="Only the JSON report on stdout.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tfedge-fuzz-") as tmp:
        models = args.model or default_models(Path(tmp))
        report = fuzz(models, args.image, args.count, args.seed, Path(tmp), args.keep, args.subprocess)
    if not args.json:
        print_table(report)
    print(json.dumps(report))
    return 1 if report["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
