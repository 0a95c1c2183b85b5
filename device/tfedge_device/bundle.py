"""A tfedge bundle on the device: read it, check its checksums, pick the model variant to run.

A bundle (written by `tfedge bundle`) is a directory `NAME.tfedge/`, or the same files in one zip archive:
  bundle.json      what is inside: variants (cpu, edgetpu), I/O, preprocessing, labels, stored sample
  SHA256SUMS       `<sha256>  <path>` per file (the `sha256sum -c` format), every file but itself
  *.tflite (+ their sidecar manifests *.json), labels.txt, tokenizer files, sample/input.npz, sample/expected.npz

`open_model_path(path, edgetpu)` is the one entry point for device commands: a `.tflite` passes through, a
bundle is checked and resolved to the model file of the chosen variant.
"""

from __future__ import annotations

import atexit
import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from .errors import BadInput, EnvironmentMissing
from .fileio import sha256_file
from .manifest import read_manifest
from .runtime import edgetpu_library_loads

log = logging.getLogger(__name__)

FORMAT = "tfedge-bundle/1"
BUNDLE_JSON = "bundle.json"
CHECKSUMS = "SHA256SUMS"
VARIANTS = ("edgetpu", "cpu")  # preference order when the Edge TPU delegate loads
MAX_ARCHIVE_BYTES = 4 << 30  # a zip bundle larger than this unpacked is refused (zip bomb guard)
SAMPLE_INPUT, SAMPLE_EXPECTED = "sample/input.npz", "sample/expected.npz"

# How far a device's output on the stored sample may be from the host's (computed with the CPU variant):
# |device - expected| <= steps * output_scale (quantized outputs) or atol (float outputs) + rtol * |expected|.
# cpu: x86 and ARM int8 kernels may round one step apart; float kernels differ in the last bits.
# edgetpu: the Edge TPU's integer arithmetic vs the CPU's reference: a few steps.
TOLERANCES = {
    "cpu": {"steps": 1, "atol": 1e-4, "rtol": 1e-3},
    "edgetpu": {"steps": 3, "atol": 2e-2, "rtol": 2e-2},
}


@dataclass
class Bundle:
    """An opened bundle. `root` is its directory (a zip is unpacked into a temp dir that lives until exit)."""

    source: Path
    root: Path
    data: dict
    files_checked: int = 0

    @property
    def name(self) -> str:
        return self.data.get("name") or self.source.name

    def variant(self, name: str) -> dict | None:
        return (self.data.get("variants") or {}).get(name)

    def path(self, relative: str) -> Path:
        return self.root / relative


class OpenedModel(NamedTuple):
    """What a device command runs: the model file, its manifest (or None), the delegate flag, and a note
    saying which bundle variant was chosen (None for a plain .tflite)."""

    model_path: Path
    manifest: dict | None
    edgetpu: bool
    note: str | None


def is_bundle(path: str | Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return (path / BUNDLE_JSON).is_file()
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            return BUNDLE_JSON in archive.namelist()
    return False


def read_checksums(path: Path) -> dict[str, str]:
    """SHA256SUMS -> {relative path: sha256}; refuses paths that leave the bundle."""
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise BadInput(f"bundle has no {CHECKSUMS} file: {path.parent}") from None
    except UnicodeDecodeError:
        raise BadInput(f"{CHECKSUMS} is not text: {path}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        name = name.lstrip("*")
        if len(digest) != 64 or not name or not _safe_relative(name):
            raise BadInput(f"{CHECKSUMS} line {number} is not '<sha256>  <path>': {line[:80]!r}")
        sums[name] = digest.lower()
    if BUNDLE_JSON not in sums:
        raise BadInput(f"{CHECKSUMS} does not cover {BUNDLE_JSON}: {path}")
    return sums


def checksum_lines(sums: dict[str, str]) -> str:
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))


def verify_checksums(root: Path, label: str | None = None) -> int:
    """Check every file SHA256SUMS lists; BadInput (exit 2) naming the first missing or changed file."""
    label = label or root.name
    sums = read_checksums(root / CHECKSUMS)
    for name, digest in sums.items():
        path = root / name
        if not path.is_file():
            raise BadInput(f"bundle {label} is incomplete: {name} is missing",
                           hint="copy the whole bundle again (tfedge deploy replaces it atomically)")
        if sha256_file(path) != digest:
            raise BadInput(f"bundle {label}: checksum of {name} does not match {CHECKSUMS}",
                           hint="the file was changed or damaged; copy the bundle again")
    return len(sums)


def _safe_relative(name: str) -> bool:
    pure = PurePosixPath(name)
    return bool(name) and not pure.is_absolute() and ".." not in pure.parts and "\\" not in name


