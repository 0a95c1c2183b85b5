"""`tfedge convert`: every mode on real models and data, every source kind, the manifest, budgets, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error
from tfedge_device.manifest import read_manifest
from tfedge_device.model import Model

from tfedge.convert.pipeline import ConvertRequest, convert
from tfedge.convert.sources import LoadOptions


@pytest.fixture(scope="session")
def digits_keras(digits_dir):
    import keras

    return keras.saving.load_model(digits_dir / "digits.keras", compile=False)


@pytest.fixture(scope="session")
def digits_calib_npy(session_dir, digits_test):
    path = session_dir / "calib.npy"
    np.save(path, digits_test[0][:64])
    return path


def _convert(source, out, mode, **kw):
    kw.setdefault("show_progress", False)
    return convert(ConvertRequest(source=str(source), output=out, mode=mode, **kw))


# Tolerances on the held-out digits (450 real images), stated per mode:
# (mode, min top-1 agreement with the Keras model, min cosine of softmax outputs)
MODE_TOLERANCES = [
    ("float32", 1.0, 0.999999),
    ("float16", 1.0, 0.9999),
    ("dynamic", 0.995, 0.999),
    ("int8", 0.99, 0.995),
    ("int16x8", 0.995, 0.999),
]


@pytest.mark.parametrize("mode,min_agreement,min_cosine", MODE_TOLERANCES)
def test_each_mode_matches_keras_on_real_digits(mode, min_agreement, min_cosine, digits_dir, digits_keras,
                                                 digits_test, tmp_path):
    out = tmp_path / f"digits_{mode}.tflite"
    result = _convert(digits_dir / "digits.keras", out, mode, calib=str(digits_dir / "calib"),
                      labels=digits_dir / "labels.txt")
    assert result["verification"]["top1_agreement"] >= min_agreement
    x, y = digits_test
    expected = digits_keras.predict(x, verbose=0)
    model = Model(out)
    got = np.concatenate([model.predict(x[i:i + 1])[0] for i in range(len(x))])
    agreement = np.mean(expected.argmax(1) == got.argmax(1))
    cosines = np.sum(expected * got, 1) / np.linalg.norm(expected, axis=1) / np.linalg.norm(got, axis=1)
    assert agreement >= min_agreement, (mode, agreement)
    assert cosines.min() >= min_cosine, (mode, cosines.min())
    if mode == "float32":
        np.testing.assert_allclose(got, expected, atol=1e-5)
    # int8 accuracy budget of the default model: drop <= 0.5 points on the held-out split
    assert np.mean(got.argmax(1) == y) >= np.mean(expected.argmax(1) == y) - 0.005


def test_int8_io_is_int8_without_quantize_ops(digits_int8):
    import tflite

    model = Model(digits_int8)
    assert model.inputs[0].dtype == np.int8 and model.outputs[0].dtype == np.int8
    flat = tflite.Model.GetRootAsModel(digits_int8.read_bytes(), 0)
    builtin = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    codes = [builtin[max(flat.OperatorCodes(i).BuiltinCode(), flat.OperatorCodes(i).DeprecatedBuiltinCode())]
             for i in range(flat.OperatorCodesLength())]
    assert "QUANTIZE" not in codes and "DEQUANTIZE" not in codes, codes


@pytest.mark.parametrize("io_type,dtype", [("uint8", np.uint8), ("float32", np.float32)])
def test_int8_io_type(io_type, dtype, digits_dir, tmp_path):
    out = tmp_path / "m.tflite"
    result = _convert(digits_dir / "digits.keras", out, "int8", io_type=io_type, calib=str(digits_dir / "calib"),
                      calib_count=50)
    assert Model(out).inputs[0].dtype == dtype
    assert result["verification"]["top1_agreement"] >= 0.98


def test_manifest_describes_the_model(digits_int8, digits_dir):
    manifest = read_manifest(digits_int8)
    assert manifest["mode"] == "int8" and manifest["io_type"] == "int8"
    assert manifest["labels"] == [str(i) for i in range(10)]
    assert manifest["preprocess"]["image"] == {"height": 8, "width": 8, "channels": 1, "preset": "unit",
                                               "resize": "bilinear", "fit": "stretch"}
    # calibrated on images in [0, 1]: int8 steps of 1/255 from -128 (the converter's min/max quantization)
    assert manifest["inputs"][0]["dtype"] == "int8" and manifest["inputs"][0]["zero_point"] == -128
    assert manifest["inputs"][0]["scale"] == pytest.approx(1 / 255, rel=1e-6)
    assert manifest["source"]["kind"] == "keras" and len(manifest["source"]["sha256"]) == 64
    assert manifest["verification"]["samples"] == 50
    assert manifest["versions"]["tensorflow"].startswith("2.21")


def test_calibration_from_npy(digits_dir, digits_calib_npy, tmp_path):
    result = _convert(digits_dir / "digits.keras", tmp_path / "m.tflite", "int8", calib=str(digits_calib_npy))
    assert result["verification"]["data"].endswith("calib.npy")
    assert result["verification"]["top1_agreement"] >= 0.98


# -- sources -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def two_signature_saved_model(session_dir):
    """A SavedModel with two signatures and a dynamic batch."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.stateless_normal((6, 3), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def scores(self, features):
            return {"scores": tf.nn.softmax(features @ self.w)}

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="features")])
        def doubled(self, features):
            return {"twice": 2.0 * features}

    module = Module()
    path = session_dir / "two_signatures"
    tf.saved_model.save(module, str(path), signatures={"scores": module.scores, "doubled": module.doubled})
    return path


