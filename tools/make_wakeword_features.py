#!/usr/bin/env python3
"""Make models/thirdparty/wakeword_features.npz: spoken phrases as microWakeWord's streaming input.

microWakeWord models (pymicro-wakeword's okay_nabu.tflite) take 3 frames x 40 channels of the TFLite Micro
audio frontend per step (30 ms of 16 kHz audio) and keep the rest of the utterance in resource variables.
Random or constant features never wake them (score 0), so the stateful test needs speech: espeak-ng speaks
each phrase (synthetic speech, as microWakeWord itself is trained on), the real frontend (PyPI
pymicro-features, the one pymicro-wakeword uses) turns it into features, and the result is stored as float32
steps [T, 1, 3, 40] per phrase, with 0.5 s of silence before and after.

A developer tool, not run by tests or tools/setup: it needs `apt-get install espeak-ng` and
`pip install pymicro-features` (into any environment; e.g. `pip install --target /tmp/pmf pymicro-features`
then PYTHONPATH=/tmp/pmf). Usage: python tools/make_wakeword_features.py [--out PATH]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "models" / "thirdparty" / "wakeword_features.npz"
PHRASES = {"okay_nabu": "okay nabu", "hello_world": "hello world"}
RATE = 16000
CHUNK = 160  # samples per frontend call: 10 ms, as pymicro-wakeword feeds it (one feature frame per call)
FRAMES_PER_STEP = 3  # okay_nabu.tflite input [1, 3, 40]


def speak(text: str) -> np.ndarray:
    """espeak-ng's 22.05 kHz speech of `text`, resampled to 16 kHz int16 with 0.5 s of silence around."""
    from scipy.signal import resample_poly

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        with wave.open(str(path)) as wav:
            rate = wav.getframerate()
            samples = np.frombuffer(wav.readframes(wav.getnframes()), np.int16).astype(np.float64)
    samples = resample_poly(samples, RATE, rate)
    silence = np.zeros(RATE // 2)
    return np.clip(np.round(np.concatenate([silence, samples, silence])), -32768, 32767).astype(np.int16)


def features(samples: np.ndarray) -> np.ndarray:
    """The TFLite Micro frontend's 40-channel frames of 16 kHz int16 audio, as steps [T, 1, 3, 40]."""
    from pymicro_features import MicroFrontend

    frontend, frames = MicroFrontend(), []
    pcm = samples.tobytes()
    for start in range(0, len(pcm) - 2 * CHUNK + 1, 2 * CHUNK):  # int16: 2 bytes a sample
        result = frontend.process_samples(pcm[start:start + 2 * CHUNK])
        if result.features:
            frames.append(np.asarray(result.features, np.float32))
    steps = len(frames) // FRAMES_PER_STEP
    return np.stack(frames[:steps * FRAMES_PER_STEP]).reshape(steps, 1, FRAMES_PER_STEP, 40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: features(speak(text)) for name, text in PHRASES.items()}
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: " + ", ".join(f"{name} {array.shape}" for name, array in arrays.items()))


if __name__ == "__main__":
    main()
