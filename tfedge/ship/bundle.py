"""`tfedge bundle`: one deployable artifact — model variants, manifest, labels, tokenizer files, a stored
sample with its expected output, and SHA256SUMS — written atomically as a directory or one zip archive.

The device side (`tfedge_device.bundle`) reads what this writes; the layout is described there.
"""

from __future__ import annotations

import json
import logging
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tfedge_device import __version__ as device_version
from tfedge_device.bundle import (
    BUNDLE_JSON,
    CHECKSUMS,
    FORMAT,
    SAMPLE_EXPECTED,
    SAMPLE_INPUT,
    TOLERANCES,
    checksum_lines,
    is_bundle,
    open_bundle,
    save_arrays,
    variant_manifest,
)
from tfedge_device.fileio import atomic_path, sha256_file, write_bytes, write_text
from tfedge_device.labels import check_labels, read_labels
from tfedge_device.manifest import manifest_path, read_manifest
from tfedge_device.model import Model, needs_edgetpu, read_model_bytes
from tfedge_device.preprocess import ImageSpec, get_preset, load_image

from .. import __version__
from ..errors import BadInput

log = logging.getLogger(__name__)

SAMPLE_SEED = 0


@dataclass
class BundleRequest:
    models: list[Path]
    output: Path
    labels: Path | None = None
    sample: Path | None = None
    extra: list[Path] = field(default_factory=list)
    as_zip: bool = False


def op_facts(model_path: Path) -> dict:
    """The operators (name, version) a model uses and its converter-recorded min_runtime_version."""
    from ..analysis.compat import required_release
    from ..analysis.graph import read_graph

    graph = read_graph(model_path)
    ops, metadata_min = [(op.name, op.version) for op in graph.ops], graph.min_runtime_version
    needs = required_release(ops, metadata_min)
    return {"ops": [f"{op} v{version}" for op, version in sorted(set(ops))],
            "min_runtime_version": metadata_min, "min_release": needs["min_release"]}


def classify_models(paths: list[Path]) -> dict[str, Path]:
    """{'cpu': path, 'edgetpu': path}: compiled Edge TPU models carry the edgetpu custom op."""
    variants: dict[str, Path] = {}
    for path in map(Path, paths):
        name = "edgetpu" if needs_edgetpu(read_model_bytes(path)) else "cpu"
        if name in variants:
            raise BadInput(f"two {name} models given ({variants[name].name}, {path.name}); a bundle holds "
                           "one CPU model and optionally its Edge TPU compilation")
        variants[name] = path
    if len({p.name for p in variants.values()}) != len(variants):
        raise BadInput("the CPU and Edge TPU models have the same file name; rename one")
    return variants


def referenced_files(manifest: dict, model_path: Path) -> list[Path]:
    """Files beside the model that its manifest names (tokenizer.json, vocab.txt, ...)."""
    found, stack = [], [manifest]
    own = {model_path.name, manifest_path(model_path).name}
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack += list(value.values())
        elif isinstance(value, list):
            stack += value
        elif isinstance(value, str) and value not in own and "/" not in value and len(value) < 200:
            candidate = model_path.parent / value
            if candidate.is_file() and candidate not in found:
                found.append(candidate)
    return sorted(found)


def sample_arrays(request: BundleRequest, model: Model, manifest: dict) -> tuple[list[np.ndarray], str]:
    """The stored sample input (batch of one per model input) and where it came from."""
    shapes = [tuple(int(n) for n in d["shape"]) for d in model.interpreter.get_input_details()]
    if request.sample is None:
        return random_sample(model, manifest, shapes), f"random (seed {SAMPLE_SEED})"
    path = Path(request.sample)
    if not path.is_file():
        raise BadInput(f"--sample not found: {path}")
    if path.suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
            arrays = sample_by_name(loaded, model, path) if path.suffix == ".npz" else [loaded]
        except (ValueError, OSError, EOFError) as err:
            raise BadInput(f"--sample {path.name} is not a readable {path.suffix} file: {err}") from None
    else:
        image = (manifest.get("preprocess") or {}).get("image")
        if not image:
            raise BadInput(f"--sample {path.name}: the model's manifest has no image preprocessing",
                           hint="give the sample as a .npy of the model's input instead")
        arrays = [load_image(path, ImageSpec.from_dict(image))]
    if len(arrays) != len(shapes):
        raise BadInput(f"--sample gives {len(arrays)} arrays; the model takes {len(shapes)} inputs")
    fixed = []
    for array, shape, spec in zip(arrays, shapes, model.inputs):
        if array.shape == shape[1:]:
            array = array[None]
        if array.shape != shape:
            raise BadInput(f"--sample for input {spec.name!r} has shape {list(array.shape)}, "
                           f"the model takes {list(shape)}")
        fixed.append(array.astype(np.float32) if spec.quantized or spec.dtype.kind == "f" else array)
    return fixed, path.name


