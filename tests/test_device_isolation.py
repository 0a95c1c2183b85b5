"""The device package never needs TensorFlow: no module of it imports it, it runs with TensorFlow blocked, and it
installs and runs alone in a fresh virtual environment (pip install ./device, nothing else)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import ROOT

DEVICE = ROOT / "device"
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
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
            names.add(str(node.args[0].value).split(".")[0])
    return names


def test_no_device_module_imports_tensorflow_or_the_host_package():
    modules = sorted((DEVICE / "tfedge_device").rglob("*.py"))
    assert len(modules) > 10
    offenders = {str(p.relative_to(DEVICE)): sorted(imported_names(p) & set(FORBIDDEN)) for p in modules}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_device_cli_runs_with_tensorflow_blocked(digits_int8, digits_dir):
    commands = [["classify", str(digits_int8), "-i", str(digits_dir / "images"), "--json"],
                ["info", str(digits_int8), "--json"],
                ["bench", str(digits_int8), "--runs", "3", "--json"]]
    result = subprocess.run([sys.executable, "-c", BLOCKER.format(forbidden=FORBIDDEN), json.dumps(commands)],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stderr.strip().splitlines()[-1])
    assert outcome == {"codes": [0, 0, 0], "loaded": []}, result.stderr
    classified = json.loads(result.stdout.splitlines()[0])
    assert [r["classes"][0]["id"] for r in classified["results"]] == list(range(10))


@pytest.mark.slow
def test_device_alone_installs_in_a_fresh_venv_and_matches_the_host(digits_int8, digits_dir, tmp_path, tfedge_run):
    """pip install ./device into an empty venv (pip's wheel cache is reused), then tfedge-run classify."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    install = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", str(DEVICE)],
                             capture_output=True, text=True, timeout=900, env=env)
    assert install.returncode == 0, install.stderr[-3000:]
    probe = subprocess.run([python, "-c", "import importlib.util as u; print([n for n in ('tensorflow', 'keras', "
                            "'tfedge') if u.find_spec(n)])"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert probe.stdout.strip() == "[]", probe  # nothing of the host came along
    args = ["classify", str(digits_int8), "-i", str(digits_dir / "images"), "-k", "10", "-t", "0", "--json"]
    alone = subprocess.run([env_dir / "bin" / "tfedge-run", *args], capture_output=True, text=True, env=env,
                           timeout=300, cwd=tmp_path)
    assert alone.returncode == 0, alone.stderr
    host = tfedge_run(*args)
    assert [r["classes"] for r in json.loads(alone.stdout)["results"]] == \
        [r["classes"] for r in json.loads(host.stdout)["results"]]
