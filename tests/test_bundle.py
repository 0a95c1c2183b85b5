"""tfedge bundle and tfedge-run verify: real digits models, real LiteRT, bundles as directories and zips.

Edge TPU variants: no Edge TPU compiler or libedgetpu can be installed here, so `fake_edgetpu` is crafted
(edgetpu_models.py): the digits model's I/O tensors around one `edgetpu-custom-op` operator, the shape
edgetpu_compiler gives it (tfedge recognises compiled models by that operator code). It exercises variant
selection, never a compilation.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error
from edgetpu_models import edgetpu_twin

from tfedge import __version__ as tfedge_version


@pytest.fixture
def verify(tfedge_run):
    return lambda *args: tfedge_run("verify", *args)


@pytest.fixture(scope="module")
def fake_edgetpu(digits_int8, tmp_path_factory) -> Path:
    """TEST DOUBLE of a compiled model (see the module docstring)."""
    path = tmp_path_factory.mktemp("edgetpu") / "digits_int8_edgetpu.tflite"
    path.write_bytes(edgetpu_twin(digits_int8.read_bytes()))
    return path


@pytest.fixture(scope="module")
def bundled(digits_int8, digits_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundled") / "digits.tfedge"
    from tfedge.ship.bundle import BundleRequest, bundle

    bundle(BundleRequest(models=[digits_int8], output=out, sample=digits_dir / "images" / "digit_3.png"))
    return out


def converter_min_runtime(model: Path) -> str:
    """The converter's min_runtime_version metadata, read with the `tflite` schema package (not tfedge's reader)."""
    import tflite

    data = model.read_bytes()
    flat = tflite.Model.GetRootAsModel(data, 0)
    for i in range(flat.MetadataLength()):
        if flat.Metadata(i).Name() == b"min_runtime_version":
            return bytes(flat.Buffers(flat.Metadata(i).Buffer()).DataAsNumpy()).rstrip(b"\0").decode()
    raise AssertionError(f"{model.name} has no min_runtime_version metadata")


def test_bundle_directory_holds_model_manifest_labels_sample_and_checksums(tfedge, digits_int8, digits_dir,
                                                                            tmp_path):
    out = tmp_path / "digits.tfedge"
    result = tfedge("bundle", digits_int8, "-o", out, "--sample", digits_dir / "images" / "digit_3.png", "--json")
    assert result.returncode == 0, result
    summary = json.loads(result.stdout)
    assert summary["variants"] == {"cpu": digits_int8.name} and summary["sample"] == "digit_3.png"
    names = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert names == sorted(["SHA256SUMS", "bundle.json", digits_int8.name, digits_int8.with_suffix(".json").name,
                            "labels.txt", "sample/expected.npz", "sample/input.npz"])
    assert len((out / "SHA256SUMS").read_text().splitlines()) == len(names) - 1  # every file but itself
    data = json.loads((out / "bundle.json").read_text())
    cpu = data["variants"]["cpu"]
    assert "CONV_2D v3" in cpu["ops"] and cpu["min_runtime_version"] == converter_min_runtime(digits_int8)
    assert data["requires"]["min_runtime_release"] == cpu["min_release"]  # one variant: its own needs
    assert data["versions"]["tfedge"] == tfedge_version
    assert data["preprocess"]["image"]["preset"] == "unit"
    assert data["inputs"][0]["dtype"] == "int8" and data["inputs"][0]["zero_point"] == -128  # I/O quantization
    assert data["inputs"][0]["scale"] == pytest.approx(1 / 255, rel=1e-6)  # images in [0, 1], calibrated
    assert (out / "labels.txt").read_text().splitlines() == (digits_dir / "labels.txt").read_text().splitlines()
    assert data["sample"]["tolerance"]["cpu"]["steps"] == 1


def test_stored_sample_is_the_image_and_its_expected_output_is_the_models(bundled, digits_int8, digits_dir):
    from tfedge_device.bundle import load_arrays
    from tfedge_device.model import Model
    from tfedge_device.preprocess import ImageSpec, load_image

    image = load_image(digits_dir / "images" / "digit_3.png", ImageSpec(8, 8, 1, "unit"))
    (stored,) = load_arrays(bundled / "sample" / "input.npz")
    np.testing.assert_array_equal(stored[0], image)
    (expected,) = load_arrays(bundled / "sample" / "expected.npz")
    np.testing.assert_array_equal(expected, Model(digits_int8).predict(stored)[0])
    assert int(np.argmax(expected)) == 3


def test_verify_passes_on_a_good_bundle(verify, bundled):
    result = verify(bundled)
    assert result.returncode == 0, result
    assert "checksums  ok (6 files)" in result.stdout and "matches (digit_3.png)" in result.stdout
    assert "cpu (the bundle has no Edge TPU variant)" in result.stdout
    assert result.stdout.strip().endswith("ok")


def test_zip_bundle_verifies_and_resolves_to_its_model(tfedge, verify, digits_int8, tmp_path):
    from tfedge_device.bundle import open_model_path

    out = tmp_path / "digits.tfedge.zip"
    assert tfedge("bundle", digits_int8, "-o", out, "--zip").returncode == 0
    assert zipfile.is_zipfile(out)
    assert verify(out, "--json").returncode == 0
    opened = open_model_path(out)
    assert opened.model_path.name == digits_int8.name and not opened.edgetpu
    assert opened.manifest["labels"][3] == "3" and "cpu variant" in opened.note


def test_npy_sample_and_random_default(tfedge, digits_int8, digits_test, tmp_path):
    x, _ = digits_test
    np.save(tmp_path / "one.npy", x[0])  # without the batch dimension: added
    out = tmp_path / "a.tfedge"
    assert tfedge("bundle", digits_int8, "-o", out, "--sample", tmp_path / "one.npy").returncode == 0
    assert json.loads((out / "bundle.json").read_text())["sample"]["origin"] == "one.npy"
    out_random = tmp_path / "b.tfedge"
    assert tfedge("bundle", digits_int8, "-o", out_random).returncode == 0
    assert json.loads((out_random / "bundle.json").read_text())["sample"]["origin"] == "random (seed 0)"


def test_rebundling_replaces_a_bundle_atomically(tfedge, digits_int8, tmp_path):
    out = tmp_path / "digits.tfedge"
    assert tfedge("bundle", digits_int8, "-o", out).returncode == 0
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{i}: digit {i}\n" for i in range(10)))
    assert tfedge("bundle", digits_int8, "-o", out, "--labels", labels).returncode == 0
    assert (out / "labels.txt").read_text().startswith("digit 0\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.tfedge", "labels.txt"]  # no temp left


# ---------------------------------------------------------------- variants (Edge TPU test double)

def test_cpu_variant_is_chosen_when_the_edgetpu_delegate_is_missing(tfedge, verify, digits_int8, fake_edgetpu,
                                                                    tmp_path):
    from tfedge_device.bundle import open_model_path

    out = tmp_path / "both.tfedge"
    result = tfedge("bundle", digits_int8, fake_edgetpu, "-o", out, "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["variants"] == {"cpu": digits_int8.name, "edgetpu": fake_edgetpu.name}
    checked = verify(out)
    assert checked.returncode == 0, checked
    assert "cpu (Edge TPU delegate not available" in checked.stdout
    opened = open_model_path(out)
    assert opened.model_path.name == digits_int8.name and "libedgetpu" in opened.note
    assert_clean_error(verify(out, "--edgetpu"), 3, "Edge TPU delegate")


def test_edgetpu_only_bundle_needs_the_edgetpu_library(tfedge, verify, fake_edgetpu, tmp_path):
    out = tmp_path / "tpu.tfedge"
    result = tfedge("bundle", fake_edgetpu, "-o", out)
    assert result.returncode == 0, result
    assert "no CPU model" in result.stderr
    assert_clean_error(verify(out), 3, "only an Edge TPU variant", "libedgetpu")
    assert_clean_error(verify(out, "--cpu"), 2, "only an Edge TPU variant")


# ---------------------------------------------------------------- damaged bundles and bad inputs

@pytest.mark.parametrize("damage", ["edit", "delete", "sums"])
def test_damaged_bundle_exits_2(verify, bundled, digits_int8, tmp_path, damage):
    from tfedge_device.bundle import open_model_path
    from tfedge_device.errors import BadInput

    copy = tmp_path / "digits.tfedge"
    shutil.copytree(bundled, copy)
    model = copy / digits_int8.name
    if damage == "edit":
        data = bytearray(model.read_bytes())
        data[-100] ^= 0xFF
        model.write_bytes(bytes(data))
        words = ("checksum of", digits_int8.name, "does not match")
    elif damage == "delete":
        model.unlink()
        words = ("incomplete", digits_int8.name, "missing")
    else:
        (copy / "SHA256SUMS").write_text("nonsense\n")
        words = ("SHA256SUMS line 1",)
    assert_clean_error(verify(copy), 2, *words)
    with pytest.raises(BadInput):
        open_model_path(copy)  # what every tfedge-run command uses for a bundle


def test_sample_mismatch_exits_4(verify, bundled, tmp_path):
    from tfedge_device.bundle import CHECKSUMS, checksum_lines, load_arrays, save_arrays
    from tfedge_device.fileio import sha256_file

    copy = tmp_path / "digits.tfedge"
    shutil.copytree(bundled, copy)
    (expected,) = load_arrays(copy / "sample" / "expected.npz")
    save_arrays(copy / "sample" / "expected.npz", [expected[:, ::-1]], "output")
    sums = {p.relative_to(copy).as_posix(): sha256_file(p) for p in copy.rglob("*")
            if p.is_file() and p.name != CHECKSUMS}
    (copy / CHECKSUMS).write_text(checksum_lines(sums))
    assert_clean_error(verify(copy), 4, "differs from the expected one", "tolerance")


def test_verify_refuses_what_is_not_a_bundle(verify, digits_int8, tmp_path):
    assert_clean_error(verify(tmp_path / "missing.tfedge"), 2, "bundle not found")
    assert_clean_error(verify(tmp_path), 2, "not a tfedge bundle")
    assert_clean_error(verify(digits_int8), 2, "not a tfedge bundle")


def test_bundle_bad_inputs(tfedge, digits_int8, digits_float, fake_edgetpu, digits_dir, tmp_path):
    not_model = tmp_path / "x.tflite"
    not_model.write_text("hello")
    assert_clean_error(tfedge("bundle", not_model, "-o", tmp_path / "a.tfedge"), 2, "not a TFLite model")
    assert_clean_error(tfedge("bundle", digits_int8, digits_float, "-o", tmp_path / "b.tfedge"), 2,
                       "two cpu models")
    keep = tmp_path / "important"
    keep.mkdir()
    (keep / "file.txt").write_text("keep me")
    assert_clean_error(tfedge("bundle", digits_int8, "-o", keep), 2, "refusing to replace", "not a tfedge bundle")
    assert (keep / "file.txt").read_text() == "keep me"
    bad_shape = tmp_path / "bad.npy"
    np.save(bad_shape, np.zeros((3, 3), np.float32))
    assert_clean_error(tfedge("bundle", digits_int8, "-o", tmp_path / "c.tfedge", "--sample", bad_shape), 2,
                       "--sample for input", "[1, 8, 8, 1]")
    assert_clean_error(tfedge("bundle", digits_int8, "-o", tmp_path / "d.tfedge", "--sample",
                              tmp_path / "nope.png"), 2, "--sample not found")
    short = tmp_path / "short.txt"
    short.write_text("a\nb\n")
    assert_clean_error(tfedge("bundle", digits_int8, "-o", tmp_path / "e.tfedge", "--labels", short), 2,
                       "2 labels", "10 classes")
    assert_clean_error(tfedge("bundle", fake_edgetpu, "-o", tmp_path / "f.tfedge", "--sample",
                              digits_dir / "images" / "digit_3.png"), 2, "--sample needs a CPU model")
    assert_clean_error(tfedge("bundle", digits_int8, "-o", tmp_path / "no" / "g.tfedge"), 2,
                       "output directory does not exist")
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_files_the_manifest_names_travel_with_the_model(tfedge, digits_int8, tmp_path):
    """Text models: convert writes tokenizer files beside the model and names them in its manifest."""
    from tfedge_device.manifest import read_manifest, write_manifest

    model = tmp_path / "text.tflite"
    shutil.copy(digits_int8, model)
    manifest = read_manifest(digits_int8)
    for key in ("format", "model", "model_sha256"):
        manifest.pop(key)
    write_manifest(model, {**manifest, "tokenizer": {"file": "tokenizer.json", "max_length": 128}})
    (tmp_path / "tokenizer.json").write_text('{"model": {"type": "WordPiece"}}')
    (tmp_path / "unrelated.txt").write_text("not named by the manifest")
    extra = tmp_path / "README.txt"
    extra.write_text("how to use this model")
    out = tmp_path / "text.tfedge"
    result = tfedge("bundle", model, "-o", out, "--extra", extra, "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["extra_files"] == ["README.txt", "tokenizer.json"]
    assert (out / "tokenizer.json").read_text() == (tmp_path / "tokenizer.json").read_text()
    assert not (out / "unrelated.txt").exists()
    assert "tokenizer.json" in (out / "SHA256SUMS").read_text()


def test_every_tfedge_run_command_takes_a_bundle(tfedge_run, bundled, digits_dir, tmp_path):
    image = digits_dir / "images" / "digit_3.png"
    classified = tfedge_run("classify", bundled, "--input", image)
    assert classified.returncode == 0, classified
    assert "3: 0.9" in classified.stdout
    assert "bundle digits: running the cpu variant" in classified.stderr  # it says which variant
    info = tfedge_run("info", bundled, "--json")
    assert info.returncode == 0, info
    assert json.loads(info.stdout)["model"]["loaded"] is True
    bench = tfedge_run("bench", bundled, "--runs", "5", "--warmup", "1")
    assert bench.returncode == 0 and "count=5 " in bench.stdout, bench
    damaged = tmp_path / "digits.tfedge"
    shutil.copytree(bundled, damaged)
    (damaged / "labels.txt").write_text("x\n")
    assert_clean_error(tfedge_run("classify", damaged, "--input", image), 2, "checksum of labels.txt")
