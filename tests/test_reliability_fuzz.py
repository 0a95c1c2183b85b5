"""Fuzzed model files through `tfedge-run info` and `classify`: 0 crashes, every case a clean error or a result.

Bounded in count and time (150 mutants or 90 s, whichever comes first; each mutant runs both commands);
the counts are printed (`pytest -s` shows them). `tools/fuzz_models.py --count 1000` is the long run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fuzz_models.py"
MUTANTS, SECONDS = 150, 90.0


@pytest.fixture(scope="module")
def fuzz_models():
    spec = importlib.util.spec_from_file_location("fuzz_models", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzzed_models_never_crash_tfedge_run(fuzz_models, digits_int8, digits_float, digits_dir, tmp_path):
    report = fuzz_models.fuzz([digits_int8, digits_float],
                              digits_dir / "images" / "digit_3.png", MUTANTS, seed=11, work=tmp_path,
                              time_limit=SECONDS)
    print(f"\nfuzz: {report['mutants']} mutants tried, {report['runs']} tfedge-run runs, "
          f"{report['crashes']} crashes in {report['seconds']} s")
    print(json.dumps(report["by_kind"]))
    assert report["crashes"] == 0, report["crash_cases"]
    assert report["mutants"] >= 40, report  # the time bound must still leave a meaningful sample
    outcomes = {outcome for counts in report["by_kind"].values() for outcome in counts}
    assert outcomes == {"valid", "clean-error"}  # both kinds seen: the mutants are neither all fatal nor all benign


def test_fuzzed_models_as_separate_processes(fuzz_models, digits_float, digits_dir, tmp_path):
    """A few cases as real `tfedge-run` processes, exactly as a user runs them."""
    report = fuzz_models.fuzz([digits_float], digits_dir / "images" / "digit_3.png", 6, seed=5, work=tmp_path,
                              subprocess_each=True)
    print(f"\nfuzz (one process per run): {report['mutants']} mutants, {report['crashes']} crashes")
    assert report["crashes"] == 0, report["crash_cases"]


@pytest.mark.parametrize("code,stderr,expected", [
    (0, "", "valid"),
    (2, "tfedge-run: error: not a TFLite model", "clean-error"),
    (3, "tfedge-run: error: no runtime", "clean-error"),
    (1, "tfedge-run: internal error: KeyError", "crash"),
    (-11, "", "crash"),
    (2, "Traceback (most recent call last):\ntfedge-run: error: x", "crash"),
    (None, "harness died", "crash"),
])
def test_verdicts(fuzz_models, code, stderr, expected):
    assert fuzz_models.verdict(code, stderr) == expected