def _unpack(archive_path: Path) -> Path:
    """Unpack a zip bundle into a private temp dir removed at exit."""
    with zipfile.ZipFile(archive_path) as archive:
        members = archive.infolist()
        if sum(member.file_size for member in members) > MAX_ARCHIVE_BYTES:
            raise BadInput(f"bundle archive {archive_path.name} unpacks to more than "
                           f"{MAX_ARCHIVE_BYTES >> 30} GiB (refused)")
        for member in members:
            if not _safe_relative(member.filename.rstrip("/")):
                raise BadInput(f"bundle archive {archive_path.name} has an unsafe path: {member.filename!r}")
        root = Path(tempfile.mkdtemp(prefix="tfedge-bundle-"))
        atexit.register(shutil.rmtree, root, True)
        try:
            archive.extractall(root)
        except (zipfile.BadZipFile, OSError) as err:
            raise BadInput(f"cannot unpack bundle archive {archive_path.name}: {err}") from None
    return root


def open_bundle(path: str | Path, check: bool = True) -> Bundle:
    """Open a bundle directory or zip; with `check`, verify every checksum first (BadInput on mismatch)."""
    source = Path(path)
    if not source.exists():
        raise BadInput(f"bundle not found: {source}")
    if not is_bundle(source):
        raise BadInput(f"not a tfedge bundle (no {BUNDLE_JSON}): {source}",
                       hint="make one with `tfedge bundle MODEL.tflite -o NAME.tfedge`")
    try:
        root = source if source.is_dir() else _unpack(source)
    except zipfile.BadZipFile as err:
        raise BadInput(f"bundle archive {source.name} is damaged: {err}") from None
    checked = verify_checksums(root, source.name) if check else 0
    try:
        data = json.loads((root / BUNDLE_JSON).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"{BUNDLE_JSON} of {source.name} is not valid JSON: {err}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise BadInput(f"{source.name}: {BUNDLE_JSON} is not a {FORMAT} file")
    variants = data.get("variants")
    if not isinstance(variants, dict) or not any(name in variants for name in VARIANTS):
        raise BadInput(f"bundle {source.name} lists no model variant (cpu or edgetpu)")
    for name, variant in variants.items():
        if not isinstance(variant, dict) or not _safe_relative(str(variant.get("model", ""))):
            raise BadInput(f"bundle {source.name}: variant {name!r} does not name its model file")
    return Bundle(source=source, root=root, data=data, files_checked=checked)


def edgetpu_delegate_loads() -> tuple[bool, str]:
    """Try the Edge TPU delegate once (then drop it, so the model can open the device): (loads, reason)."""
    from .runtime import get_runtime, load_edgetpu_delegate

    loads, reason = edgetpu_library_loads()
    if not loads:
        return False, reason
    try:
        delegate = load_edgetpu_delegate(get_runtime())
    except EnvironmentMissing as err:
        return False, err.message
    del delegate
    return True, "Edge TPU delegate loaded"


def choose_variant(bundle: Bundle, edgetpu: bool | None = None) -> tuple[str, str]:
    """(variant name, why). edgetpu True/False forces a variant; None picks edgetpu when its delegate loads."""
    have = [name for name in VARIANTS if bundle.variant(name)]
    if edgetpu is True:
        if not bundle.variant("edgetpu"):
            raise BadInput(f"bundle {bundle.name} has no Edge TPU variant (it has: {', '.join(have)})",
                           hint="run without --edgetpu, or bundle the *_edgetpu.tflite model too")
        loads, reason = edgetpu_library_loads()
        if not loads:
            from .runtime import EDGETPU_INSTALL_HINT

            raise EnvironmentMissing(f"the Edge TPU delegate is not available: {reason}", hint=EDGETPU_INSTALL_HINT)
        return "edgetpu", "asked for with --edgetpu"
    if edgetpu is False:
        if not bundle.variant("cpu"):
            raise BadInput(f"bundle {bundle.name} has only an Edge TPU variant",
                           hint="run with the Edge TPU delegate, or bundle a CPU model too")
        return "cpu", "asked for the CPU"
    if bundle.variant("edgetpu"):
        loads, reason = edgetpu_delegate_loads()
        if loads:
            return "edgetpu", reason
        if not bundle.variant("cpu"):
            from .runtime import EDGETPU_INSTALL_HINT

            raise EnvironmentMissing(f"bundle {bundle.name} has only an Edge TPU variant and {reason}",
                                     hint=EDGETPU_INSTALL_HINT)
        return "cpu", f"Edge TPU delegate not available: {reason}"
    return "cpu", "the bundle has no Edge TPU variant"


def variant_manifest(bundle: Bundle, variant: str) -> dict:
    """The variant's sidecar manifest when bundled (preprocess, labels, I/O), else the bundle's own fields."""
    entry = bundle.variant(variant)
    manifest = read_manifest(bundle.path(entry["model"])) if entry.get("manifest") else None
    if manifest is None:
        manifest = {key: bundle.data.get(key) for key in ("task", "preprocess", "inputs", "outputs")}
    labels = bundle.data.get("labels")
    if labels and not manifest.get("labels"):
        from .labels import read_labels

        manifest["labels"] = read_labels(bundle.path(labels))
    return manifest


def open_model_path(path: str | Path, edgetpu: bool | None = None) -> OpenedModel:
    """MODEL.tflite or a bundle -> the model file to load, its manifest, whether to use the delegate, a note.

    For a plain model, edgetpu None means "only if the model was compiled for the Edge TPU".
    A bundle's checksums are verified first (exit 2 on mismatch).
    """
    path = Path(path)
    if not is_bundle(path):
        if edgetpu is None:
            from .model import needs_edgetpu, read_model_bytes

            edgetpu = needs_edgetpu(read_model_bytes(path))
        return OpenedModel(path, read_manifest(path) if path.is_file() else None, bool(edgetpu), None)
    bundle = open_bundle(path)
    variant, why = choose_variant(bundle, edgetpu)
    model_path = bundle.path(bundle.variant(variant)["model"])
    note = f"bundle {bundle.name}: running the {variant} variant {model_path.name} ({why})"
    return OpenedModel(model_path, variant_manifest(bundle, variant), variant == "edgetpu", note)


def save_arrays(path: Path, arrays, prefix: str) -> None:
    """Arrays -> one .npz (keys input_0, input_1, ... in order), written atomically. Their names go in
    bundle.json's sample entry (`inputs`, `outputs`), so a tfedge-run that reads keys by position still can."""
    import io

    import numpy as np

    from .fileio import write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, **{f"{prefix}_{i}": np.asarray(a) for i, a in enumerate(arrays)})
    write_bytes(path, buffer.getvalue())


