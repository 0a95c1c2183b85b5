"""Real inputs for the third-party models of models/thirdparty.json (tests/test_thirdparty.py and
tools/thirdparty_table.py build them the same way).

  wav22k / wav16k  a real singing-voice recording (vocadito track 10, shipped in Basic Pitch's sdist), resampled
                   from 44.1 kHz to the model's rate (scipy's polyphase filter) and written as 16-bit PCM .wav
  face             Grace Hopper's face (matplotlib's sample photo), grey, 64x64, in the model's input range
  photo            the whole Grace Hopper portrait, RGB at the model's input size and range; `flower` (scikit-
                   learn's sample photo) is the no-person/no-face counterpart
  stream           spoken "okay nabu" as microWakeWord features, steps [T, 1, 3, 40]
                   (models/thirdparty/wakeword_features.npz, made by tools/make_wakeword_features.py)
  shaped           no real input exists for this stage alone: a seeded normal array of the input's shape

`cli_input(entry, details, directory)` writes the input file and returns the `tfedge-run run` arguments plus
the arrays a bare interpreter needs for the same inference.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "thirdparty"
RECORDING = CACHE / "basic-pitch" / "vocadito_10.wav"
WAKEWORD_FEATURES = ROOT / "models" / "thirdparty" / "wakeword_features.npz"
FACE_BOX = (165, 120, 355, 330)  # Grace Hopper's face in matplotlib's grace_hopper.jpg (left, top, right, bottom)
OFFSET_S = 2.0  # into the recording, where she sings


def read_wav(path: str | Path) -> tuple[int, np.ndarray]:
    """(rate, int16 samples) of a mono 16-bit PCM .wav."""
    with wave.open(str(path)) as wav:
        if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
            raise ValueError(f"{path}: mono 16-bit PCM expected")
        return wav.getframerate(), np.frombuffer(wav.readframes(wav.getnframes()), np.int16)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.asarray(samples, np.int16).tobytes())
    return Path(path)


def recording(rate: int, samples: int, offset_s: float = OFFSET_S) -> np.ndarray:
    """`samples` int16 samples of the real recording at `rate`, from `offset_s` seconds in."""
    from scipy.signal import resample_poly

    source_rate, source = read_wav(RECORDING)
    divisor = np.gcd(rate, source_rate)
    resampled = resample_poly(source.astype(np.float64), rate // divisor, source_rate // divisor)
    start = int(offset_s * rate)
    if start + samples > len(resampled):
        raise ValueError(f"the recording has {len(resampled) / rate:.1f} s, {offset_s + samples / rate:.1f} s asked")
    return np.clip(np.round(resampled[start:start + samples]), -32768, 32767).astype(np.int16)


def audio_windows(count: int, samples: int, rate: int) -> np.ndarray:
    """`count` windows [count, samples, 1] float32 in [-1, 1) spread over the recording (calibration data)."""
    source_rate, source = read_wav(RECORDING)
    total = len(source) / source_rate - samples / rate
    offsets = np.linspace(0.2, total - 0.05, count)
    return np.stack([recording(rate, samples, offset)[:, None] / 32768.0 for offset in offsets]).astype(np.float32)


def photo(name: str = "hopper"):
    """A real photo as a PIL RGB image: 'hopper' (a portrait) or 'flower' (no person)."""
    from PIL import Image

    if name == "hopper":
        from matplotlib import cbook

        return Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    from sklearn.datasets import load_sample_image

    return Image.fromarray(load_sample_image("flower.jpg"))


def image_array(image, height: int, width: int, channels: int, value_range) -> np.ndarray:
    """[1, height, width, channels] float32 scaled from 0..255 to value_range (grey when channels == 1)."""
    image = image.convert("L" if channels == 1 else "RGB").resize((width, height))
    low, high = value_range
    array = np.asarray(image, np.float32).reshape(height, width, channels) / 255.0 * (high - low) + low
    return array[None]


def face_crops(count: int, size: int = 64, value_range=(-1, 1)) -> np.ndarray:
    """[count, size, size, 1]: Grace Hopper's face, grey, shifted/scaled/mirrored a little (calibration data)."""
    from PIL import ImageOps

    image, rng = photo("hopper"), np.random.default_rng(0)
    left, top, right, bottom = FACE_BOX
    crops = []
    for index in range(count):
        shift = rng.integers(-12, 13, size=2)
        grow = int(rng.integers(-15, 16))
        box = (left + shift[0] - grow, top + shift[1] - grow, right + shift[0] + grow, bottom + shift[1] + grow)
        crop = image.crop(tuple(int(v) for v in box))
        crops.append(image_array(ImageOps.mirror(crop) if index % 2 else crop, size, size, 1, value_range)[0])
    return np.stack(crops)


