"""The sidecar manifest: the contract between `tfedge convert` (host) and `tfedge-run` (device).

`MODEL.tflite` is described by `MODEL.json` beside it: source and its hash, quantization mode, I/O
tensors with dtypes and quantization parameters, preprocessing, labels, verification figures, versions.
The device reads it so a user never restates preprocessing or labels.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .errors import BadInput
from .fileio import sha256_file, write_text

FORMAT = "tfedge-manifest/1"
REQUIRED_KEYS = ("format", "model", "model_sha256", "inputs", "outputs")

log = logging.getLogger(__name__)


def manifest_path(model_path: str | Path) -> Path:
    return Path(model_path).with_suffix(".json")


def write_manifest(model_path: str | Path, manifest: dict) -> Path:
    model_path = Path(model_path)
    data = {"format": FORMAT, "model": model_path.name, "model_sha256": sha256_file(model_path), **manifest}
    return write_text(manifest_path(model_path), json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_manifest(model_path: str | Path, check_hash: bool = True) -> dict | None:
    """The manifest beside `model_path`, or None when there is none (a JSON file there that is not a tfedge
    manifest, e.g. another project's sidecar, counts as none). Raises BadInput when it is broken, of another
    format version, or does not belong to the model (hash mismatch)."""
    path = manifest_path(model_path)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"manifest {path.name} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or not str(data.get("format", "")).startswith("tfedge-manifest"):
        # another project's sidecar (micro-wakeword ships okay_nabu.json beside okay_nabu.tflite): not ours
        log.info("%s beside the model is not a tfedge manifest: ignored", path.name)
        return None
    if data.get("format") != FORMAT:
        raise BadInput(f"{path.name} is not a tfedge manifest (format {FORMAT} expected)")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise BadInput(f"manifest {path.name} lacks {', '.join(missing)}")
    if check_hash and data["model_sha256"] != sha256_file(model_path):
        raise BadInput(
            f"manifest {path.name} does not match {Path(model_path).name} (sha256 differs)",
            hint="re-run `tfedge convert`, or remove the stale manifest",
        )
    return data


def find_manifest(model_path: str | Path) -> tuple[dict | None, str | None]:
    """(manifest, where it came from). An Edge TPU model `X_edgetpu.tflite` without its own manifest uses the
    CPU model's `X.json` (edgetpu_compiler keeps I/O tensors and preprocessing; the hash check is skipped)."""
    model_path = Path(model_path)
    manifest = read_manifest(model_path)
    if manifest is not None:
        return manifest, manifest_path(model_path).name
    if model_path.stem.endswith("_edgetpu"):
        sibling = model_path.with_name(model_path.stem[: -len("_edgetpu")] + ".tflite")
        if manifest_path(sibling).exists():
            return read_manifest(sibling, check_hash=False), manifest_path(sibling).name
    return None, None
