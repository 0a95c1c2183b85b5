"""The device package never needs TensorFlow: no module of it imports it, it runs with TensorFlow blocked, and it
installs and runs alone in a fresh virtual environment (pip install ./device, nothing else)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT
from device_venv import DEVICE, fresh_venv

# Host-side packages the device must never import (TensorFlow and friends, and the host distribution itself).
FORBIDDEN = ("tensorflow", "tf_keras", "keras", "tensorflow_model_optimization", "keras_hub", "tfedge")

BLOCKER = """
import importlib.abc, json, sys
FORBIDDEN = {forbidden!r}

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            raise ImportError(f"{{name}} is blocked: the device package must not import it")
        return None

sys.meta_path.insert(0, Blocker())
for name in FORBIDDEN:
    sys.modules[name] = None  # `import tensorflow` raises even if something cached a finder
from tfedge_device.cli import main
codes = [main(args) for args in json.loads(sys.argv[1])]
loaded = sorted(name for name in sys.modules if name.split(".")[0] in FORBIDDEN and sys.modules[name] is not None)
print(json.dumps({{"codes": codes, "loaded": loaded}}), file=sys.stderr)
"""


def imported_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def test_no_device_module_imports_tensorflow_or_the_host_package():
    modules = sorted((DEVICE / "tfedge_device").rglob("*.py"))
    assert len(modules) > 10
    offenders = {str(p.relative_to(DEVICE)): sorted(imported_names(p) & set(FORBIDDEN)) for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_device_cli_runs_with_tensorflow_blocked(digits_int8, digits_dir):
    commands = [
        ["classify", str(digits_int8), "-i", str(digits_dir / "images"), "--json"],
        ["info", str(digits_int8), "--json"],
        ["bench", str(digits_int8), "--runs", "3", "--json"],
    ]
    result = subprocess.run(
        [sys.executable, "-c", BLOCKER.format(forbidden=FORBIDDEN), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stderr.strip().splitlines()[-1])
    assert outcome == {"codes": [0, 0, 0], "loaded": []}, result.stderr
    classified = json.loads(result.stdout.splitlines()[0])
    assert [r["classes"][0]["id"] for r in classified["results"]] == list(range(10))


@pytest.mark.slow
def test_device_alone_installs_in_a_fresh_venv_and_matches_the_host(
    device_only_venv, digits_int8, digits_dir, tfedge_run
):
    """pip install ./device into an empty venv (the session's device-only venv; pip's wheel cache is reused),
    then tfedge-run classify gives the host's classes and scores exactly."""
    args = ["classify", digits_int8, "-i", digits_dir / "images", "-k", "10", "-t", "0", "--json"]
    alone = device_only_venv.run("tfedge-run", *args)
    assert alone.returncode == 0, alone.stderr
    host = tfedge_run(*args)
    assert [r["classes"] for r in json.loads(alone.stdout)["results"]] == [
        r["classes"] for r in json.loads(host.stdout)["results"]
    ]
    assert [r["classes"][0]["id"] for r in json.loads(alone.stdout)["results"]] == list(range(10))


@pytest.mark.slow
def test_tflite_runtime_fallback_says_what_it_cannot_do(digits_int8, digits_dir, tmp_path, tfedge_run):
    """Only tflite-runtime 2.14 (the [tflite-runtime] extra's pins, no LiteRT): picked automatically, named by
    info with its limitations, runs the int8 model like LiteRT, and refuses a TF 2.21 dynamic-range model
    with exit 3 naming the runtime and the fix."""
    from tfedge.convert.pipeline import ConvertRequest, convert

    dynamic = tmp_path / "digits_dynamic.tflite"
    request = ConvertRequest(
        source=str(digits_dir / "digits.keras"),
        output=dynamic,
        mode="dynamic",
        calib=str(digits_dir / "calib"),
        show_progress=False,
        verify_count=0,
    )
    convert(request)
    venv_run = fresh_venv(
        tmp_path, "tflite-runtime==2.14.*", "numpy<2", "pillow>=9", "tflite>=2.10", device_deps=False
    ).run

    def run(*args):
        return venv_run("tfedge-run", *args)

    info = json.loads(run("info", digits_int8, "--json").stdout)["runtime"]
    assert info["runtime"] == "tflite-runtime" and info["version"].startswith("2.14")
    assert "FULLY_CONNECTED v12" in info["limitations"] and "numpy<2" in info["limitations"]
    args = ["classify", digits_int8, "-i", digits_dir / "images", "-k", "3", "-t", "0", "--json"]
    old, new = json.loads(run(*args).stdout), json.loads(tfedge_run(*args).stdout)
    assert old["runtime"].startswith("tflite-runtime 2.14")
    for a, b in zip(old["results"], new["results"]):
        assert a["classes"][0]["id"] == b["classes"][0]["id"]
        assert abs(a["classes"][0]["score"] - b["classes"][0]["score"]) <= 1 / 256 + 1e-6  # one int8 step
    refused = run("classify", dynamic, "-i", digits_dir / "images" / "digit_1.png")
    assert refused.returncode == 3 and "Traceback" not in refused.stderr, refused.stderr
    assert "tflite-runtime 2.14" in refused.stderr and "FULLY_CONNECTED" in refused.stderr
    assert "pip install ai-edge-litert" in refused.stderr
