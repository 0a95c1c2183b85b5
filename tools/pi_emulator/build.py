"""Build (once, cached) a Raspberry Pi 4 emulator from package registries alone, and run Python in it.

Parts, all cached under CACHE (default REPO/.cache/pi-emulator, git-ignored), each behind a stamp so a
rebuild happens only when its inputs change:
  apt/      a private apt state (Debian bookworm, amd64 + arm64 indexes): the system's apt configuration and
            dpkg architectures are left untouched, and no root is needed.
  qemu/     Debian's qemu-user-static (amd64), unpacked with dpkg -x: qemu-aarch64-static.
  sysroot/  Debian bookworm arm64 python3.11 (3.11.2, as on Raspberry Pi OS bookworm) and the libraries it
            needs, unpacked with dpkg -x; sysroot/proc/cpuinfo is a Raspberry Pi 4's.
  site/     aarch64 wheels of the device package's requirements (ai-edge-litert, numpy, pillow, ...), of its
            SITE_EXTRAS (opencv-python-headless, tokenizers) and their dependencies from PyPI, unpacked; pinned
            to the versions in the project's .venv, so emulated and host results compare like for like.
The device package is not copied: PYTHONPATH points at REPO/device, so the emulator runs the checkout's code.

Why sysroot/proc/cpuinfo: LiteRT's CPU-feature detection parses /proc/cpuinfo, which under qemu-user shows
the x86 host, and it segfaults. qemu-user's -L prefix redirects every absolute path that exists under the
sysroot, /proc/cpuinfo included (QEMU 7.2, bookworm), so an ARM cpuinfo there fixes it without `unshare -m`
and a bind mount (which need root).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CACHE = Path(os.environ.get("TFEDGE_PI_EMULATOR_CACHE", REPO / ".cache" / "pi-emulator"))
CPUINFO = HERE / "cpuinfo-raspberry-pi-4"
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")  # bookworm's deb822 sources (the machine's mirror)
ROOT_PACKAGES = ("python3.11:arm64", "libstdc++6:arm64")  # libstdc++/libgcc_s: manylinux wheels use them
SKIP_PACKAGES = ("dpkg", "tar", "install-info")  # pulled in by Pre-Depends, not needed to run Python
DEVICE_SETUP = REPO / "device" / "setup.cfg"  # its install_requires (and SITE_EXTRAS) are what the site gets
SITE_EXTRAS = ("stream", "text")  # OpenCV for `tfedge-run stream` (a Pi with a camera), tokenizers for text models
PYTHON_VERSION = "3.11"
# Every manylinux tag bookworm's glibc 2.36 accepts, newest first, as pip on the Pi would: pip download takes
# each --platform literally (manylinux_2_27 alone misses wheels tagged only manylinux_2_28, e.g. OpenCV 5's).
PLATFORM_TAGS = tuple(f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1))
QEMU_CPU = "cortex-a72"  # the Raspberry Pi 4's core (BCM2711)


class CannotBuild(Exception):
    """This machine cannot build or run the emulator (the reason is the message)."""


def log(message: str) -> None:
    print(f"pi-emulator: {message}", file=sys.stderr, flush=True)


def check_machine() -> None:
    """Raise CannotBuild when the machine lacks what the build needs."""
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        raise CannotBuild(f"needs an x86-64 Linux host (this is {platform.system()} {platform.machine()})")
    for tool in ("apt-get", "apt-cache", "dpkg"):
        if not shutil.which(tool):
            raise CannotBuild(f"needs Debian's {tool} (not found)")
    if not SOURCES.exists():
        raise CannotBuild(f"needs Debian bookworm apt sources at {SOURCES}")


def run(command: list, **kw) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, **kw, check=False
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise CannotBuild(f"`{' '.join(map(str, command[:3]))} ...` failed: {' / '.join(tail)}")
    return result


def apt_options(state: Path) -> list[str]:
    """apt-get/apt-cache options for a private state in `state`: bookworm indexes for amd64 and arm64."""
    options = {
        "Dir::State": state / "state",
        "Dir::State::status": state / "status",
        "Dir::Cache": state / "cache",
        "Dir::Etc::SourceList": "/dev/null",
        "Dir::Etc::SourceParts": state / "sources",
        "Dir::Etc::Preferences": "/dev/null",
        "Dir::Etc::PreferencesParts": state / "preferences",
        "APT::Architecture": "amd64",
        "APT::Architectures::": "amd64",
    }
    args = [f"-o{key}={value}" for key, value in options.items()] + ["-oAPT::Architectures::=arm64"]
    if os.geteuid() == 0:  # apt drops to _apt for downloads, which cannot write our cache dirs
        args.append("-oAPT::Sandbox::User=root")
    return args


def fingerprint(*parts) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def built(name: str, key: str):
    """Yield a temp dir to build part `name` in, or None when CACHE/name is current for `key`.
    On success the temp dir replaces CACHE/name and its stamp is written (an interrupted build leaves none)."""
    target, stamp = CACHE / name, CACHE / f"{name}.stamp"
    if target.is_dir() and stamp.exists() and stamp.read_text() == key:
        yield None
        return
    temp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=CACHE))
    started = time.perf_counter()
    try:
        yield temp
        stamp.unlink(missing_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(temp, target)
        stamp.write_text(key)
        log(f"{name} built in {time.perf_counter() - started:.1f} s")
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def build_apt() -> Path:
    key = fingerprint(SOURCES.read_text(), time.strftime("%Y-%W"))  # indexes refreshed weekly
    with built("apt", key) as temp:
        if temp is not None:
            for sub in ("state/lists/partial", "cache/archives/partial", "sources", "preferences"):
                (temp / sub).mkdir(parents=True)
            (temp / "status").touch()
            shutil.copy(SOURCES, temp / "sources" / SOURCES.name)
            log("apt-get update (private state: bookworm amd64 + arm64 indexes)")
            run(["apt-get", *apt_options(temp), "update"])
    return CACHE / "apt"


def arm64_packages(apt: Path) -> list[str]:
    """python3.11:arm64 and everything it depends on (no recommends), minus packaging tools."""
    result = run(
        [
            "apt-cache",
            *apt_options(apt),
            "depends",
            "--recurse",
            "--no-recommends",
            "--no-suggests",
            "--no-conflicts",
            "--no-breaks",
            "--no-replaces",
            "--no-enhances",
            *ROOT_PACKAGES,
        ]
    )
    names = {line.strip() for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    return sorted(n for n in names if n.endswith(":arm64") and n.split(":")[0] not in SKIP_PACKAGES)


def download_debs(apt: Path, packages: list[str], into: Path) -> list[Path]:
    into.mkdir(parents=True, exist_ok=True)
    log(f"apt-get download {len(packages)} packages")
    run(["apt-get", *apt_options(apt), "download", *packages], cwd=into)
    return sorted(into.glob("*.deb"))


def build_qemu(apt: Path) -> Path:
    with built(
        "qemu", fingerprint((CACHE / "apt.stamp").read_text(), "qemu-user-static", "aarch64 only")
    ) as temp:
        if temp is not None:
            for deb in download_debs(apt, ["qemu-user-static:amd64"], temp / ".debs"):
                run(["dpkg", "-x", deb, temp / ".unpacked"])
            (temp / "usr" / "bin").mkdir(parents=True)  # keep the one emulator used (13 of 370 MB)
            os.replace(
                temp / ".unpacked" / "usr" / "bin" / "qemu-aarch64-static",
                temp / "usr" / "bin" / "qemu-aarch64-static",
            )
            shutil.rmtree(temp / ".debs")
            shutil.rmtree(temp / ".unpacked")
    binary = CACHE / "qemu" / "usr" / "bin" / "qemu-aarch64-static"
    if not binary.exists():
        raise CannotBuild(f"qemu-user-static did not provide {binary.name}")
    return binary


def build_sysroot(apt: Path) -> Path:
    packages = arm64_packages(apt)
    with built(
        "sysroot", fingerprint(packages, (CACHE / "apt.stamp").read_text(), CPUINFO.read_text())
    ) as temp:
        if temp is not None:
            debs = download_debs(apt, packages, temp / ".debs")
            log(f"dpkg -x {len(debs)} arm64 packages")
            for deb in debs:
                run(["dpkg", "-x", deb, temp])
            shutil.rmtree(temp / ".debs")
            (temp / "proc").mkdir()
            shutil.copy(CPUINFO, temp / "proc" / "cpuinfo")
    return CACHE / "sysroot"


def host_python() -> str:
    """The project's venv Python (its LiteRT/numpy/pillow versions are the ones to match), else this one."""
    venv = Path(os.environ.get("TFEDGE_VENV", REPO / ".venv")) / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def device_requirements() -> list[str]:
    """Distribution names in device/setup.cfg's install_requires and SITE_EXTRAS (all apply on aarch64)."""
    import configparser
    import re

    parser = configparser.ConfigParser()
    parser.read(DEVICE_SETUP)
    lines = parser.get("options", "install_requires").splitlines()
    for extra in SITE_EXTRAS:
        lines += parser.get("options.extras_require", extra).splitlines()
    return [
        re.split(r"[<>=!~;\[\s]", line.strip(), maxsplit=1)[0]
        for line in lines
        if line.strip() and not line.strip().startswith("#")
    ]


