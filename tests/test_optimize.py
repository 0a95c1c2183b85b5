"""tfedge prune / qat / cluster / distill end to end on real digits (tiny data, 1-2 epochs), each output fed
to `tfedge convert` or checked through LiteRT, and every bad input with its exit code."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from conftest import DIGITS
from tfedge_device.model import Model


@pytest.fixture(scope="session")
def digits_train(session_dir):
    """400 images of the fixed training split (models/digits/train.py load_split) as x/y .npz."""
    sys.path.insert(0, str(DIGITS))
    from train import load_split

    x_train, _, y_train, _ = load_split()
    path = session_dir / "digits_train_400.npz"
    np.savez(path, x=x_train[:400], y=y_train[:400])
    return path


@pytest.fixture(scope="session")
def student_keras(session_dir):
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1), name="image"), keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax"),
    ], name="student")
    path = session_dir / "student.keras"
    model.save(path)
    return path


def _json(result):
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def test_prune_reaches_sparsity_and_h5_feeds_convert(tfedge, digits_train, digits_dir, tmp_path):
    out = tmp_path / "pruned.h5"
    result = _json(tfedge("prune", digits_dir / "digits.keras", "--data", digits_train, "--val",
                          digits_dir / "test.npz", "--sparsity", "0.5", "--schedule", "constant", "--epochs", "1",
                          "--exclude", "conv2d", "--exclude", "prob*", "-o", out, "--json"))
    layers = result["prune"]["layers"]
    assert layers.pop("conv2d") == 0.0 and layers.pop("probabilities") == 0.0  # kept dense by --exclude
    assert layers and all(0.45 <= s <= 0.55 for s in layers.values())
    assert result["bridge"]["origin"] == "keras3-bridge" and result["bridge"]["max_abs_diff"] <= 1e-5
    assert result["accuracy_after"] > 0.9 and result["output"]["format"].startswith("tf_keras HDF5")
    variants = result["tflite"]
    assert variants["prune float32"]["gzip_bytes"] < variants["original float32"]["gzip_bytes"]
    assert variants["prune float32"]["size_bytes"] == variants["original float32"]["size_bytes"]
    assert any("compressed" in note for note in result["notes"])
    converted = _json(tfedge("convert", out, "-o", tmp_path / "pruned.tflite", "--json"))
    assert converted["verification"]["cosine_min"] > 0.9999


def test_qat_writes_a_verified_int8_tflite(tfedge, digits_train, digits_dir, tmp_path):
    out = tmp_path / "qat.tflite"
    result = _json(tfedge("qat", digits_dir / "digits.keras", "--data", digits_train, "--epochs", "1",
                          "-o", out, "--json"))
    model = Model(out)
    assert model.inputs[0].dtype == np.int8 and model.outputs[0].dtype == np.int8
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["mode"] == "int8" and manifest["optimization"]["technique"] == "qat"
    assert manifest["source"]["location"].endswith("digits.keras")
    x, y = np.load(digits_dir / "test.npz")["x"], np.load(digits_dir / "test.npz")["y"]
    top1 = np.mean([model.predict(x[i:i + 1])[0].argmax() == y[i] for i in range(0, 450, 3)])
    assert top1 > 0.93
    assert result["qat"]["quantized_layers"] >= 5 and result["output"]["convert"]["verification"]["top1_agreement"] > 0.95
    from tfedge.analysis.graph import read_graph

    main = read_graph(out).main
    dense = [op for op in main.ops if op.name == "FULLY_CONNECTED"]
    kernels = [main.tensors[op.inputs[1]] for op in dense]
    assert len(dense) == 2 and all(k.dtype == "int8" for k in kernels)
    # per output channel, as trained (tfmot's default would give one scale per tensor)
    assert [len(k.quantization["scale"]) for k in kernels] == [k.shape[0] for k in kernels] == [64, 10]
    # the int8 model is the trained QAT model: same top-1 on the held-out split, within one image
    held_out = result["data"]["validation_samples"]
    assert abs(result["tflite"]["qat int8"]["top1"] - result["accuracy_after"]) <= 1 / held_out + 1e-9


def test_cluster_image_folder_to_savedmodel(tfedge, digits_dir, tmp_path):
    out = tmp_path / "clustered"
    result = _json(tfedge("cluster", digits_dir / "digits.keras", "--data", digits_dir / "calib", "--clusters", "8",
                          "--epochs", "1", "-o", out, "--json", "--quant", "float16"))
    assert all(count <= 8 for count in result["cluster"]["unique_weights"].values())
    assert (out / "saved_model.pb").exists() and result["data"]["train_samples"] == 180
    assert "cluster float16" in result["tflite"]


def test_distill_image_student_from_teacher(tfedge, digits_dir, student_keras, tmp_path):
    out = tmp_path / "student.tflite"
    result = _json(tfedge("distill", "--teacher", digits_dir / "digits.keras", "--student", student_keras,
                          "--data", digits_dir / "calib", "--epochs", "2", "--temperature", "2", "-o", out,
                          "--json"))
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["labels"] == [str(i) for i in range(10)]  # the class sub-folder names
    assert result["distill"]["student_params"] < result["distill"]["teacher_params"] / 4
    assert set(result["tflite"]) == {"teacher float32", "teacher int8", "student float32", "student int8"}
    assert result["training"]["epochs_run"] == 2 and out.exists()
    assert Model(out).outputs[0].shape[-1] == 10


def test_training_reproduces_with_the_fixed_seed(digits_train, digits_dir, tmp_path):
    import tf_keras

    from tfedge.optimize.keras_bridge import load_trainable
    from tfedge.optimize.measure import count_params  # noqa: F401 - imported with the rest, as the CLI does
    from tfedge.optimize.train import FitOptions, fit, set_seed

    weights = []
    for _ in range(2):
        set_seed(0)
        model = load_trainable(digits_dir / "digits.keras").model
        model.compile(optimizer=tf_keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
        data = np.load(digits_train)
        fit(model, tf_keras, data["x"][:64], data["y"][:64], None, FitOptions(epochs=1, show_progress=False))
        weights.append(model.layers[-1].get_weights()[0])
    np.testing.assert_array_equal(weights[0], weights[1])
