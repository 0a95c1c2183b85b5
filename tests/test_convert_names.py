"""Tensors paired by NAME on the host (verify, manifest, eval, bundle), and honest (held-out) verification.

Real conversions and real interpreters on tiny models built here: a SavedModel with three outputs of different
ranks and dtypes (a float [1, N, 4] box tensor, a float [1, C] score, an int32 argmax) and two inputs, whose
signature order, alphabetical order and .tflite order all differ (the issue: a real 3-output SavedModel failed
`--quant dynamic` with "cannot reshape array of size 15136 into shape (1,172,264)", paired by position); a Keras 3
model with two named inputs and outputs listed against alphabetical order; a tf_keras .h5.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import assert_clean_error
from tfedge_device.model import Model

from tfedge.convert.pipeline import MIN_SAMPLES_TO_HOLD_OUT, ConvertRequest, convert

BOXES, CLASSES = 6, 5


@pytest.fixture(scope="module")
def detector(tmp_path_factory):
    """A SavedModel: inputs `zeta` [N, 16] and `alpha` [N, 3]; outputs `scores` [N, C] (softmax), `boxes`
    [N, 6, 4], `label` [N] int32 (argmax of the scores) — declared in that order."""
    import tensorflow as tf

    root = tmp_path_factory.mktemp("names")
    rng = np.random.default_rng(0)

    class Detector(tf.Module):
        def __init__(self):
            super().__init__()
            self.hidden = tf.Variable(rng.normal(0, 0.3, (16, 64)).astype(np.float32))
            self.to_scores = tf.Variable(rng.normal(0, 0.5, (64, CLASSES)).astype(np.float32))
            self.to_boxes = tf.Variable(rng.normal(0, 0.3, (64 + 3, BOXES * 4)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="zeta"),
                                      tf.TensorSpec([None, 3], tf.float32, name="alpha")])
        def serve(self, zeta, alpha):
            hidden = tf.nn.relu(tf.matmul(zeta, self.hidden))
            scores = tf.nn.softmax(tf.matmul(hidden, self.to_scores))
            boxes = tf.reshape(tf.matmul(tf.concat([hidden, alpha * 4.0], -1), self.to_boxes), [-1, BOXES, 4])
            return {"scores": scores, "boxes": boxes, "label": tf.argmax(scores, -1, output_type=tf.int32)}

    module = Detector()
    path = root / "detector"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    calib = root / "calib.npz"  # keyed by input name, in neither the signature's nor the graph's order
    np.savez(calib, alpha=rng.uniform(0, 1, (40, 3)).astype(np.float32),
             zeta=rng.uniform(0, 1, (40, 16)).astype(np.float32))
    return path, calib


def _convert(source, out, mode, **kw):
    kw.setdefault("show_progress", False)
    return convert(ConvertRequest(source=str(source), output=out, mode=mode, **kw))


def _by_name(model: Model, arrays: dict) -> dict:
    """Run `model` with inputs given by signature name -> {output signature name: value} (no tfedge pairing)."""
    outputs = model.predict(*[arrays[spec.key] for spec in model.inputs])
    return {spec.key: value for spec, value in zip(model.outputs, outputs)}


@pytest.mark.parametrize("mode", ["float32", "dynamic", "int8"])
def test_savedmodel_outputs_paired_by_name(mode, detector, tmp_path):
    import tensorflow as tf

    source, calib = detector
    out = tmp_path / f"detector_{mode}.tflite"
    result = _convert(source, out, mode, calib=str(calib))
    model = Model(out)
    signature = tf.saved_model.load(str(source)).signatures["serving_default"]
    declared = list(signature.structured_outputs)
    in_tflite = [spec.key for spec in model.outputs]
    # the premise: pairing by position would be wrong here. The source's order (a SavedModel's sorted keys) is
    # not the .tflite's; the signature's declared order is not stable across processes (seen: both
    # ['scores', 'label', 'boxes'] and ['boxes', 'scores', 'label']), so it is not part of the premise.
    assert sorted(declared) == sorted(in_tflite) == ["boxes", "label", "scores"]
    assert in_tflite != sorted(in_tflite), in_tflite
    assert [spec.key for spec in model.inputs] != ["alpha", "zeta"], "inputs should differ from sorted order too"

    manifest = json.loads(out.with_suffix(".json").read_text())
    assert [entry["signature_name"] for entry in manifest["outputs"]] == in_tflite
    assert manifest["source"]["outputs"] == ["boxes", "label", "scores"]  # a SavedModel's: sorted keys
    shapes = {entry["signature_name"]: (entry["shape"], entry["dtype"]) for entry in manifest["outputs"]}
    assert shapes["boxes"][0] == [1, BOXES, 4] and shapes["scores"][0] == [1, CLASSES]
    assert shapes["label"] == ([1], "int32")

    # each named output of the .tflite is the same-named output of the SavedModel
    with np.load(calib) as data:
        sample = {name: data[name][1:2] for name in ("zeta", "alpha")}
    expected = {key: value.numpy() for key, value in signature(**{k: tf.constant(v) for k, v in sample.items()}).items()}
    got = _by_name(model, sample)
    tolerance = {"float32": 1e-5, "dynamic": 0.05, "int8": 0.2}[mode]
    for name in ("boxes", "scores"):
        assert got[name].shape == expected[name].shape
        assert np.max(np.abs(got[name] - expected[name])) < tolerance * max(1.0, np.max(np.abs(expected[name])))

    figures = result["verification"]
    assert set(figures["outputs"]) == {"boxes", "label", "scores"}
    assert figures["outputs"]["label"]["cosine_min"] is None  # an integer output is compared for equality
    assert figures["outputs"]["label"]["equal"] >= (1.0 if mode == "float32" else 0.9)
    assert figures["cosine_min"] > {"float32": 0.99999, "dynamic": 0.999, "int8": 0.98}[mode]
    assert figures["top1_agreement"] is None  # the first output (boxes) is not class scores
    if mode == "float32":
        assert np.array_equal(got["label"], expected["label"])
        assert figures["outputs"]["label"]["equal"] == 1.0


@pytest.fixture(scope="module")
def keras_two_in_two_out(tmp_path_factory):
    """Keras 3: inputs `pixels` [8, 8, 1] and `meta` [4]; outputs `z_scores` [C] (softmax) and `a_boxes`
    [3, 4], listed z first (model order differs from alphabetical order)."""
    import keras

    root = tmp_path_factory.mktemp("keras_names")
    keras.utils.set_random_seed(1)
    pixels = keras.Input((8, 8, 1), name="pixels")
    meta = keras.Input((4,), name="meta")
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, activation="relu")(pixels))
    joined = keras.layers.Concatenate()([features, keras.layers.Dense(8, activation="relu")(meta)])
    scores = keras.layers.Dense(CLASSES, activation="softmax", name="z_scores")(joined)
    boxes = keras.layers.Reshape((3, 4), name="a_boxes")(keras.layers.Dense(12)(joined))
    model = keras.Model([pixels, meta], [scores, boxes])
    path = root / "two.keras"
    model.save(path)
    rng = np.random.default_rng(2)
    calib = root / "calib.npz"
    np.savez(calib, meta=rng.normal(0, 1, (30, 4)).astype(np.float32),
             pixels=rng.uniform(0, 1, (30, 8, 8, 1)).astype(np.float32))
    return path, calib, model


def test_keras_multi_input_int8_calibrated_by_name(keras_two_in_two_out, tmp_path):
    path, calib, keras_model = keras_two_in_two_out
    out = tmp_path / "two_int8.tflite"
    result = _convert(path, out, "int8", calib=str(calib))
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["source"]["outputs"] == ["z_scores", "a_boxes"]
    assert {entry["signature_name"] for entry in manifest["inputs"]} == {"pixels", "meta"}
    assert {entry["signature_name"] for entry in manifest["outputs"]} == {"z_scores", "a_boxes"}
    figures = result["verification"]
    assert set(figures["outputs"]) == {"z_scores", "a_boxes"}
    assert figures["top1_agreement"] is not None  # z_scores, the source's first output, is class scores
    assert figures["cosine_min"] > 0.95

    # the int8 model's named outputs against Keras's, on a sample by input name
    with np.load(calib) as data:
        sample = {"pixels": data["pixels"][3:4], "meta": data["meta"][3:4]}
    expected = dict(zip(["z_scores", "a_boxes"], keras_model([sample["pixels"], sample["meta"]])))
    got = _by_name(Model(out), sample)
    for name in ("z_scores", "a_boxes"):
        value = np.asarray(expected[name])
        cos = np.dot(got[name].ravel(), value.ravel()) / np.linalg.norm(got[name]) / np.linalg.norm(value)
        assert got[name].shape == value.shape and cos > 0.95, (name, cos)


def test_multi_input_npz_must_be_keyed_by_input_names(keras_two_in_two_out, tmp_path, tfedge):
    path, _, _ = keras_two_in_two_out
    positional = tmp_path / "positional.npz"
    np.savez(positional, np.zeros((4, 8, 8, 1), np.float32), np.zeros((4, 4), np.float32))
    out = tmp_path / "x.tflite"
    result = tfedge("convert", path, "-o", out, "--quant", "int8", "--calib", positional)
    assert_clean_error(result, 2, "keyed by input name", "pixels", "meta", "arr_0")
    assert not out.exists()


def test_tf_keras_h5_output_names(tmp_path):
    import tf_keras

    inputs = tf_keras.Input((6,), name="features")
    hidden = tf_keras.layers.Dense(16, activation="relu")(inputs)
    model = tf_keras.Model(inputs, [tf_keras.layers.Dense(3, name="zz_logits")(hidden),
                                    tf_keras.layers.Dense(1, name="aa_value")(hidden)])
    path = tmp_path / "two.h5"
    model.save(path)
    out = tmp_path / "two.tflite"
    result = _convert(path, out, "float32", verify_count=5)
    tflite = Model(out)
    assert {spec.key for spec in tflite.outputs} == {"zz_logits", "aa_value"}
    sample = {"features": np.linspace(-1, 1, 6, dtype=np.float32)[None]}
    got = _by_name(tflite, sample)
    expected = dict(zip(["zz_logits", "aa_value"], model.predict(sample["features"], verbose=0)))
    for name in ("zz_logits", "aa_value"):
        assert np.allclose(got[name], expected[name], atol=1e-5), name
    assert result["verification"]["max_abs_error"] < 1e-5


def test_names_that_cannot_be_paired_exit_2(detector, tmp_path, tfedge):
    """A .tflite whose outputs are called output_0.. (the converter's names for a function returning a list)
    cannot be paired with the SavedModel's boxes/label/scores: exit 2 naming both lists, never by position."""
    import tensorflow as tf

    source, calib = detector
    loaded = tf.saved_model.load(str(source))
    signature = loaded.signatures["serving_default"]
    function = tf.function(lambda zeta, alpha: [signature(zeta=zeta, alpha=alpha)[k] for k in ("scores", "boxes")],
                           input_signature=[tf.TensorSpec([1, 16], tf.float32, name="zeta"),
                                            tf.TensorSpec([1, 3], tf.float32, name="alpha")])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], loaded)
    unnamed = tmp_path / "unnamed.tflite"
    unnamed.write_bytes(converter.convert())
    result = tfedge("eval", unnamed, "--data", calib, "--reference", source)
    assert_clean_error(result, 2, "cannot pair the outputs by name", "output_0", "output_1", "boxes", "label",
                       "scores")


