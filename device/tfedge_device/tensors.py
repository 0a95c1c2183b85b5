"""Input tensors from files: .npy, .npz, .json and .wav -> numpy arrays. Knows files, not models
(`run.py` names, fits and quantizes them for a model).

- `.npy`: one array (allow_pickle off: a file cannot run code).
- `.npz`: arrays keyed by input name.
- `.json`: nested lists (one array), or an object {input name: nested lists}.
- `.wav`: PCM through the standard library's `wave`; 8-bit (unsigned), 16-, 24- and 32-bit (signed) samples
  scaled to float32 in [-1, 1) (divided by 2**(bits-1)); mono -> [N], C channels -> [N, C]; the sample rate is
  kept so it can be checked against the manifest.
"""

from __future__ import annotations

import json
import wave
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput

SUFFIXES = (".npy", ".npz", ".json", ".wav")


@dataclass
class InputFile:
    """What one file holds: arrays keyed by input name (None: one unnamed array), and a .wav's sample rate."""

    path: Path
    arrays: dict = field(default_factory=dict)
    sample_rate: int | None = None

    def describe(self) -> str:
        rate = f", {self.sample_rate} Hz" if self.sample_rate else ""
        return f"{self.path.name}{rate}"


def read_input_file(path) -> InputFile:
    """Read one input file by its suffix; BadInput for a missing, unknown or damaged file."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"input file not found: {path}" if not path.exists() else f"input is not a file: {path}")
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise BadInput(f"input {path.name}: unknown kind {path.suffix or '(no suffix)'!r}",
                       hint=f"give one of {', '.join(SUFFIXES)}")
    return reader(path)


def _read_npy(path: Path) -> InputFile:
    try:
        return InputFile(path, {None: np.load(path, allow_pickle=False)})
    except (ValueError, OSError, EOFError) as err:
        raise BadInput(f"input {path.name} is not a readable .npy file: {_first_line(err)}") from None


def _read_npz(path: Path) -> InputFile:
    try:
        with np.load(path, allow_pickle=False) as loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise BadInput(f"input {path.name} is not a readable .npz file: {_first_line(err)}") from None
    if not arrays:
        raise BadInput(f"input {path.name} holds no arrays")
    return InputFile(path, arrays)


def _json_array(value, path: Path, key: str | None) -> np.ndarray:
    try:
        array = np.asarray(value)
    except ValueError as err:  # ragged nesting
        where = f" (key {key!r})" if key else ""
        raise BadInput(f"input {path.name}{where} is not a rectangular array: {_first_line(err)}") from None
    if array.dtype.kind not in "biuf":
        where = f" key {key!r}" if key else ""
        raise BadInput(f"input {path.name}{where} holds {array.dtype.name} values, not numbers")
    return array


def _read_json(path: Path) -> InputFile:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"input {path.name} is not valid JSON: {_first_line(err)}") from None
    if isinstance(data, dict):
        if not data:
            raise BadInput(f"input {path.name} is an empty object")
        return InputFile(path, {key: _json_array(value, path, key) for key, value in data.items()})
    return InputFile(path, {None: _json_array(data, path, None)})


# bytes per sample -> (numpy dtype of the little-endian samples, offset, scale to [-1, 1))
_PCM = {1: ("u1", 128, 2.0**7), 2: ("<i2", 0, 2.0**15), 4: ("<i4", 0, 2.0**31)}


def _read_wav(path: Path) -> InputFile:
    try:
        with wave.open(str(path), "rb") as reader:
            channels, width, rate, frames = (reader.getnchannels(), reader.getsampwidth(),
                                             reader.getframerate(), reader.getnframes())
            raw = reader.readframes(frames)
    except (wave.Error, EOFError) as err:  # not RIFF/WAVE, not PCM (float or compressed), truncated header
        raise BadInput(f"input {path.name} is not a readable PCM .wav file: {_first_line(err)}") from None
    if width not in (1, 2, 3, 4) or channels < 1:
        raise BadInput(f"input {path.name}: {8 * width}-bit samples in {channels} channels are not supported",
                       hint="8, 16, 24 or 32-bit PCM")
    if len(raw) != frames * width * channels:
        raise BadInput(f"input {path.name} is damaged: its header promises {frames} frames, the data holds "
                       f"{len(raw) // (width * channels)}")
    if width == 3:  # 24-bit: widen each little-endian sample to 32 bits (low byte 0), then scale as 32-bit
        padded = np.zeros((len(raw) // 3, 4), np.uint8)
        padded[:, 1:] = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        samples = padded.view("<i4").reshape(-1).astype(np.float32) / np.float32(2.0**31)
    else:
        dtype, offset, scale = _PCM[width]
        samples = ((np.frombuffer(raw, dtype).astype(np.float32) - offset) / np.float32(scale))
    samples = samples.reshape(frames, channels)
    return InputFile(path, {None: samples[:, 0] if channels == 1 else samples}, sample_rate=rate)


_READERS = {".npy": _read_npy, ".npz": _read_npz, ".json": _read_json, ".wav": _read_wav}


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:200]
