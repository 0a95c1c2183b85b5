"""tfedge-run classify / info / bench: the real digits int8 model on real LiteRT, through the console script.

Results of `tfedge-run classify` are checked against the host's verification path (tfedge_device.model.Model
on the same preprocessed inputs). Every bad input handled is checked for its exit code, one line, no traceback.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error, without_module
from edgetpu_models import edgetpu_twin
from PIL import Image


def host_scores(model_path: Path, images: list[Path]) -> list[np.ndarray]:
    """The host's verification path: Model.predict on the manifest's preprocessing."""
    from tfedge_device.manifest import read_manifest
    from tfedge_device.model import Model
    from tfedge_device.preprocess import ImageSpec, load_image

    model = Model(model_path)
    spec = ImageSpec.from_dict(read_manifest(model_path)["preprocess"]["image"])
    return [model.predict(load_image(path, spec)[None])[0].reshape(-1) for path in images]


def classify_json(tfedge_run, model, *inputs, extra=()) -> dict:
    result = tfedge_run("classify", model, "-i", *inputs, "-k", "10", "-t", "0", "--json", *extra)
    assert result.returncode == 0, result
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def images(digits_dir) -> list[Path]:
    return sorted((digits_dir / "images").glob("digit_*.png"))


def test_classify_matches_host_verification_and_labels(tfedge_run, digits_int8, digits_dir, images):
    report = classify_json(tfedge_run, digits_int8, digits_dir / "images")
    assert report["manifest"] == "digits_int8.json" and report["preprocess"]["from"] == "manifest"
    assert report["runtime"].startswith("litert ")
    assert [Path(r["image"]).name for r in report["results"]] == [p.name for p in images]
    for result, path, expected in zip(report["results"], images, host_scores(digits_int8, images)):
        scores = np.zeros(10, np.float32)
        for c in result["classes"]:
            scores[c["id"]] = c["score"]
            assert c["label"] == str(c["id"])  # the manifest's labels
        np.testing.assert_allclose(scores, expected, atol=1e-6)  # JSON keeps 6 decimals
        assert result["classes"][0]["id"] == int(path.stem.split("_")[1])
        assert [c["score"] for c in result["classes"]] == sorted(
            (c["score"] for c in result["classes"]), reverse=True
        )
    assert report["summary"]["images"] == 10 and report["summary"]["steady_runs"] == 9


def test_single_image_prints_pycoral_layout_with_count(tfedge_run, digits_int8, images):
    result = tfedge_run(
        "classify", "-m", digits_int8, "-i", images[3], "-c", "3", "-k", "2"
    )  # pycoral's flags
    assert result.returncode == 0, result
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "----INFERENCE TIME----" and lines[4] == "-------RESULTS--------", result
    assert all(line.endswith("ms") for line in lines[1:4])
    assert lines[5].startswith("3: 0.99")
    assert "Edge TPU" not in result.stdout


def test_folder_prints_a_line_per_image_and_the_timing_summary(tfedge_run, digits_int8, digits_dir):
    result = tfedge_run(
        "classify", digits_int8, "--input", digits_dir / "images", "--top-k", "1", "--count", "2"
    )
    assert result.returncode == 0, result
    lines = result.stdout.strip().splitlines()
    assert len([line for line in lines if ".png: first " in line]) == 10
    assert (
        "----INFERENCE TIME----" in lines and "10 images: first" in lines[-1] and "over 19 runs" in lines[-1]
    )


def test_labels_file_overrides_manifest_and_short_labels_are_refused(
    tfedge_run, digits_int8, images, tmp_path
):
    labels = tmp_path / "names.txt"
    labels.write_text(
        "".join(
            f"{i}: digit {name}\n"
            for i, name in enumerate(
                ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
            )
        )
    )
    report = classify_json(tfedge_run, digits_int8, images[7], extra=("-l", labels))
    assert report["results"][0]["classes"][0]["label"] == "digit seven" and report["labels"] == str(labels)
    labels.write_text("a\nb\n")
    assert_clean_error(
        tfedge_run("classify", digits_int8, "-i", images[0], "-l", labels), 2, "2 labels", "10 classes"
    )


def test_without_manifest_preprocessing_is_derived_from_the_input_tensor(
    tfedge_run, digits_int8, images, tmp_path
):
    bare = tmp_path / "bare.tflite"
    shutil.copy(digits_int8, bare)
    report = classify_json(tfedge_run, bare, *images)
    assert (
        report["manifest"] is None and report["preprocess"]["preset"] == "unit"
    )  # int8 scale 1/255, zp -128
    assert report["preprocess"]["from"].startswith("input tensor") and report["labels"] == "none (class ids)"
    with_manifest = classify_json(tfedge_run, digits_int8, *images)
    assert [r["classes"] for r in report["results"]] == [r["classes"] for r in with_manifest["results"]]
    overridden = classify_json(
        tfedge_run, bare, images[0], extra=("--preset", "mobilenet", "--resize", "nearest")
    )
    assert (
        overridden["preprocess"]["preset"] == "mobilenet"
        and "--preset mobilenet" in overridden["preprocess"]["from"]
    )


def test_info_shows_runtime_tensors_quantization_and_manifest(tfedge_run, digits_int8):
    text = tfedge_run("info", digits_int8)
    assert text.returncode == 0, text
    assert "litert" in text.stdout and "int8 scale 0.00392157 zero_point -128 (real 0..1)" in text.stdout
    assert "CPU model (no Edge TPU custom op)" in text.stdout and "task image-classification" in text.stdout
    info = json.loads(tfedge_run("info", digits_int8, "--json").stdout)
    assert info["runtime"]["runtime"] == "litert" and info["model"]["needs_edgetpu_delegate"] is False
    assert info["model"]["inputs"][0]["real_range"] == [0.0, 1.0]
    assert info["manifest"]["labels"] == [str(i) for i in range(10)]
    # read without allocating: the shape signature (static here) and the SignatureDef names
    assert info["model"]["inputs"][0]["shape_signature"] == [1, 8, 8, 1]
    assert info["model"]["inputs"][0]["signature_name"] and info["model"]["outputs"][0]["signature_name"]
    assert "default_shape" not in info["model"]["inputs"][0]  # only dynamic inputs get one


def test_bench_reports_benchmark_model_statistics(tfedge_run, digits_int8):
    started = time.perf_counter()
    result = tfedge_run("bench", digits_int8, "--runs", "20", "--warmup", "2", "--threads", "1", "--json")
    elapsed_us = (time.perf_counter() - started) * 1e6  # the whole process: every timed phase fits in it
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    stats = report["inference"]
    assert (
        stats["count"] == 20 and stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    )
    phases_us = report["init_us"] + report["first_inference_us"] + 2 * report["warmup_avg_us"] + 20 * stats["avg"]
    assert 0 < report["init_us"] and 0 < report["first_inference_us"] and 0 < report["warmup_avg_us"]
    assert phases_us < elapsed_us, (phases_us, elapsed_us)
    # the peak is at least every resident size measured on the way (KiB vs bytes would break this)
    assert report["peak_rss_mb"] >= max(report["rss_start_mb"], report["rss_after_init_mb"]), report
    assert "approximate" in report["memory_note"]
    assert report["model_size_bytes"] == digits_int8.stat().st_size
    assert report["input_shapes"] == [[1, 8, 8, 1]]
    text = tfedge_run("bench", digits_int8, "--runs", "5")
    assert "count=5 first=" in text.stdout and "Inference timings in us: Init:" in text.stdout, text


def test_benchmark_library_core(digits_int8, tmp_path, monkeypatch):
    from tfedge_device import bench, doctor
    from tfedge_device.model import Model

    loaded = bench.benchmark(Model(digits_int8), runs=3, warmup=0)
    assert loaded["init_us"] is None and loaded["warmup_avg_us"] is None and loaded["inference"]["count"] == 3
    for governor, warns in (("powersave", True), ("performance", False)):
        cpufreq = tmp_path / "sys" / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
        cpufreq.mkdir(parents=True, exist_ok=True)
        (cpufreq / "scaling_governor").write_text(governor + "\n")
        monkeypatch.setattr(doctor, "SYSTEM_ROOT", tmp_path)  # a fake sysfs tree
        assert (bench.governor_warning() is not None) == warns
        assert (
            "WARNING: CPU frequency governor"
            in bench.format_result(bench.benchmark(digits_int8, runs=2, warmup=1))
        ) == warns


# -- bad inputs: exit code, one line, no traceback --------------------------------------------------------------


def png_bytes(mode: str, size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """An 8x8 PNG whose header claims width x height (IHDR patched, CRC recomputed): a decompression bomb."""
    data = bytearray(png_bytes("L"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


BAD_IMAGES = {
    "empty.png": (b"", "cannot read image empty.png"),
    "notes.png": (b"these are not pixels\n" * 10, "cannot read image notes.png"),
    "bomb.png": (png_claiming(30000, 30000), "bomb.png"),
    "large.png": (png_claiming(9000, 9000), "larger than 64 Mpx"),
    "deep.png": (png_bytes("I;16"), "16-bit or float"),
}


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_bad_images_are_one_line_errors(tfedge_run, digits_int8, tmp_path, name):
    data, words = BAD_IMAGES[name]
    (tmp_path / name).write_bytes(data)
    assert_clean_error(tfedge_run("classify", digits_int8, "-i", tmp_path / name), 2, words)


def test_truncated_image_is_a_one_line_error(tfedge_run, digits_int8, tmp_path):
    data = png_bytes("L", (64, 64))
    (tmp_path / "cut.png").write_bytes(data[: len(data) - 30])
    assert_clean_error(tfedge_run("classify", digits_int8, "-i", tmp_path / "cut.png"), 2, "cut.png")


def test_colour_images_are_converted_with_one_warning(tfedge_run, digits_int8, tmp_path):
    for i, mode in enumerate(("RGBA", "RGBA", "RGB")):
        (tmp_path / f"{i}.png").write_bytes(png_bytes(mode))
    result = tfedge_run("classify", digits_int8, "-i", tmp_path, "--json")
    assert result.returncode == 0, result
    assert result.stderr.count("lose their alpha channel") == 1 and result.stderr.count("grayscale") == 1, (
        result
    )
    assert len(json.loads(result.stdout)["results"]) == 3


def test_grayscale_into_an_rgb_input_is_replicated(digits_dir):
    from tfedge_device.preprocess import ImageSpec, load_image

    pixels = load_image(digits_dir / "images" / "digit_0.png", ImageSpec(8, 8, 3))
    assert pixels.shape == (8, 8, 3) and np.array_equal(pixels[..., 0], pixels[..., 2])


@pytest.mark.parametrize(
    "args, code, words",
    [
        (("classify", "{model}", "-i", "{tmp}/missing.png"), 2, ["input not found"]),
        (("classify", "{model}", "-i", "{tmp}"), 2, ["no images found"]),
        (("classify", "{tmp}/none.tflite", "-i", "{tmp}"), 2, ["not found"]),
        (("classify", "{model}"), 2, ["--input"]),
        (("classify", "-i", "{tmp}"), 2, ["no model given"]),
        (("info", "{model}", "-m", "{notmodel}"), 2, ["two models given"]),
        (("classify", "{model}", "-i", "{tmp}", "-k", "0"), 2, ["must be >= 1"]),
        (("bench", "{notmodel}"), 2, ["not a TFLite model"]),
        (("info", "{tmp}"), 2, ["directory"]),
        (("frobnicate",), 2, ["invalid choice"]),
    ],
)
def test_usage_and_path_errors(tfedge_run, digits_int8, tmp_path, args, code, words):
    (tmp_path / "notmodel.tflite").write_bytes(b"\x00" * 64)
    subst = {"model": digits_int8, "tmp": tmp_path, "notmodel": tmp_path / "notmodel.tflite"}
    assert_clean_error(tfedge_run(*(arg.format(**subst) for arg in args)), code, *words)


def test_missing_runtime_is_exit_3_naming_it(tfedge_run, digits_int8, images, tmp_path):
    # tflite_runtime unimportable whether or not it is installed here
    result = tfedge_run("classify", digits_int8, "-i", images[0],
                        env={"TFEDGE_RUNTIME": "tflite-runtime", **without_module(tmp_path, "tflite_runtime")})
    assert_clean_error(result, 3, "tflite-runtime is not installed", "pip install tflite-runtime")


# -- Edge TPU -------------------------------------------------------------------------------------------------
# No Edge TPU compiler or libedgetpu can be installed here. `compiled` is crafted (edgetpu_models.py): the
# digits model's I/O tensors around one `edgetpu-custom-op`, the shape edgetpu_compiler gives it. It proves
# tfedge-run's detection from the operator codes and its messages, not that a real compiled model runs.


@pytest.fixture(scope="module")
def compiled(digits_int8, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("edgetpu") / "digits_int8_edgetpu.tflite"
    path.write_bytes(edgetpu_twin(digits_int8.read_bytes()))
    return path


def test_edgetpu_model_without_delegate_says_so(tfedge_run, compiled, images):
    assert_clean_error(
        tfedge_run("classify", compiled, "-i", images[0]), 2, "compiled for the Edge TPU", "--edgetpu"
    )
    info = tfedge_run("info", compiled)
    assert info.returncode == 0 and "needs the Edge TPU delegate" in info.stdout, info


def test_edgetpu_flag_without_libedgetpu_is_exit_3_with_install_hint(
    tfedge_run, digits_int8, compiled, images
):
    for model in (digits_int8, compiled):
        result = tfedge_run("classify", model, "-i", images[0], "--edgetpu")
        assert_clean_error(result, 3, "libedgetpu.so.1", "libedgetpu1-std")
        assert "Exception ignored" not in result.stderr, result  # LiteRT's Delegate.__del__ traceback
    assert_clean_error(tfedge_run("bench", digits_int8, "--edgetpu"), 3, "Edge TPU")


def test_edgetpu_model_uses_the_cpu_models_manifest(digits_int8, compiled):
    from tfedge_device.classify import find_manifest

    sibling = compiled.with_name("digits_int8.tflite")
    shutil.copy(digits_int8, sibling)
    shutil.copy(digits_int8.with_suffix(".json"), sibling.with_suffix(".json"))
    manifest, origin = find_manifest(compiled)
    assert origin == "digits_int8.json" and manifest["preprocess"]["image"]["preset"] == "unit"


def test_top_k_breaks_ties_by_class_id_and_applies_the_threshold():
    from tfedge_device.classify import top_k

    scores = [0.1, 0.5, 0.2, 0.2, 0.0]
    assert [c.id for c in top_k(scores, 3, 0.0)] == [1, 2, 3]
    assert [(c.id, c.label) for c in top_k(scores, 9, 0.15, list("abcde"))] == [(1, "b"), (2, "c"), (3, "d")]


def test_reader_closing_the_pipe_is_quiet(digits_int8, digits_dir):
    import subprocess

    from conftest import VENV_BIN

    command = (
        f"'{VENV_BIN / 'tfedge-run'}' classify '{digits_int8}' -i '{digits_dir / 'images'}' "
        f"'{digits_dir / 'calib'}' | head -1"
    )
    result = subprocess.run(
        ["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.stdout.count("\n") == 1 and result.stderr == "", result.stderr
    assert result.returncode == 141