def sample_by_name(archive, model: Model, path: Path) -> list[np.ndarray]:
    """An .npz sample's arrays in the model's input order, keyed by input name (one input: any one array)."""
    from ..convert.pairing import match_name

    names = [spec.key for spec in model.inputs]
    keys = [match_name(name, archive.files) for name in names]
    if None not in keys:
        return [archive[key] for key in keys]
    if len(names) == 1 and len(archive.files) == 1:
        return [archive[archive.files[0]]]
    raise BadInput(f"--sample {path.name} holds {archive.files}; key its arrays by the model's input names: {names}")


def tensor_names(spec) -> dict:
    """How the device finds a stored array's tensor in any variant: its signature name, else its tensor name."""
    return {"name": spec.name, "signature_name": spec.signature_name}


def random_sample(model: Model, manifest: dict, shapes: list[tuple]) -> list[np.ndarray]:
    """A deterministic input inside each tensor's real range (images: random pixels, normalised)."""
    rng = np.random.default_rng(SAMPLE_SEED)
    image = (manifest.get("preprocess") or {}).get("image")
    arrays = []
    for spec, shape in zip(model.inputs, shapes):
        if image and len(shape) == 4:
            norm = get_preset(image.get("preset", "unit"))
            pixels = rng.integers(0, 256, size=shape).astype(np.float32)
            arrays.append((pixels - np.asarray(norm.mean, np.float32)) / np.asarray(norm.std, np.float32))
        elif spec.dtype.kind in "iu" and not spec.quantized:
            arrays.append(np.ones(shape, spec.dtype))  # token ids / masks: a valid id everywhere
        elif spec.quantized:
            info = np.iinfo(spec.dtype)
            low, high = (info.min - spec.zero_point) * spec.scale, (info.max - spec.zero_point) * spec.scale
            arrays.append(rng.uniform(low, high, size=shape).astype(np.float32))
        else:
            arrays.append(rng.uniform(0.0, 1.0, size=shape).astype(np.float32))
    return arrays


def variant_entry(path: Path, manifest: dict | None) -> dict:
    return {"model": path.name, "manifest": manifest_path(path).name if manifest else None,
            "sha256": sha256_file(path), "size_bytes": path.stat().st_size,
            "needs_edgetpu": needs_edgetpu(read_model_bytes(path)), **op_facts(path)}