def load_arrays(path: Path, specs=None, names=None) -> list:
    """A stored sample's arrays, in stored order; with `specs` (a Model's inputs or outputs) and `names` (the
    stored arrays' names, from bundle.json: {"name": tensor name, "signature_name": ...} each), in the specs'
    order, paired by signature name, or by tensor name for a variant without a SignatureDef: the variants of a
    bundle may order their tensors differently."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as loaded:
            keys = sorted(loaded.files, key=lambda k: int(k.rsplit("_", 1)[-1]))
            arrays = [loaded[key] for key in keys]
    except (ValueError, OSError, KeyError) as err:
        raise BadInput(f"bundle sample {path.name} is not readable: {err}") from None
    if specs is None or not names or len(specs) < 2:
        return arrays
    stored = [(entry.get("signature_name"), entry.get("name")) for entry in names]

    def position(spec) -> int | None:
        found = [i for i, (signature_name, name) in enumerate(stored)
                 if (signature_name == spec.signature_name if spec.signature_name and signature_name
                     else name == spec.name)]
        return found[0] if len(found) == 1 else None

    picks = [position(spec) for spec in specs]
    if len(stored) != len(arrays) or None in picks or len(set(picks)) != len(picks):
        raise BadInput(f"bundle sample {path.name} holds {[s or n for s, n in stored]}, which do not name the "
                       f"model's tensors {[spec.key for spec in specs]}")
    return [arrays[i] for i in picks]


def compare_sample(outputs, expected, specs, variant: str) -> dict:
    """Compare a device's outputs with the stored expected ones under TOLERANCES[variant]."""
    import numpy as np

    rule = TOLERANCES[variant]
    worst = {"max_abs_diff": 0.0, "tolerance": None, "ok": True}
    if len(outputs) != len(expected):
        return {**worst, "ok": False, "reason": f"{len(outputs)} outputs, {len(expected)} expected"}
    for got, want, spec in zip(outputs, expected, specs):
        got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
        if got.shape != want.shape:
            return {**worst, "ok": False, "reason": f"output {spec.name!r} shape {list(got.shape)}, "
                    f"expected {list(want.shape)}"}
        atol = rule["steps"] * spec.scale * 1.001 if spec.quantized else rule["atol"]
        diff = np.abs(got - want)
        excess = float(np.max(diff - (atol + rule["rtol"] * np.abs(want)), initial=-np.inf))
        if float(np.max(diff, initial=0.0)) >= worst["max_abs_diff"]:
            worst.update(max_abs_diff=float(np.max(diff, initial=0.0)), tolerance=atol)
        if excess > 0:
            worst["ok"] = False
    worst["rule"] = f"{rule['steps']} output step(s) if quantized, else {rule['atol']:g}; + {rule['rtol']:g}*|expected|"
    return worst


def resolve_model_args(args, edgetpu_allowed: bool = True) -> None:
    """For device commands taking MODEL: when `args.model` is a bundle, check it and put the chosen variant's
    model file in `args.model` and the delegate choice in `args.edgetpu` (an explicit --edgetpu forces the
    Edge TPU variant), saying which on stderr. A plain .tflite passes through untouched."""
    if not is_bundle(args.model):
        return
    wanted = True if getattr(args, "edgetpu", False) else (None if edgetpu_allowed else False)
    opened = open_model_path(args.model, wanted)
    log.warning("%s", opened.note)
    args.model = str(opened.model_path)
    if hasattr(args, "edgetpu"):
        args.edgetpu = opened.edgetpu
