"""Calibration and verification data -> samples (one list of batch-1 arrays per sample, in input order).

Loaders are a registry keyed by what PATH is: an image folder, a `.npy`/`.npz` of input tensors (a model
with several inputs: an `.npz` keyed by input names), `random` (an escape hatch that warns), or a sentence
file for text models (registered by tfedge.convert.hf_source). `split_samples` holds samples out of the
calibration (to verify on, or for a search to measure on).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tfedge_device.preprocess import IMAGE_SUFFIXES, list_images, load_image

from ..errors import BadInput
from .pairing import match_name, tf_name
from .sources import SourceModel

log = logging.getLogger(__name__)


@dataclass
class Samples:
    """Model inputs for calibration/verification. `arrays[i]` is the list of inputs of sample i."""

    arrays: list[list[np.ndarray]]
    origin: str  # what they came from, for reports
    real: bool = True  # False for random data: accuracy figures are meaningless
    ids: list[int] | None = None  # each sample's position among the samples PATH holds (default 0, 1, ...)
    names: list[str] | None = None  # the inputs' signature names: the converter's calibration is fed by name

    def __post_init__(self):
        if self.ids is None:
            self.ids = list(range(len(self.arrays)))

    def __len__(self) -> int:
        return len(self.arrays)

    def subset(self, positions: list[int], origin: str) -> Samples:
        return Samples([self.arrays[i] for i in positions], origin, self.real, [self.ids[i] for i in positions],
                       self.names)

    def head(self, count: int) -> Samples:
        if count >= len(self.arrays):
            return self
        return self.subset(list(range(count)), f"{count} of {self.origin}")


def split_samples(samples: Samples, held_count: int | None = None, who: str = "selective int8",
                  why: str = "half are held out to measure") -> tuple[Samples, Samples]:
    """(calibration, held-out), disjoint: `held_count` samples spread evenly over the set are held out
    (default: every second one, half), so both cover the whole file."""
    count = len(samples)
    if count < 2:
        raise BadInput(f"{who} needs at least 2 calibration samples ({why})")
    if held_count is None or 2 * held_count >= count:
        held = list(range(1, count, 2))
    else:
        held = sorted({int(i) for i in np.linspace(1, count - 1, max(1, held_count)).round()})
    kept = [i for i in range(count) if i not in set(held)]
    return (samples.subset(kept, f"{len(kept)} of {samples.origin}"),
            samples.subset(held, f"{len(held)} held out of {samples.origin}"))


def progress(iterable, total: int, description: str, enabled: bool = True, stream=None, unit: str = "sample"):
    """A tqdm bar on `stream` (stderr), only when it is a terminal and progress is wanted."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    return tqdm(iterable, total=total, desc=description, unit=unit, leave=False, file=stream,
                disable=not enabled or not stream.isatty())


def _from_images(path: Path, source: SourceModel, count: int, preset: str, show_progress: bool) -> Samples:
    if not source.is_image:
        raise BadInput(f"{path} is an image folder but the model input is not an image "
                       f"(shape {list(source.inputs[0].shape)})")
    files = list_images([path])
    if not files:
        raise BadInput(f"calibration folder {path} has no images ({', '.join(IMAGE_SUFFIXES)})")
    picks = _spread(list(range(len(files))), count)
    files = [files[i] for i in picks]
    spec = source.image_spec(preset)
    arrays = [[load_image(f, spec)[None]] for f in progress(files, len(files), "calibration images", show_progress)]
    return Samples(arrays, f"{len(files)} images from {path}", ids=picks)


def _spread(items: list, count: int) -> list:
    """Up to `count` items spread evenly over the (sorted) list, so sub-folders/classes are all represented."""
    if len(items) <= count:
        return items
    picks = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in picks]