def test_saved_model_signature_choice(two_signature_saved_model, tmp_path, tfedge):
    result = tfedge("convert", two_signature_saved_model, "-o", tmp_path / "a.tflite")
    assert_clean_error(result, 2, "several signatures", "doubled", "scores")
    result = tfedge("convert", two_signature_saved_model, "-o", tmp_path / "a.tflite", "--signature", "doubled",
                    "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["verification"]["max_abs_error"] < 1e-6
    assert any("fixed input 'features'" in note for note in report["notes"])
    model = Model(tmp_path / "a.tflite")
    assert model.inputs[0].shape == (1, 6)
    np.testing.assert_allclose(model.predict(np.arange(6, dtype=np.float32)[None])[0], 2 * np.arange(6)[None])


def test_tf_keras_h5_source(session_dir, tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((5,)), tf_keras.layers.Dense(4, activation="relu"),
                                 tf_keras.layers.Dense(3)])
    path = session_dir / "tiny.h5"
    model.save(path)
    result = _convert(path, tmp_path / "h5.tflite", "float32")
    assert result["source"]["kind"] == "keras"
    x = np.linspace(-1, 1, 5, dtype=np.float32)[None]
    np.testing.assert_allclose(Model(tmp_path / "h5.tflite").predict(x)[0], model(x).numpy(), atol=1e-5)


def test_keras_app_with_random_weights_and_input_shape(tmp_path):
    result = _convert("keras-app:MobileNetV2", tmp_path / "mnv2.tflite", "dynamic",
                      load=LoadOptions(weights="none", input_shapes=[(1, 96, 96, 3)]), verify_count=3)
    model = Model(tmp_path / "mnv2.tflite")
    assert model.inputs[0].shape == (1, 96, 96, 3) and model.outputs[0].shape == (1, 1000)
    assert result["verification"]["cosine_min"] > 0.95
    assert read_manifest(tmp_path / "mnv2.tflite")["preprocess"]["image"]["preset"] == "mobilenet"
    assert any("random weights" in note for note in result["notes"])


def test_dynamic_dimensions_beyond_batch_need_input_shape(session_dir, tmp_path, tfedge):
    import keras

    model = keras.Sequential([keras.Input((None, 4)), keras.layers.Dense(2)])
    path = session_dir / "seq.keras"
    model.save(path)
    result = tfedge("convert", path, "-o", tmp_path / "s.tflite")
    assert_clean_error(result, 2, "dynamic dimensions", "--input-shape")
    result = tfedge("convert", path, "-o", tmp_path / "s.tflite", "--input-shape", "1,7,4")
    assert result.returncode == 0, result
    assert Model(tmp_path / "s.tflite").inputs[0].shape == (1, 7, 4)