def test_eval_pairs_a_tflite_with_its_source_by_name(detector, tmp_path):
    from tfedge.analysis.evaluate import evaluate

    source, calib = detector
    out = tmp_path / "detector.tflite"
    _convert(source, out, "float32", verify_count=3)
    result = evaluate(str(out), calib, reference=str(source))
    assert result["cosine_min"] > 0.99999  # paired by name: every output of a float32 model matches
    assert result["samples"] == 40


def test_bundle_sample_stored_by_name_and_checked_on_the_device(detector, tmp_path):
    from tfedge_device.bundle import SAMPLE_EXPECTED, SAMPLE_INPUT, load_arrays
    from tfedge_device.commands.verify import verify_bundle

    from tfedge.ship.bundle import BundleRequest, bundle

    source, calib = detector
    out = tmp_path / "detector.tflite"
    _convert(source, out, "float32", verify_count=3)
    with np.load(calib) as data:
        np.savez(tmp_path / "sample.npz", alpha=data["alpha"][5], zeta=data["zeta"][5])
    bundled = tmp_path / "detector.tfedge"
    bundle(BundleRequest(models=[out], output=bundled, sample=tmp_path / "sample.npz"))
    sample = json.loads((bundled / "bundle.json").read_text())["sample"]
    model = Model(out)
    stored_inputs = [entry["signature_name"] for entry in sample["inputs"]]
    assert stored_inputs == [spec.key for spec in model.inputs] and sorted(stored_inputs) == ["alpha", "zeta"]
    assert [entry["signature_name"] for entry in sample["outputs"]] == [spec.key for spec in model.outputs]
    stored = load_arrays(bundled / SAMPLE_INPUT)
    with np.load(calib) as data:
        assert np.array_equal(stored[stored_inputs.index("zeta")][0], data["zeta"][5])
    report = verify_bundle(bundled)
    assert report["sample"]["ok"] and report["sample"]["max_abs_diff"] == 0.0

    # on the device, by name: the arrays come back in the order of the tensors asked for
    outputs = load_arrays(bundled / SAMPLE_EXPECTED, list(reversed(model.outputs)), sample["outputs"])
    expected = model.predict(*load_arrays(bundled / SAMPLE_INPUT, model.inputs, sample["inputs"]))
    for got, want in zip(outputs, reversed(expected)):
        assert np.array_equal(got, want)
    # a variant without a SignatureDef (its tensors named only in the graph) is paired by tensor name
    unsigned = [replace(spec, signature_name=None) for spec in reversed(model.outputs)]
    for got, want in zip(load_arrays(bundled / SAMPLE_EXPECTED, unsigned, sample["outputs"]), reversed(expected)):
        assert np.array_equal(got, want)


