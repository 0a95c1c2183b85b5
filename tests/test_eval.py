"""`tfedge eval`: top-1/top-5 of real converted digits models and the source on held-out data, image folders,
cosine to a reference, and every bad input with its exit code."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from conftest import assert_clean_error
from tfedge_device.model import Model


def _eval(tfedge, *args):
    result = tfedge("eval", *args, "--json")
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def test_int8_float_and_source_top1_on_held_out_digits(tfedge, digits_int8, digits_float, digits_dir):
    test = digits_dir / "test.npz"
    int8 = _eval(tfedge, digits_int8, "--data", test)
    floating = _eval(tfedge, digits_float, "--data", test)
    source = _eval(tfedge, digits_dir / "digits.keras", "--data", test)
    assert int8["samples"] == floating["samples"] == source["samples"] == 450
    assert source["kind"] == "source" and int8["kind"] == "tflite"
    assert floating["top1"] == pytest.approx(source["top1"], abs=1 / 450)  # float32 conversion is exact
    assert source["top1"] > 0.95 and floating["top5"] >= floating["top1"]
    assert abs(int8["top1"] - floating["top1"]) <= 0.02  # int8 drop on real data: at most 2 points


def test_top1_matches_a_direct_computation(digits_int8, digits_test, digits_dir):
    from tfedge.analysis.evaluate import evaluate

    x, y = digits_test
    model = Model(digits_int8)
    predicted = np.array([model.predict(x[i:i + 1])[0].argmax() for i in range(len(x))])
    result = evaluate(str(digits_int8), digits_dir / "test.npz")
    assert result["top1"] == pytest.approx(float(np.mean(predicted == y)))


def test_class_folders_use_the_manifest_preprocessing_and_labels(tfedge, digits_int8, digits_dir):
    result = _eval(tfedge, digits_int8, "--data", digits_dir / "calib", "--limit", 50)
    assert result["samples"] == 50 and result["top1"] > 0.9


def test_cosine_to_a_reference_variant_and_to_stored_outputs(tfedge, digits_int8, digits_float, digits_test,
                                                             tmp_path):
    x, _ = digits_test
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=x[:40])
    result = _eval(tfedge, digits_int8, "--data", inputs, "--reference", digits_float)
    assert result["top1"] is None and result["cosine_mean"] > 0.99 and result["top1_agreement"] >= 0.95
    model = Model(digits_float)
    stored = tmp_path / "stored.npz"
    np.savez(stored, x=x[:40], reference=np.concatenate([model.predict(x[i:i + 1])[0] for i in range(40)]))
    result = _eval(tfedge, digits_float, "--data", stored)
    assert result["cosine_min"] > 0.99999


def test_human_output(tfedge, digits_int8, digits_dir):
    result = tfedge("eval", digits_int8, "--data", digits_dir / "test.npz")
    assert result.returncode == 0, result
    figures = _eval(tfedge, digits_int8, "--data", digits_dir / "test.npz")
    rows = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in result.stdout.splitlines()}
    assert rows["top-1"] == f"{figures['top1'] * 100:.2f} %" and rows["top-5"] == f"{figures['top5'] * 100:.2f} %"
    assert rows["time"].endswith(f"for {figures['samples']} samples")


def test_bad_inputs(tfedge, digits_int8, digits_test, tmp_path, digits_dir):
    x, y = digits_test
    cases = []
    np.savez(tmp_path / "unlabelled.npz", x=x[:5])
    cases.append((tmp_path / "unlabelled.npz", "neither labels"))
    np.savez(tmp_path / "shape.npz", x=np.zeros((5, 4, 4, 1), np.float32), y=y[:5])
    cases.append((tmp_path / "shape.npz", "does not fit input"))
    np.savez(tmp_path / "count.npz", x=x[:5], y=y[:3])
    cases.append((tmp_path / "count.npz", "3 entries for 5 samples"))
    np.savez(tmp_path / "floaty.npz", x=x[:5], y=y[:5].astype(np.float32))
    cases.append((tmp_path / "floaty.npz", "integer class indices"))
    np.savez(tmp_path / "range.npz", x=x[:5], y=np.full(5, 42))
    cases.append((tmp_path / "range.npz", "10 classes"))
    np.savez(tmp_path / "named.npz", a=x[:5], y=y[:5])
    cases.append((tmp_path / "named.npz", "expected 'x'"))
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 broken")
    cases.append((tmp_path / "corrupt.npz", "cannot read"))
    (tmp_path / "data.txt").write_text("1 2 3")
    cases.append((tmp_path / "data.txt", "unsupported evaluation data"))
    cases.append((tmp_path / "missing.npz", "not found"))
    folders = tmp_path / "folders"
    (folders / "cat").mkdir(parents=True)
    shutil.copy(next((digits_dir / "calib" / "0").iterdir()), folders / "cat")
    cases.append((folders, "do not match the model's labels"))
    (tmp_path / "flat").mkdir()
    cases.append((tmp_path / "flat", "no class sub-folders"))
    for data, words in cases:
        assert_clean_error(tfedge("eval", digits_int8, "--data", data), 2, words)
    assert_clean_error(tfedge("eval", tmp_path / "nope.tflite", "--data", digits_dir / "test.npz"), 2, "not found")


def test_folder_without_manifest_needs_a_preset(tfedge, digits_int8, digits_dir, tmp_path):
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(digits_int8.read_bytes())  # no sidecar manifest
    assert_clean_error(tfedge("eval", bare, "--data", digits_dir / "calib"), 2, "--preprocess")
    result = _eval(tfedge, bare, "--data", digits_dir / "calib", "--preprocess", "unit", "--limit", 20)
    assert result["top1"] > 0.9
