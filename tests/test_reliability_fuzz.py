"""Fuzzed model files through `tfedge-run info` and `classify`: 0 crashes, every case a clean error or a result.

Bounded in count and time (150 mutants or 90 s, whichever comes first; each mutant runs both commands);
the counts are printed (`pytest -s` shows them). `tools/fuzz_models.py --count 1000` is the long run.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "fuzz_models.py"
MUTANTS, SECONDS = 150, 90.0


@pytest.fixture(scope="module")
def fuzz_models():
    spec = importlib.util.spec_from_file_location("fuzz_models", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fuzzed_models_never_crash_tfedge_run(fuzz_models, digits_int8, digits_float, digits_dir, tmp_path):
    report = fuzz_models.fuzz([digits_int8, digits_float],
                              digits_dir / "images" / "digit_3.png", MUTANTS, seed=11, work=tmp_path,
                              time_limit=SECONDS)
    print(f"\nfuzz: {report['mutants']} mutants tried, {report['runs']} tfedge-run runs, "
          f"{report['crashes']} crashes in {report['seconds']} s")
    print(json.dumps(report["by_kind"]))
    assert report["crashes"] == 0, report["crash_cases"]
    assert report["mutants"] >= 40, report  # the time bound must still leave a meaningful sample
    outcomes = {outcome for counts in report["by_kind"].values() for outcome in counts}
    assert outcomes == {"valid", "clean-error"}  # both kinds seen: the mutants are neither all fatal nor all benign


def test_fuzzed_models_as_separate_processes(fuzz_models, digits_float, digits_dir, tmp_path):
    """A few cases as real `tfedge-run` processes, exactly as a user runs them."""
    report = fuzz_models.fuzz([digits_float], digits_dir / "images" / "digit_3.png", 6, seed=5, work=tmp_path,
                              subprocess_each=True)
    print(f"\nfuzz (one process per run): {report['mutants']} mutants, {report['crashes']} crashes")
    assert report["crashes"] == 0, report["crash_cases"]


@pytest.mark.parametrize("code,stderr,expected", [
    (0, "", "valid"),
    (2, "tfedge-run: error: not a TFLite model", "clean-error"),
    (3, "tfedge-run: error: no runtime", "clean-error"),
    (1, "tfedge-run: internal error: KeyError", "crash"),
    (-11, "", "crash"),
    (2, "Traceback (most recent call last):\ntfedge-run: error: x", "crash"),
    (None, "harness died", "crash"),
])
def test_verdicts(fuzz_models, code, stderr, expected):
    assert fuzz_models.verdict(code, stderr) == expected


def pil_decodes(path: Path) -> bool:
    """The oracle: PIL (no tfedge code) opens the file, decodes every pixel and converts it to RGB."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            image.convert("RGB")
        return True
    except Exception:  # noqa: BLE001 - any refusal by PIL counts as "not an image"
        return False


def test_fuzzed_images_are_a_result_or_bad_input(fuzz_models, digits_dir, tmp_path):
    """Damaged PNG, JPEG, GIF, BMP, WebP and TIFF files through load_image: a result exactly when PIL alone
    can decode the file, else BadInput naming the file; never another exception."""
    import io
    import random
    import warnings

    import numpy as np
    from PIL import Image
    from tfedge_device.errors import BadInput
    from tfedge_device.preprocess import ImageSpec, load_image

    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    originals = {"png": (digits_dir / "images" / "digit_3.png").read_bytes()}
    for kind in ("JPEG", "GIF", "BMP", "WEBP", "TIFF"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, kind)
        originals[kind.lower()] = buffer.getvalue()
    rng, outcomes, disagreements = random.Random(4), {"ok": 0, "bad": 0}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # PIL's "Corrupt EXIF data" and the like
        for i in range(300):
            suffix = list(originals)[i % len(originals)]
            data = originals[suffix]
            mutate = list(fuzz_models.MUTATORS.values())[(i // len(originals)) % len(fuzz_models.MUTATORS)]
            path = tmp_path / f"m{i}.{suffix}"
            path.write_bytes(mutate(data, rng, list(range(min(len(data), 8), len(data)))))
            decodable = pil_decodes(path)
            try:
                image = load_image(path, ImageSpec(8, 8, 3))
                outcomes["ok"] += 1
                if not decodable or image.shape != (8, 8, 3) or not np.isfinite(image).all():
                    disagreements.append((path.name, "loaded", image.shape))
            except BadInput as err:
                outcomes["bad"] += 1
                if decodable or path.name not in str(err):
                    disagreements.append((path.name, "refused", str(err)))
    print(f"\nimage fuzz: 300 damaged images, {outcomes['ok']} decoded, {outcomes['bad']} refused as BadInput")
    assert disagreements == []
    assert outcomes["ok"] > 0 and outcomes["bad"] > 0  # the mutants are neither all fatal nor all benign