# -- honest verification ------------------------------------------------------------------------------------
def test_verification_held_out_by_default(digits_int8):
    manifest = json.loads(digits_int8.with_suffix(".json").read_text())
    verification, calibration = manifest["verification"], manifest["calibration"]
    assert verification["split"] == "held-out"
    assert verification["verification_samples"] == verification["samples"] == 50  # --verify-count's default
    assert calibration["samples"] == verification["calibration_samples"] == 150
    assert calibration["samples"] + verification["verification_samples"] == 200  # every image of models/digits/calib
    calibrated, verified = set(calibration["ids"]), set(verification["verification_ids"])
    assert len(calibrated) == 150 and len(verified) == 50 and not calibrated & verified
    assert "held out of 200 images" in verification["data"]


def _summary(result, capsys) -> str:
    """What `tfedge convert` prints for `result` (its summary table)."""
    from tfedge.cli.convert import print_result

    capsys.readouterr()
    print_result(result)
    return capsys.readouterr().out


def test_verify_data_is_a_separate_set(digits_dir, tmp_path, capsys):
    out = tmp_path / "d.tflite"
    result = _convert(digits_dir / "digits.keras", out, "int8", calib=str(digits_dir / "calib"), calib_count=60,
                      verify_data=str(digits_dir / "test.npz"), verify_count=40)
    assert "separate --verify-data: calibrated on 60, verified on 40" in _summary(result, capsys)
    verification = json.loads(out.with_suffix(".json").read_text())["verification"]
    assert verification["split"] == "separate" and verification["data"].endswith("test.npz")
    assert verification["calibration_samples"] == 60 and verification["samples"] == 40
    assert verification["top1_agreement"] >= 0.95