def wheel_pins(python: str) -> list[str]:
    """The device requirements pinned to the versions installed in `python` (unpinned where absent)."""
    script = (
        "import importlib.metadata as m, sys\nfor name in sys.argv[1:]:\n    try: print(f'{name}=={m.version(name)}')"
        "\n    except m.PackageNotFoundError: print(name)"
    )
    return run([python, "-c", script, *device_requirements()]).stdout.split()


def build_site() -> Path:
    python = host_python()
    pins = wheel_pins(python)
    with built("site", fingerprint(pins, PLATFORM_TAGS, PYTHON_VERSION)) as temp:
        if temp is not None:
            log(f"pip download {' '.join(pins)} (manylinux aarch64, glibc <= 2.36, CPython {PYTHON_VERSION})")
            run(
                [
                    python,
                    "-m",
                    "pip",
                    "download",
                    "--disable-pip-version-check",
                    "-q",
                    *(option for tag in PLATFORM_TAGS for option in ("--platform", tag)),
                    "--only-binary=:all:",
                    "--python-version",
                    PYTHON_VERSION,
                    "-d",
                    temp / ".wheels",
                    *pins,
                ]
            )
            for wheel in sorted((temp / ".wheels").glob("*.whl")):
                with zipfile.ZipFile(wheel) as archive:
                    archive.extractall(temp)
            shutil.rmtree(temp / ".wheels")
    return CACHE / "site"


