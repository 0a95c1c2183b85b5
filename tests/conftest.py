"""Shared fixtures: the real digits data and default model, tiny models built in-session, CLI runners.

Tests use real conversions and real interpreters. Fixtures that build models are session-scoped (seconds).
Add fixtures used by one test module in that module; only widely shared ones belong here.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits"
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def digits_dir() -> Path:
    """models/digits: digits.keras, labels.txt, test.npz, calib/<label>/*.png, images/digit_<n>.png."""
    return DIGITS


@pytest.fixture(scope="session")
def digits_test():
    """Held-out split: x [450, 8, 8, 1] float32 in [0, 1], y [450] int64."""
    with np.load(DIGITS / "test.npz") as data:
        return data["x"], data["y"]


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("session")


def convert_digits(directory: Path, mode: str) -> Path:
    """The default model converted in `mode` (calibrated/verified on its calib images), with its manifest."""
    from tfedge.convert.pipeline import ConvertRequest, convert

    out = directory / f"digits_{mode}.tflite"
    convert(ConvertRequest(source=str(DIGITS / "digits.keras"), output=out, mode=mode,
                           calib=str(DIGITS / "calib"), labels=DIGITS / "labels.txt", show_progress=False))
    return out


@pytest.fixture(scope="session")
def digits_int8(session_dir) -> Path:
    """The default model converted to full int8, with its manifest."""
    return convert_digits(session_dir, "int8")


@pytest.fixture(scope="session")
def digits_float(session_dir) -> Path:
    """The default model converted to float32, with its manifest."""
    return convert_digits(session_dir, "float32")


class CliResult:
    def __init__(self, completed: subprocess.CompletedProcess):
        self.returncode = completed.returncode
        self.stdout = completed.stdout
        self.stderr = completed.stderr

    def __repr__(self):
        return f"<exit {self.returncode}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-2000:]}>"


def run_command(program: str, *args, cwd=None, env=None, timeout=600) -> CliResult:
    """Run an installed console script (tfedge, tfedge-run) as a user would, in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    completed = subprocess.run([str(VENV_BIN / program), *map(str, args)], check=False, capture_output=True, text=True,
                               cwd=cwd, env=full_env, timeout=timeout)
    return CliResult(completed)


@pytest.fixture
def tfedge():
    """tfedge("convert", ...) -> CliResult (exit code, stdout, stderr)."""
    return lambda *args, **kw: run_command("tfedge", *args, **kw)


@pytest.fixture
def tfedge_run():
    return lambda *args, **kw: run_command("tfedge-run", *args, **kw)


def without_module(directory: Path, name: str) -> dict:
    """env for run_command in which `import NAME` fails as for a missing package, whether or not it is installed
    here: a package of that name first on PYTHONPATH whose import raises ModuleNotFoundError."""
    (directory / name).mkdir()
    (directory / name / "__init__.py").write_text(
        f"raise ModuleNotFoundError(\"No module named '{name}'\", name={name!r})\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(directory), os.environ.get("PYTHONPATH")]))}


# What native libraries print on their own: absl's preamble and log lines (TensorFlow, LiteRT), OpenCV's.
NATIVE_NOISE = re.compile(r"^(WARNING: All log messages before absl|[IWEF]\d{4} \d\d:\d\d:\d\d|\[ ?(WARN|ERROR|INFO):)")


def assert_clean_error(result: CliResult, exit_code: int, *words: str) -> None:
    """A user error: the documented exit code, one line naming the problem, no traceback."""
    assert result.returncode == exit_code, result
    assert "Traceback" not in result.stderr, result
    message = result.stderr.strip().splitlines()
    assert message, result
    assert len([line for line in message if "error" in line]) == 1, result
    noise = [line for line in message if NATIVE_NOISE.match(line)]
    assert not noise, result  # no native library's log lines around the error (TensorFlow/absl, OpenCV)
    for word in words:
        assert word.lower() in result.stderr.lower(), (word, result)


# Shared fixtures: the device-only venv (pip install ./device, nothing of the host, built once per session);
# a tiny keras-hub BERT and its dynamic-range conversion for the text tests.
from device_venv import device_only_venv  # noqa: F401
from text_fixtures import minilm_dynamic, tiny_bert, tiny_classifier, tiny_dynamic  # noqa: F401