def build_bundle_dir(request: BundleRequest, root: Path) -> dict:
    """Write every bundle file into the (empty, temporary) directory `root`; returns bundle.json's data."""
    variants = classify_models(request.models)
    manifests = {name: read_manifest(path) for name, path in variants.items()}
    primary = "cpu" if "cpu" in variants else "edgetpu"
    manifest = manifests[primary] or manifests.get("cpu") or manifests.get("edgetpu") or {}
    copies: dict[str, Path] = {}
    for name, path in variants.items():
        copies[path.name] = path
        if manifests[name]:
            copies[manifest_path(path).name] = manifest_path(path)
        for extra in referenced_files(manifests[name] or {}, path):
            copies.setdefault(extra.name, extra)
    for extra in map(Path, request.extra):
        if not extra.is_file():
            raise BadInput(f"--extra file not found: {extra}")
        copies.setdefault(extra.name, extra)

    labels = read_labels(request.labels) if request.labels else manifest.get("labels")
    data = {"format": FORMAT, "name": request.output.name.split(".")[0], "task": manifest.get("task"),
            "preprocess": manifest.get("preprocess"), "labels": None, "variants": {},
            "files": sorted(set(copies) - {p.name for p in variants.values()}
                            - {manifest_path(p).name for p in variants.values()}),
            "sample": None,
            "versions": {"tfedge": __version__, "tfedge_device": device_version},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    for name, path in copies.items():
        write_bytes(root / name, Path(path).read_bytes())
    for name, path in variants.items():
        data["variants"][name] = variant_entry(root / path.name, manifests[name])

    if "cpu" in variants:
        model = Model(root / variants["cpu"].name)
        data["inputs"] = [spec.to_dict() for spec in model.inputs]
        data["outputs"] = [spec.to_dict() for spec in model.outputs]
        if labels is not None and model.outputs and len(model.outputs[0].shape) == 2:
            check_labels(labels, model.outputs[0].shape[-1], "--labels" if request.labels else "manifest labels")
        inputs, origin = sample_arrays(request, model, manifest)
        expected = model.predict(*inputs)
        (root / "sample").mkdir()
        save_arrays(root / SAMPLE_INPUT, inputs, "input")
        save_arrays(root / SAMPLE_EXPECTED, expected, "output")
        data["sample"] = {"input": SAMPLE_INPUT, "expected": SAMPLE_EXPECTED, "origin": origin,
                          "inputs": [tensor_names(spec) for spec in model.inputs],  # the arrays', in order
                          "outputs": [tensor_names(spec) for spec in model.outputs],
                          "computed_with": f"cpu variant, {model.runtime.name} {model.runtime.version}",
                          "tolerance": TOLERANCES}
    elif request.sample is not None:
        raise BadInput("--sample needs a CPU model in the bundle: the expected output is computed on this "
                       "host, which cannot run an Edge TPU-only model")
    else:
        log.warning("no CPU model: the bundle has no stored sample, so `tfedge-run verify` only loads it")
    if labels is not None:
        write_text(root / "labels.txt", "".join(f"{label}\n" for label in labels))
        data["labels"] = "labels.txt"
    requires = [v["min_release"] for v in data["variants"].values() if v.get("min_release")]
    data["requires"] = {"tfedge_device": f">={device_version}",
                        "min_runtime_release": max(requires, key=_release_key, default=None)}
    write_text(root / BUNDLE_JSON, json.dumps(data, indent=2) + "\n")
    sums = {str(p.relative_to(root)): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    write_text(root / CHECKSUMS, checksum_lines(sums))
    return data


def _release_key(text: str) -> tuple:
    from ..analysis.compat import parse_release

    return parse_release(text) or (0,)


def write_zip(directory: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                out.write(path, str(path.relative_to(directory)))


def bundle(request: BundleRequest) -> dict:
    """Write the bundle at request.output (directory, or zip with as_zip) atomically; returns a summary."""
    output = Path(request.output)
    if not request.models:
        raise BadInput("give at least one .tflite model")
    if output.exists() and not is_bundle(output):
        raise BadInput(f"refusing to replace {output}: it exists and is not a tfedge bundle")
    with atomic_path(output) as tmp:
        if request.as_zip:
            with tempfile.TemporaryDirectory(prefix="tfedge-bundle-") as work:
                data = build_bundle_dir(request, Path(work))
                write_zip(Path(work), tmp)
        else:
            tmp.mkdir()
            data = build_bundle_dir(request, tmp)
        opened = open_bundle(tmp)  # self-check: what a device will read
        for variant in data["variants"]:
            variant_manifest(opened, variant)
    size = output.stat().st_size if output.is_file() else sum(
        p.stat().st_size for p in output.rglob("*") if p.is_file())
    return {"output": str(output), "format": "zip" if request.as_zip else "directory", "size_bytes": size,
            "variants": {name: v["model"] for name, v in data["variants"].items()},
            "files": opened.files_checked, "labels": data["labels"], "extra_files": data["files"],
            "sample": data["sample"]["origin"] if data["sample"] else None,
            "min_runtime_release": data["requires"]["min_runtime_release"]}
