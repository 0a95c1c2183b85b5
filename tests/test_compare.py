"""`tfedge compare`: the seeds' table for real digits variants, its Markdown/HTML/JSON report, reasons in
place of blanks, and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error


@pytest.fixture(scope="session")
def digits_report(session_dir, digits_dir, digits_float, digits_int8):
    from conftest import run_command

    out = session_dir / "reports" / "digits"
    out.parent.mkdir()
    result = run_command("tfedge", "compare", digits_dir / "digits.keras", digits_float, digits_int8,
                         "--data", digits_dir / "test.npz", "--report", out, "--runs", 10, "--json")
    assert result.returncode == 0, result
    return out, json.loads(result.stdout)


def keras_params_and_macs(path) -> tuple[int, int]:
    """Parameters and multiply-accumulates of a Conv2D/Dense Keras model, from its layers' shapes."""
    import keras

    model = keras.saving.load_model(path)
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            macs += height * width * channels_out * kernel_h * kernel_w * channels_in
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
    return model.count_params(), macs


def test_table_figures(digits_report, digits_dir):
    digits_keras = digits_dir / "digits.keras"
    _, result = digits_report
    rows = {row["name"]: row for row in result["rows"]}
    source, floating, int8 = rows["digits.keras"], rows["digits_float32.tflite"], rows["digits_int8.tflite"]
    assert (source["mode"], floating["mode"], int8["mode"]) == ("source", "float32", "int8")
    assert result["metric"] == "top-1"
    params, macs = keras_params_and_macs(digits_keras)
    assert floating["params"] == source["params"] == params
    assert floating["gflops"] == pytest.approx(2 * macs / 1e9, rel=1e-9)  # 2 FLOPs per multiply-accumulate
    assert int8["gflops"] == pytest.approx(floating["gflops"], rel=0.05)
    assert int8["size_mb"] < floating["size_mb"] / 2.5  # int8 weights: about a quarter of float32
    assert floating["speedup"] == pytest.approx(1.0)
    assert int8["speedup"] == pytest.approx(floating["latency_p50_ms"] / int8["latency_p50_ms"], rel=1e-6)
    assert source["latency_p50_ms"] is None and "TensorFlow" in source["why"]["latency_p50_ms"]
    assert source["gflops"] is None and source["why"]["gflops"]
    assert floating["accuracy"] == pytest.approx(source["accuracy"], abs=1 / 450)
    assert abs(int8["drop"]) <= 0.02 and source["drop"] == 0
    assert result["baselines"] == {"speed_baseline": "digits_float32.tflite", "accuracy_baseline": "digits.keras"}


def test_report_files(digits_report):
    out, result = digits_report
    markdown = out.with_suffix(".md").read_text()
    assert markdown.splitlines()[0].startswith("| Variant | Mode | Params | GFLOPs")
    assert "n/a [1]" in markdown and "[1] " in markdown  # the source's missing figures carry reasons
    page = out.with_suffix(".html").read_text()
    assert page.count("data:image/png;base64,") == 2
    assert "http://" not in page and "https://" not in page  # self-contained
    assert json.loads(out.with_suffix(".json").read_text())["rows"] == result["rows"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["digits.html", "digits.json", "digits.md"]


def test_without_data_accuracy_says_why(tfedge, digits_float, digits_int8):
    result = tfedge("compare", digits_float, digits_int8, "--runs", 3)
    assert result.returncode == 0, result
    assert "no --data given" in result.stdout and "| Variant |" in result.stdout


def test_unlabelled_inputs_compare_by_cosine_to_the_float_variant(tfedge, digits_float, digits_int8,
                                                                 digits_test, tmp_path):
    np.savez(tmp_path / "inputs.npz", x=digits_test[0][:30])
    result = tfedge("compare", digits_int8, digits_float, "--data", tmp_path / "inputs.npz", "--runs", 3, "--json")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["metric"] == "cosine"
    rows = {row["name"]: row for row in data["rows"]}
    assert rows["digits_float32.tflite"]["accuracy"] == pytest.approx(1.0)
    assert rows["digits_int8.tflite"]["accuracy"] > 0.99


def test_bad_inputs(tfedge, digits_float, digits_dir, tmp_path):
    keras = digits_dir / "digits.keras"
    assert_clean_error(tfedge("compare", digits_float, digits_float), 2, "listed twice")
    assert_clean_error(tfedge("compare", keras, str(keras) + "x"), 2, "not found")
    assert_clean_error(tfedge("compare", digits_float, "--report", tmp_path / "no" / "dir" / "r",
                              "--runs", 1), 2, "does not exist")
    assert_clean_error(tfedge("compare", tmp_path / "missing.tflite"), 2, "not found")
    assert_clean_error(tfedge("compare"), 2, "missing argument 'VARIANTS...'")