def wakeword_steps(phrase: str = "okay_nabu") -> np.ndarray:
    with np.load(WAKEWORD_FEATURES) as data:
        return data[phrase]


def bare_details(path: str | Path) -> dict:
    """A bare LiteRT interpreter's view of a model, not allocated: {"inputs": [...], "outputs": [...],
    "ops": set}; each tensor detail gains "key", its signature name (else its tensor name)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    signatures = interpreter.get_signature_list()
    by_index = {}
    for name in signatures:
        runner_details = interpreter._get_full_signature_list()[name]  # {"inputs": {key: index}, ...}
        for group in ("inputs", "outputs"):
            by_index.update({index: key for key, index in runner_details[group].items()})
    views = {}
    for group, details in (("inputs", interpreter.get_input_details()), ("outputs", interpreter.get_output_details())):
        views[group] = [{**d, "key": by_index.get(d["index"], d["name"])} for d in details]
    views["ops"] = {op["op_name"] for op in interpreter._get_ops_details()}
    views["interpreter"] = interpreter
    return views


def cli_input(entry: dict, details: list[dict], directory: Path) -> tuple[list[str], list[dict]]:
    """(`tfedge-run run` arguments, the steps a bare interpreter feeds: [{input index: array}]) for the
    entry's model, whose bare-interpreter input details (bare_details) are `details`."""
    kind = entry.get("run_input", "shaped")
    directory.mkdir(parents=True, exist_ok=True)
    first = details[0]
    if kind in ("wav22k", "wav16k"):
        rate = 22050 if kind == "wav22k" else 16000
        samples = int(first["shape_signature"][1]) if first["shape_signature"][1] > 0 else rate
        wave_int16 = recording(rate, samples)
        path = write_wav(directory / f"{entry['name']}.wav", wave_int16, rate)
        shape = [1, samples] + [1] * (len(first["shape_signature"]) - 2)
        args = ["--input", str(path)]
        if any(d < 0 for d in first["shape_signature"][1:]):
            args += ["--input-shape", f"{first['key']}:{','.join(map(str, shape))}"]
        return args, [{first["index"]: (wave_int16 / 32768.0).astype(np.float32).reshape(shape)}]
    if kind == "stream":
        steps = wakeword_steps()
        path = directory / f"{entry['name']}.npy"
        np.save(path, steps)
        return ["--input", str(path), "--stream"], [{first["index"]: step} for step in steps]
    if kind in ("face", "photo"):
        _, height, width, channels = (int(d) for d in first["shape"])
        if kind == "face":
            array = face_crops(1, height, entry["input_range"])
        else:
            array = image_array(photo("hopper"), height, width, channels, entry["input_range"])
        path = directory / f"{entry['name']}.npy"
        np.save(path, array)
        return ["--input", str(path)], [{first["index"]: array}]
    arrays = {d["index"]: np.random.default_rng(0).normal(size=[max(1, int(x)) for x in d["shape_signature"]])
              .astype(d["dtype"]) for d in details}
    path = directory / f"{entry['name']}.npz"
    np.savez(path, **{d["key"]: arrays[d["index"]] for d in details})
    return ["--input", str(path)], [arrays]