def test_too_few_samples_fall_back_in_sample_and_say_so(digits_dir, digits_test, tmp_path, capsys):
    few = tmp_path / "few.npz"
    np.savez(few, x=digits_test[0][:MIN_SAMPLES_TO_HOLD_OUT - 1])
    out = tmp_path / "d.tflite"
    result = _convert(digits_dir / "digits.keras", out, "int8", calib=str(few))
    assert "IN-SAMPLE: verified on 9 of the 9 calibration samples" in _summary(result, capsys)
    assert any("verified IN-SAMPLE" in note for note in result["notes"])  # printed on stderr by the CLI
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["verification"]["split"] == "in-sample"
    assert manifest["verification"]["verification_ids"] == manifest["calibration"]["ids"]
    assert any("IN-SAMPLE" in note for note in manifest["notes"])


def test_float_modes_verify_on_the_given_data_not_calibrated(digits_dir, digits_test, tmp_path):
    data = tmp_path / "some.npz"
    np.savez(data, x=digits_test[0][:12])
    result = _convert(digits_dir / "digits.keras", tmp_path / "f.tflite", "float32", calib=str(data))
    verification = result["verification"]
    assert verification["split"] == "not calibrated"
    assert verification["samples"] == 12 and verification["calibration_samples"] == 0


@pytest.mark.parametrize("args,words", [
    (("--verify-count", "0", "--min-cosine", "0.99"), ["--min-cosine 0.99", "nothing to check", "--verify-count is 0"]),
    (("--verify-count", "0", "--max-abs-error", "0.1", "--quant", "int8", "--calib", "CALIB"),
     ["--max-abs-error 0.1", "nothing to check"]),
])
def test_budget_with_nothing_to_check_is_refused(args, words, digits_dir, tmp_path, tfedge):
    out = tmp_path / "d.tflite"
    args = [str(digits_dir / "calib") if a == "CALIB" else a for a in args]
    result = tfedge("convert", digits_dir / "digits.keras", "-o", out, *args)
    assert_clean_error(result, 2, *words)
    assert not out.exists()
