"""Training data for the optimization commands: DATA -> arrays (and a validation split).

DATA is one of (a registry keyed by what the path is):
  * an image folder with one sub-folder per class: labels are the sub-folder names (sorted; names that are
    integers sort numerically), images preprocessed to the model's input with a normalisation preset;
  * a `.npz` with `x` (model-ready inputs [N, ...]) and `y` (class indices [N]); optional `x_val`/`y_val`;
  * a text file (`.txt`), one sentence a line: unlabeled text for embedding distillation.
Without a separate validation set, a fixed fraction is held out (seeded, so every run sees the same split).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tfedge_device.preprocess import IMAGE_SUFFIXES, ImageSpec, list_images, load_image

from ..errors import BadInput

SEED = 0


@dataclass
class TrainData:
    """x/y for training and validation. y is None for unlabeled data; `sentences` for text."""

    x: np.ndarray | None
    y: np.ndarray | None
    x_val: np.ndarray | None
    y_val: np.ndarray | None
    origin: str
    labels: list[str] | None = None
    sentences: list[str] = field(default_factory=list)
    sentences_val: list[str] = field(default_factory=list)

    @property
    def classes(self) -> int | None:
        if self.y is None:
            return None
        return int(max(self.y.max(), self.y_val.max() if self.y_val is not None else 0)) + 1

    def describe(self) -> dict:
        count = len(self.sentences) if self.sentences else len(self.x)
        held = len(self.sentences_val) if self.sentences else (0 if self.x_val is None else len(self.x_val))
        return {"data": self.origin, "train_samples": count, "validation_samples": held}


def _class_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def _from_folder(path: Path, input_shape: tuple, preset: str) -> tuple:
    classes = sorted((d.name for d in path.iterdir() if d.is_dir()), key=_class_key)
    if not classes:
        raise BadInput(f"{path} has no class sub-folders (expected one sub-folder of images per class)")
    if len(input_shape) != 4 or input_shape[-1] not in (1, 3):
        raise BadInput(f"{path} is an image folder but the model input is not an image "
                       f"(shape {list(input_shape)})")
    spec = ImageSpec.from_shape((1, *input_shape[1:]), preset)
    images, labels = [], []
    for index, name in enumerate(classes):
        for file in list_images([path / name]):
            images.append(load_image(file, spec))
            labels.append(index)
    if not images:
        raise BadInput(f"{path} has no images ({', '.join(IMAGE_SUFFIXES)}) in its class sub-folders")
    return np.stack(images).astype(np.float32), np.asarray(labels, np.int64), None, None, classes


def _from_npz(path: Path, input_shape: tuple, preset: str) -> tuple:
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise BadInput(f"cannot read {path.name} as numpy data: {' '.join(str(err).split())[:200]}") from None
    with archive:
        if "x" not in archive.files:
            raise BadInput(f"{path.name} holds {archive.files}; training data needs 'x' (and 'y' for labels)")
        arrays = {key: archive[key] for key in ("x", "y", "x_val", "y_val") if key in archive.files}
    for key in ("x", "x_val"):
        if key in arrays:
            x = arrays[key]
            if tuple(x.shape[1:]) != tuple(input_shape[1:]):
                raise BadInput(f"{path.name}: {key} has shape {list(x.shape)} but the model takes "
                               f"[N, {', '.join(map(str, input_shape[1:]))}]")
            if x.dtype.kind not in "fiu":
                raise BadInput(f"{path.name}: {key} dtype {x.dtype} is not numeric")
    for key, x_key in (("y", "x"), ("y_val", "x_val")):
        if key in arrays:
            y = arrays[key]
            if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(arrays.get(x_key, y)):
                raise BadInput(f"{path.name}: {key} must be integer class indices [N] matching {x_key}")
            if len(y) and y.min() < 0:
                raise BadInput(f"{path.name}: {key} holds negative class indices")
    if len(arrays["x"]) == 0:
        raise BadInput(f"{path.name}: x is empty")
    return (arrays["x"].astype(np.float32), arrays.get("y"), arrays.get("x_val"), arrays.get("y_val"), None)


def read_sentences(path: Path) -> list[str]:
    """One sentence a line (tfedge.convert.hf_source' reader, shared with text calibration)."""
    from ..convert.hf_source import read_sentences as read

    sentences = read(path)
    if len(sentences) < 2:
        raise BadInput(f"{path.name} holds {len(sentences)} sentence(s); distillation needs at least 2")
    return sentences


LOADERS: list[tuple[Callable[[Path], bool], Callable]] = [
    (lambda p: p.is_dir(), _from_folder),
    (lambda p: p.suffix == ".npz", _from_npz),
]


def holdout_indices(count: int, fraction: float, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices: a seeded permutation, `fraction` held out (at least 1 of each)."""
    order = np.random.default_rng(seed).permutation(count)
    held = min(max(1, round(count * fraction)), count - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def load_data(spec: str | Path, input_shape: tuple | None = None, preset: str = "unit", val: str | None = None,
              val_fraction: float = 0.1) -> TrainData:
    """DATA (and optional separate validation DATA) -> TrainData fitted to a model input of `input_shape`."""
    path = Path(spec)
    if not path.exists():
        raise BadInput(f"training data not found: {path}")
    if path.suffix == ".txt":
        sentences = read_sentences(path)
        if val:
            return TrainData(None, None, None, None, str(path), sentences=sentences,
                             sentences_val=read_sentences(Path(val)))
        train, held = holdout_indices(len(sentences), val_fraction)
        return TrainData(None, None, None, None, str(path), sentences=[sentences[i] for i in train],
                         sentences_val=[sentences[i] for i in held])
    loader = next((load for matches, load in LOADERS if matches(path)), None)
    if loader is None:
        raise BadInput(f"unsupported training data {path.name}",
                       hint="give an image folder (one sub-folder per class), a .npz with x/y or a .txt of sentences")
    x, y, x_val, y_val, labels = loader(path, input_shape, preset)
    if val:
        val_path = Path(val)
        if not val_path.exists():
            raise BadInput(f"validation data not found: {val_path}")
        val_loader = next((load for matches, load in LOADERS if matches(val_path)), None)
        if val_loader is None:
            raise BadInput(f"unsupported validation data {val_path.name}: an image folder or a .npz")
        x_val, y_val, _, _, _ = val_loader(val_path, input_shape, preset)
    elif x_val is None:
        if len(x) < 2:
            raise BadInput(f"{path.name} holds {len(x)} sample(s); at least 2 are needed to hold one out")
        train, held = holdout_indices(len(x), val_fraction)
        x, x_val = x[train], x[held]
        if y is not None:
            y, y_val = y[train], y[held]
    if (y is None) != (y_val is None):
        raise BadInput("labels are given for only one of the training and validation data")
    return TrainData(x, y, x_val, y_val, str(path), labels=labels)