@contextlib.contextmanager
def build_lock():
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # concurrent test processes build once
        yield


def build() -> dict:
    """Build every part that is missing or stale; return their paths. Raises CannotBuild."""
    check_machine()
    started = time.perf_counter()
    with build_lock():
        apt = build_apt()
        parts = {"qemu": build_qemu(apt), "sysroot": build_sysroot(apt), "site": build_site()}
        parts["python"] = build_launcher(parts["qemu"], parts["sysroot"])
    parts["seconds"] = round(time.perf_counter() - started, 1)
    return parts


LAUNCHER = """#!/bin/sh
# The emulated python3.11 as a program the host can start: sys.executable names this file (qemu's -0 sets argv[0]),
# so a Python the device code starts (guard.py's probe, subprocess) runs emulated too, as on a Pi.
exec {qemu} -cpu {cpu} -L {sysroot} -0 "$0" {python} "$@"
"""


def build_launcher(qemu: Path, sysroot: Path) -> Path:
    launcher = CACHE / "bin" / "python3.11"
    import shlex

    text = LAUNCHER.format(qemu=shlex.quote(str(qemu)), cpu=QEMU_CPU, sysroot=shlex.quote(str(sysroot)),
                           python=shlex.quote(str(sysroot / "usr" / "bin" / "python3.11")))
    if not launcher.exists() or launcher.read_text() != text:
        launcher.parent.mkdir(exist_ok=True)
        temp = launcher.with_suffix(".tmp")
        temp.write_text(text)
        temp.chmod(0o755)
        os.replace(temp, launcher)
    return launcher


def command(parts: dict, args: list[str]) -> tuple[list[str], dict]:
    """The emulated `python3.11 ARGS` command line and its environment (clean: nothing of the host's Python)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key.startswith(("TFEDGE_", "LC_", "LANG", "TERM", "COLUMNS")) or key in ("HOME", "PATH", "TZ")
    }
    env.update(
        {
            "PYTHONPATH": f"{parts['site']}{os.pathsep}{REPO / 'device'}",
            "PYTHONNOUSERSITE": "1",
            "PYTHONPYCACHEPREFIX": str(CACHE / "pycache"),
            "LANG": env.get("LANG", "C.UTF-8"),
        }
    )
    return [str(parts["python"]), *args], env
