"""The device package (device/, distribution tfedge-device) as a wheel, for `tfedge deploy --install`.

Built here from the source tree with `pip wheel --no-deps --no-build-isolation` (no network: this
environment's setuptools), so the device needs no tfedge checkout and no internet beyond pip's own access to
the wheel's dependencies. A content hash (not the file's, whose zip timestamps differ between identical
builds) tells whether a device already has this build.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from ..errors import BadInput, EnvironmentMissing


def device_source_dir() -> Path | None:
    """The tfedge-device source tree (device/ of a tfedge checkout), when this install came from one."""
    import tfedge_device

    candidate = Path(tfedge_device.__file__).resolve().parents[1]
    return candidate if (candidate / "setup.cfg").is_file() and (candidate / "pyproject.toml").is_file() else None


def wheel_id(path: Path) -> str:
    """A content hash of the wheel's files (zip timestamps differ between identical builds)."""
    digest = hashlib.sha256()
    with zipfile.ZipFile(path) as archive:
        for member in sorted(archive.namelist()):
            digest.update(member.encode() + b"\0" + archive.read(member))
    return digest.hexdigest()


def device_wheel(given: Path | None, work: Path) -> dict:
    """--wheel PATH, or a wheel of the device package built from its source tree (`pip wheel`, no network:
    --no-deps and --no-build-isolation use this environment's setuptools)."""
    if given is not None:
        if not Path(given).is_file() or Path(given).suffix != ".whl":
            raise BadInput(f"--wheel is not a .whl file: {given}")
        return {"path": Path(given), "id": wheel_id(Path(given))}
    source = device_source_dir()
    if source is None:
        raise EnvironmentMissing("cannot build the device package: its source tree (device/) is not here",
                                 hint="give a wheel with --wheel PATH (pip wheel ./device in a tfedge checkout)")
    tree = work / "device"  # a copy: building in place would leave build/ in the checkout
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "dist"))
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(work / "wheels"), str(tree)], capture_output=True, text=True, check=False)
    wheels = sorted((work / "wheels").glob("tfedge_device-*.whl"))
    if done.returncode != 0 or not wheels:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise EnvironmentMissing(f"pip wheel ./device failed: {lines[-1] if lines else 'no wheel'}",
                                 hint="pip install setuptools wheel, or give --wheel PATH")
    return {"path": wheels[0], "id": wheel_id(wheels[0])}
