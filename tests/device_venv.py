"""Virtual environments holding only the device package (`pip install ./device`, nothing of the host): the
device end of the isolation and deploy tests, so a host-only import on the device fails a test.

`device_only_venv` is built once per session (pip's wheel cache makes it ~15-40 s) and shared by
test_device_isolation.py and test_deploy.py; `fresh_venv` builds one with other requirements (tflite-runtime).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

DEVICE = Path(__file__).resolve().parents[1] / "device"


@dataclass
class DeviceVenv:
    path: Path  # the venv: path / "bin" / "tfedge-run"
    run: Callable[..., subprocess.CompletedProcess]  # run(program, *args) -> CompletedProcess


def fresh_venv(root: Path, *requirements: str, device_deps: bool = True) -> DeviceVenv:
    """A new venv at root/venv with `requirements` and a copy of device/ (pip builds in the tree it is given).
    Its run(program, *args) runs the venv's program in root, without the host's Python variables."""
    venv.create(root / "venv", with_pip=True)
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "TFEDGE_RUNTIME"))
    }

    def run(program: str, *args, timeout: float = 300):
        command = [root / "venv" / "bin" / program, *map(str, args)]
        return subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=root, timeout=timeout, check=False
        )

    source = root / "device"
    shutil.copytree(
        DEVICE / "tfedge_device", source / "tfedge_device", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(DEVICE / name, source / name)
    pip = ["-m", "pip", "install", "--disable-pip-version-check", "-q"]
    steps = [[*pip, *requirements]] if requirements else []
    steps.append([*pip, *([] if device_deps else ["--no-deps"]), source])
    for step in steps:
        done = run("python", *step, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
    return DeviceVenv(root / "venv", run)


@pytest.fixture(scope="session")
def device_only_venv(tmp_path_factory) -> DeviceVenv:
    """`pip install ./device` (LiteRT, numpy, pillow) in a fresh venv, once per session; nothing of the host."""
    built = fresh_venv(tmp_path_factory.mktemp("device_only"))
    probe = built.run(
        "python", "-c",
        "import importlib.util as u; print([n for n in ('tensorflow', 'keras', 'tfedge') if u.find_spec(n)])",
    )
    assert probe.stdout.strip() == "[]", probe  # nothing of the host came along
    return built