def _from_arrays(arrays_by_input: list[np.ndarray], path: Path, source: SourceModel, count: int) -> Samples:
    if len(arrays_by_input) != len(source.inputs):
        raise BadInput(f"{path.name} holds {len(arrays_by_input)} arrays but the model has "
                       f"{len(source.inputs)} inputs")
    fitted = []
    for array, spec in zip(arrays_by_input, source.inputs):
        per_sample = tuple(spec.shape[1:])
        if array.shape[1:] == per_sample:
            pass
        elif array.shape == per_sample:
            array = array[None]
        else:
            raise BadInput(f"{path.name}: array of shape {list(array.shape)} does not match input {spec.name!r} "
                           f"of shape {list(spec.shape)} (expected [N, {', '.join(map(str, per_sample))}])")
        if array.dtype.kind not in "fiub":
            raise BadInput(f"{path.name}: array dtype {array.dtype} is not numeric")
        fitted.append(array.astype(spec.dtype, copy=False))
    total = len(fitted[0])
    if any(len(a) != total for a in fitted) or total == 0:
        raise BadInput(f"{path.name}: arrays are empty or hold different numbers of samples")
    picks = _spread(list(range(total)), count)
    return Samples([[a[i:i + 1] for a in fitted] for i in picks], f"{len(picks)} samples from {path}", ids=picks)


def load_numpy(path: Path):
    """np.load without pickles; an unreadable file is one BadInput line."""
    import zipfile

    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise BadInput(f"cannot read {path.name} as numpy data: {' '.join(str(err).split())[:200]}") from None


def _from_npy(path: Path, source: SourceModel, count: int, preset: str, show_progress: bool) -> Samples:
    return _from_arrays([load_numpy(path)], path, source, count)


def _from_npz(path: Path, source: SourceModel, count: int, preset: str, show_progress: bool) -> Samples:
    with load_numpy(path) as archive:
        names = [spec.name for spec in source.inputs]
        keys = [match_name(name, archive.files) for name in names]
        if None not in keys:
            arrays = [archive[key] for key in keys]
        elif len(names) == 1 and ("x" in archive.files or len(archive.files) == 1):
            arrays = [archive["x" if "x" in archive.files else archive.files[0]]]
        elif len(names) > 1:  # never by position: the archive's order says nothing about the inputs'
            raise BadInput(f"{path.name} holds {archive.files}; a model with several inputs takes an .npz keyed "
                           f"by input name: {names}")
        else:
            raise BadInput(f"{path.name} holds {archive.files}; name arrays after the inputs "
                           f"({', '.join(names)}) or use 'x'")
    return _from_arrays(arrays, path, source, count)


def random_samples(source: SourceModel, count: int, preset: str | None = None) -> Samples:
    """Random inputs in the input's plausible range (images: random pixels through the preset)."""
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(count):
        sample = []
        for spec in source.inputs:
            if np.dtype(spec.dtype).kind == "f":
                values = rng.uniform(0, 255, spec.shape).astype(np.float32)
                if source.is_image:
                    norm = source.image_spec(preset or "unit").normalization()
                    values = (values - np.asarray(norm.mean, np.float32)) / np.asarray(norm.std, np.float32)
                else:
                    values = rng.standard_normal(spec.shape).astype(np.float32)
            else:
                values = rng.integers(0, 100, spec.shape).astype(spec.dtype)
            sample.append(values)
        samples.append(sample)
    return Samples(samples, f"{count} random inputs", real=False, names=input_names(source))


def input_names(source: SourceModel) -> list[str]:
    """The source's inputs as the converter names them in the .tflite's signature."""
    return [tf_name(spec.name) for spec in source.inputs]


# What PATH is -> loader(path, source, count, preset, show_progress). Text loaders are added by plugins.
LOADERS: list[tuple[Callable[[Path], bool], Callable]] = [
    (lambda p: p.is_dir(), _from_images),
    (lambda p: p.suffix == ".npy", _from_npy),
    (lambda p: p.suffix == ".npz", _from_npz),
]


def load_samples(spec: str, source: SourceModel, count: int = 200, preset: str | None = None,
                 show_progress: bool = True) -> Samples:
    """Calibration/verification samples from PATH (or `random`), fitted to the source's inputs."""
    if count < 1:
        raise BadInput(f"--calib-count must be at least 1, got {count}")
    if spec == "random":
        log.warning("calibrating on RANDOM data: the quantized model's accuracy is meaningless")
        return random_samples(source, count, preset)
    path = Path(spec)
    if not path.exists():
        raise BadInput(f"calibration data not found: {path}")
    for matches, loader in LOADERS:
        if matches(path):
            samples = loader(path, source, count, preset or source.preprocess or "unit", show_progress)
            samples.names = input_names(source)
            return samples
    raise BadInput(f"unsupported calibration data {path.name}: give an image folder, a .npy or a .npz")