# -- budgets and errors ---------------------------------------------------------------------------------
def test_budget_not_met_exits_4_and_writes_nothing(digits_dir, tmp_path, tfedge):
    out = tmp_path / "m.tflite"
    result = tfedge("convert", digits_dir / "digits.keras", "-o", out, "--quant", "int8", "--calib",
                    digits_dir / "calib", "--calib-count", "20", "--max-abs-error", "0.0000001")
    assert_clean_error(result, 4, "max abs error", "budget")
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_json_output_is_the_result_alone(digits_dir, tmp_path, tfedge):
    result = tfedge("convert", digits_dir / "digits.keras", "-o", tmp_path / "m.tflite", "--quant", "fp16",
                    "--min-cosine", "0.999", "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["mode"] == "float16" and report["size_bytes"] == (tmp_path / "m.tflite").stat().st_size
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("case", [
    "missing_source", "unknown_source_type", "not_a_saved_model", "unknown_mode", "int8_without_calib",
    "empty_calib_folder", "calib_wrong_shape", "calib_missing", "bad_io_type", "bad_input_shape",
    "keras_app_without_weights", "keras_app_unknown", "labels_too_few", "output_dir_missing", "output_not_tflite",
])
def test_bad_input_is_one_line_exit_2(case, digits_dir, tmp_path, tfedge):
    keras_file = digits_dir / "digits.keras"
    out = tmp_path / "out.tflite"
    (tmp_path / "empty").mkdir()
    (tmp_path / "notsaved").mkdir()
    (tmp_path / "notsaved" / "x.txt").write_text("x")
    (tmp_path / "model.onnx").write_text("x")
    np.save(tmp_path / "wrong.npy", np.zeros((4, 9, 9, 1), np.float32))
    (tmp_path / "labels.txt").write_text("a\nb\n")
    cases = {
        "missing_source": ((tmp_path / "nope.keras", "-o", out), ["source not found"]),
        "unknown_source_type": ((tmp_path / "model.onnx", "-o", out), ["unknown source type"]),
        "not_a_saved_model": ((tmp_path / "notsaved", "-o", out), ["not a SavedModel"]),
        "unknown_mode": ((keras_file, "-o", out, "--quant", "int4"), ["unknown quantization mode", "int4"]),
        "int8_without_calib": ((keras_file, "-o", out, "--quant", "int8"), ["needs calibration data"]),
        "empty_calib_folder": ((keras_file, "-o", out, "--quant", "int8", "--calib", tmp_path / "empty"),
                               ["has no images"]),
        "calib_wrong_shape": ((keras_file, "-o", out, "--quant", "int8", "--calib", tmp_path / "wrong.npy"),
                              ["does not match input", "[4, 9, 9, 1]"]),
        "calib_missing": ((keras_file, "-o", out, "--quant", "int8", "--calib", tmp_path / "none"),
                          ["calibration data not found"]),
        "bad_io_type": ((keras_file, "-o", out, "--quant", "dynamic", "--io-type", "int8"), ["--io-type"]),
        "bad_input_shape": ((keras_file, "-o", out, "--input-shape", "1,x"), ["--input-shape"]),
        "keras_app_without_weights": (("keras-app:MobileNetV2", "-o", out), ["--weights", "cannot be downloaded"]),
        "keras_app_unknown": (("keras-app:MobileNetV9", "-o", out, "--weights", "none"), ["MobileNetV9"]),
        "labels_too_few": ((keras_file, "-o", out, "--labels", tmp_path / "labels.txt"), ["2 labels", "10 classes"]),
        "output_dir_missing": ((keras_file, "-o", tmp_path / "no" / "out.tflite"), ["does not exist"]),
        "output_not_tflite": ((keras_file, "-o", tmp_path / "out.bin"), [".tflite"]),
    }
    args, words = cases[case]
    result = tfedge("convert", *args)
    assert_clean_error(result, 2, *words)
    assert not out.exists()
