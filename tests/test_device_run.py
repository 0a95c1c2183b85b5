"""tfedge-run run / --input-shape / info on dynamic models: tiny real TF conversions, real LiteRT, the console script.

Models (built once per module with TensorFlow on the test side; the device package never imports it):
  dense   input `audio` [-1, -1] float32 -> energy [-1, 1] (mean square), projected [-1, 4] (audio @ W, W 1600x4):
          at the placeholder shape [1, 1] LiteRT cannot even allocate it (FULLY_CONNECTED: 1 != 1600 features),
          like the real audio front-end of issue 16
  two     inputs zz [1, 3], aa [1, 2] (argument order zz, aa; the .tflite orders them aa, zz) -> out = [zz*10, aa-1]
  multi   features [1, 6] -> zeta [1, 2, 3] float32, alpha [1, 1] int32 (argmax), mid [1] float32 (sum); the
          .tflite's output order (graph order) differs from the alphabetical signature order
  state   x [1, 4] -> total: a tf.Variable accumulating every x (VAR_HANDLE / ASSIGN_VARIABLE / READ_VARIABLE)
  int8    Keras Dense 64 -> 10 on scikit-learn digits, full int8 with int8 input and output tensors
  custom  m [1, 2, 2] -> inverse: tf.linalg.inv kept as the custom op MatrixInverse, which LiteRT lacks
Tolerances are stated where values are compared; float paths are compared to numpy at float32 precision.
"""

from __future__ import annotations

import json
import shutil
import wave

import numpy as np
import pytest
from conftest import assert_clean_error

RATE = 16000
SAMPLES = 1600  # 0.1 s at 16 kHz: the dense model's feature count


def _convert(function, trackable, path, **settings):
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], trackable)
    for key, value in settings.items():
        setattr(converter, key, value)
    path.write_bytes(converter.convert())
    return path


def state_model(path):
    """x [1, 4] -> total: a tf.Variable accumulating every x (resource variables)."""
    import tensorflow as tf

    class State(tf.Module):
        def __init__(self):
            super().__init__()
            self.total = tf.Variable(tf.zeros([1, 4]))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
        def __call__(self, x):
            self.total.assign_add(x)
            return {"total": self.total.read_value() + 0.0}

    state = State()
    return _convert(state.__call__, state, path, experimental_enable_resource_variables=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory, digits_test):
    import tensorflow as tf

    out = tmp_path_factory.mktemp("run_models")
    weights = np.random.default_rng(0).normal(size=(SAMPLES, 4)).astype(np.float32) / 40

    class Dense(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="audio")])
        def __call__(self, audio):
            return {"energy": tf.reduce_mean(audio * audio, axis=-1, keepdims=True),
                    "projected": tf.matmul(audio, tf.constant(weights))}

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 3], tf.float32, name="zz"),
                                      tf.TensorSpec([1, 2], tf.float32, name="aa")])
        def __call__(self, zz, aa):
            return {"out": tf.concat([zz * 10.0, aa - 1.0], axis=-1)}

    class Multi(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 6], tf.float32, name="features")])
        def __call__(self, features):
            return {"zeta": tf.reshape(features * 3.0, [1, 2, 3]),
                    "alpha": tf.expand_dims(tf.argmax(features, axis=-1, output_type=tf.int32), -1),
                    "mid": tf.reduce_sum(features, axis=-1)}

    models = {}
    for name, module in (("dense", Dense()), ("two", Two()), ("multi", Multi())):
        models[name] = _convert(module.__call__, module, out / f"{name}.tflite")
    class Custom(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([1, 2, 2], tf.float32, name="m")])
        def __call__(self, m):
            return {"inverse": tf.linalg.inv(m)}

    custom = Custom()
    models["custom"] = _convert(custom.__call__, custom, out / "custom.tflite", allow_custom_ops=True)
    models["state"] = state_model(out / "state.tflite")

    import keras

    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input((64,), name="pixels"), keras.layers.Dense(10, name="scores")])
    x = digits_test[0].reshape(-1, 64).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(classifier)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([row[None]] for row in x[:100])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    models["int8"] = out / "int8.tflite"
    models["int8"].write_bytes(converter.convert())
    models["int8_keras"] = classifier(x[:3]).numpy()
    models["digits"] = x[:3]
    models["weights"] = weights
    return models


def run_json(tfedge_run, *args) -> dict:
    result = tfedge_run("run", *args, "--json")
    assert result.returncode == 0, result
    assert "----INFERENCE TIME----" in result.stderr, result  # the timing block goes to stderr with --json
    return json.loads(result.stdout)


def values(report: dict, step: int, name: str) -> np.ndarray:
    entry = report["outputs"][step][name]
    return np.asarray(entry["values"], dtype=entry["dtype"])


def write_wav(path, samples: np.ndarray, rate: int = RATE, width: int = 2) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples.tobytes())


def tone() -> np.ndarray:
    """0.1 s of a 440 Hz tone at 16 kHz, int16."""
    return (np.sin(2 * np.pi * 440 * np.arange(SAMPLES) / RATE) * 12000).astype("<i2")


# -- dynamic inputs: info without allocating, --input-shape, the refusal ------------------------------------------


def test_info_describes_a_dynamic_model_the_runtime_cannot_allocate_unshaped(tfedge_run, built):
    from ai_edge_litert.interpreter import Interpreter

    with pytest.raises(RuntimeError):  # the placeholder shape [1, 1] cannot be prepared: info must not try
        Interpreter(str(built["dense"])).allocate_tensors()
    info = json.loads(tfedge_run("info", built["dense"], "--json").stdout)
    (audio,) = info["model"]["inputs"]
    assert audio["signature_name"] == "audio" and audio["name"] == "serving_default_audio:0"
    assert audio["shape_signature"] == [-1, -1] and audio["needs"] == "--input-shape audio:1,N"
    assert {o["signature_name"]: o["shape_signature"] for o in info["model"]["outputs"]} == {
        "energy": [-1, 1], "projected": [-1, 4]}
    text = tfedge_run("info", built["dense"]).stdout
    assert "audio (tensor serving_default_audio:0) [-1, -1] float32" in text and "--input-shape audio:1,N" in text


def test_bench_needs_the_shape_of_a_dynamic_input(tfedge_run, built, tmp_path):
    assert_clean_error(tfedge_run("bench", built["dense"], "--runs", "2"), 2,
                       "input 'audio'", "[-1, -1]", "--input-shape audio:1,N")
    for flag in ("audio:1,1600", "serving_default_audio:0:1,1600", "1,1600"):  # signature, tensor or no name
        report = json.loads(tfedge_run("bench", built["dense"], "--runs", "2", "--input-shape", flag, "--json").stdout)
        assert report["input_shapes"] == [[1, 1600]] and report["inference"]["count"] == 2, flag
    assert_clean_error(tfedge_run("bench", built["dense"], "--input-shape", "audio:1,2,3"), 2,
                       "does not fit input 'audio'", "[-1, -1]")
    assert_clean_error(tfedge_run("bench", built["dense"], "--input-shape", "speech:1,1600"), 2, "no input 'speech'")
    # a default shape in the manifest (what a tfedge manifest entry may carry) replaces the flag
    from tfedge_device.manifest import write_manifest
    from tfedge_device.model import Model

    model = shutil.copy(built["dense"], tmp_path / "dense.tflite")
    described = Model(model, allocate=False).describe()
    write_manifest(model, {"task": "generic", "inputs": [{**described["inputs"][0], "default_shape": [1, 1600]}],
                           "outputs": described["outputs"], "preprocess": {"audio": {"sample_rate": RATE}}})
    report = json.loads(tfedge_run("bench", model, "--runs", "2", "--json").stdout)
    assert report["input_shapes"] == [[1, 1600]]
    info = json.loads(tfedge_run("info", model, "--json").stdout)
    assert info["model"]["inputs"][0]["default_shape"] == [1, 1600] and info["model"]["inputs"][0]["needs"] is None


def test_run_a_wav_through_the_dynamic_model(tfedge_run, built, tmp_path):
    samples = tone()
    write_wav(tmp_path / "tone.wav", samples)
    report = run_json(tfedge_run, built["dense"], "--input", tmp_path / "tone.wav", "--output", tmp_path / "out.npz")
    audio = samples.astype(np.float32)[None] / 32768  # 16-bit PCM -> [-1, 1), fitted [N] -> [1, N]
    assert report["inputs"] == [{"name": "audio", "tensor": "serving_default_audio:0", "shape": [1, SAMPLES],
                                 "dtype": "float32"}]
    np.testing.assert_allclose(values(report, 0, "energy"), (audio**2).mean(-1, keepdims=True), rtol=1e-5)
    np.testing.assert_allclose(values(report, 0, "projected"), audio @ built["weights"], rtol=1e-4, atol=1e-5)
    with np.load(tmp_path / "out.npz") as saved:
        assert sorted(saved.files) == ["energy", "projected"]
        np.testing.assert_array_equal(saved["projected"], values(report, 0, "projected"))


def test_wav_decoding_of_every_pcm_width(tmp_path):
    from tfedge_device.tensors import read_input_file

    cases = {1: (np.array([0, 64, 128, 255], np.uint8), np.array([-1, -0.5, 0, 127 / 128])),
             2: (np.array([-32768, -16384, 0, 32767], "<i2"), np.array([-1, -0.5, 0, 32767 / 32768])),
             4: (np.array([-2**31, 2**30, 0, 2**31 - 1], "<i4"), np.array([-1, 0.5, 0, (2**31 - 1) / 2**31]))}
    for width, (raw, expected) in cases.items():
        write_wav(tmp_path / f"w{width}.wav", raw, width=width)
        decoded = read_input_file(tmp_path / f"w{width}.wav")
        assert decoded.sample_rate == RATE
        np.testing.assert_allclose(decoded.arrays[None], expected, rtol=1e-6, err_msg=f"{8 * width}-bit")
    ints = np.array([-2**23, -2**22, 0, 2**23 - 1])  # 24-bit: three little-endian bytes a sample
    packed = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    with wave.open(str(tmp_path / "w3.wav"), "wb") as writer:
        writer.setnchannels(1), writer.setsampwidth(3), writer.setframerate(RATE)
        writer.writeframes(packed)
    np.testing.assert_allclose(read_input_file(tmp_path / "w3.wav").arrays[None], ints / 2**23, rtol=1e-6)


def test_a_custom_op_the_runtime_lacks_is_named_by_info_then_refused_by_run(tfedge_run, built, tmp_path):
    from test_device_detect import ssd_model

    info = json.loads(tfedge_run("info", built["custom"], "--json").stdout)  # described, and the op named
    assert [t["signature_name"] for t in info["model"]["inputs"] + info["model"]["outputs"]] == ["m", "inverse"]
    assert (info["model"]["custom_ops"], info["model"]["custom_ops_missing"]) == (["MatrixInverse"], ["MatrixInverse"])
    text = tfedge_run("info", built["custom"])
    assert text.returncode == 0 and "custom ops   MatrixInverse: this runtime lacks MatrixInverse;" in text.stdout
    (tmp_path / "ssd.tflite").write_bytes(ssd_model())  # a custom op LiteRT has
    info = json.loads(tfedge_run("info", tmp_path / "ssd.tflite", "--json").stdout)
    assert (info["model"]["custom_ops"], info["model"]["custom_ops_missing"]) == (["TFLite_Detection_PostProcess"], [])
    np.save(tmp_path / "m.npy", np.eye(2, dtype=np.float32)[None])
    for command in (("run", built["custom"], "--input", tmp_path / "m.npy"), ("bench", built["custom"])):
        assert_clean_error(tfedge_run(*command), 3, "custom op MatrixInverse", "custom.tflite")


# -- inputs and outputs by name ------------------------------------------------------------------------------------


def test_two_inputs_are_paired_by_name_not_position(tfedge_run, built, tmp_path):
    from tfedge_device.model import Model

    zz, aa = np.array([[1, 2, 3]], np.float32), np.array([[5, 6]], np.float32)
    expected = np.concatenate([zz * 10, aa - 1], axis=-1)
    assert [s.key for s in Model(built["two"], allocate=False).inputs] == ["aa", "zz"]  # != argument order zz, aa
    np.save(tmp_path / "zz.npy", zz), np.save(tmp_path / "aa.npy", aa)
    np.savez(tmp_path / "both.npz", zz=zz, aa=aa)
    (tmp_path / "both.json").write_text(json.dumps({"zz": zz.tolist(), "aa": aa[0].tolist()}))  # [2] fits [1, 2]
    for given in ((f"zz={tmp_path / 'zz.npy'}", f"aa={tmp_path / 'aa.npy'}"), (tmp_path / "both.npz",),
                  (tmp_path / "both.json",), (f"serving_default_aa:0={tmp_path / 'aa.npy'}", f"zz={tmp_path / 'zz.npy'}")):
        report = run_json(tfedge_run, built["two"], *[arg for item in given for arg in ("--input", item)])
        np.testing.assert_array_equal(values(report, 0, "out"), expected, err_msg=str(given))


def test_outputs_are_named_by_signature_with_their_ranks_and_dtypes(tfedge_run, built, tmp_path):
    from tfedge_device.model import Model

    graph_order = [s.key for s in Model(built["multi"], allocate=False).outputs]
    assert graph_order != sorted(graph_order)  # pairing by position would mix them up
    features = np.array([[0.5, -1.0, 4.0, 2.0, 0.25, 1.0]], np.float32)
    np.save(tmp_path / "f.npy", features)
    report = run_json(tfedge_run, built["multi"], "--input", tmp_path / "f.npy", "--output", tmp_path / "o.npz")
    assert sorted(report["outputs"][0]) == ["alpha", "mid", "zeta"]
    np.testing.assert_array_equal(values(report, 0, "zeta"), (features * 3).reshape(1, 2, 3))
    np.testing.assert_array_equal(values(report, 0, "alpha"), np.array([[2]], np.int32))
    np.testing.assert_allclose(values(report, 0, "mid"), features.sum(-1), rtol=1e-6)
    assert [report["outputs"][0][n]["dtype"] for n in ("zeta", "alpha", "mid")] == ["float32", "int32", "float32"]
    with np.load(tmp_path / "o.npz") as saved:
        assert {k: saved[k].shape for k in saved.files} == {"zeta": (1, 2, 3), "alpha": (1, 1), "mid": (1,)}
    text = tfedge_run("run", built["multi"], "--input", tmp_path / "f.npy").stdout
    assert "alpha [1, 1] int32: 2" in text and "----INFERENCE TIME----" in text


# -- stateful sequences ------------------------------------------------------------------------------------------


def test_a_stateful_model_keeps_its_state_across_steps(tfedge_run, built, tmp_path):
    first, other, second = (np.full((1, 4), v, np.float32) for v in (1.0, 5.0, 0.5))
    for name, value in (("first", first), ("other", other), ("second", second)):
        np.save(tmp_path / f"{name}.npy", value)
    carried = run_json(tfedge_run, built["state"], "--input", tmp_path / "first.npy", "--input", tmp_path / "second.npy")
    changed = run_json(tfedge_run, built["state"], "--input", tmp_path / "other.npy", "--input", tmp_path / "second.npy")
    assert carried["stateful"] is True
    np.testing.assert_array_equal(values(carried, 1, "total"), first + second)
    np.testing.assert_array_equal(values(changed, 1, "total"), other + second)  # step 2 depends on step 1's input
    reset = run_json(tfedge_run, built["state"], "--input", tmp_path / "first.npy", "--input", tmp_path / "second.npy",
                     "--reset-state")
    np.testing.assert_array_equal(values(reset, 1, "total"), second)
    sequence = np.arange(12, dtype=np.float32).reshape(3, 1, 4)
    np.savez(tmp_path / "seq.npz", x=sequence)
    for count in ("1", "3"):  # each repetition of the sequence starts from the initial state
        streamed = run_json(tfedge_run, built["state"], "--input", tmp_path / "seq.npz", "--stream", "-c", count)
        assert len(streamed["outputs"]) == 3 and streamed["timing"]["inferences"] == 3 * int(count)
        for t in range(3):
            np.testing.assert_array_equal(values(streamed, t, "total"), sequence[: t + 1].sum(0))


def test_reset_state_recreates_because_reset_all_variables_keeps_resource_variables(built):
    from tfedge_device.model import Model

    model = Model(built["state"])
    ones = np.ones((1, 4), np.float32)
    model.predict(ones)
    model.interpreter.reset_all_variables()  # LiteRT's own reset: resource variables survive it (ai-edge-litert 2.3)
    np.testing.assert_array_equal(model.predict(ones)[0], 2 * ones)
    model.reset_state()
    np.testing.assert_array_equal(model.predict(ones)[0], ones)


# -- quantized inputs and outputs ----------------------------------------------------------------------------------


def test_int8_inputs_are_quantized_and_outputs_dequantized(tfedge_run, built, tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    digit = built["digits"][:1]
    np.save(tmp_path / "digit.npy", digit)
    report = run_json(tfedge_run, built["int8"], "--input", tmp_path / "digit.npy", "--output", tmp_path / "o.npz")
    (name,) = report["outputs"][0]
    # exact: a bare LiteRT interpreter on the input quantized by hand gives the same raw int8 output
    bare = Interpreter(str(built["int8"]))
    bare.allocate_tensors()
    (inp,), (out,) = bare.get_input_details(), bare.get_output_details()
    scale, zero = inp["quantization"]
    bare.set_tensor(inp["index"], np.clip(np.round(digit / scale) + zero, -128, 127).astype(np.int8))
    bare.invoke()
    raw = bare.get_tensor(out["index"])
    with np.load(tmp_path / "o.npz") as saved:
        np.testing.assert_array_equal(saved[f"{name}.raw"], raw)
    out_scale, out_zero = out["quantization"]
    np.testing.assert_allclose(values(report, 0, name), (raw.astype(np.float32) - out_zero) * out_scale, rtol=1e-6)
    # close to the float Keras model: within 3 output steps plus 3 % of its output range (int8 weights/activations)
    keras_out = built["int8_keras"][:1]
    tolerance = 3 * out_scale + 0.03 * np.ptp(keras_out)
    np.testing.assert_allclose(values(report, 0, name), keras_out, atol=tolerance)
    # int8 data for the int8 input are raw quantized values: the same result
    np.save(tmp_path / "digit_q.npy", np.clip(np.round(digit / scale) + zero, -128, 127).astype(np.int8))
    raw_in = run_json(tfedge_run, built["int8"], "--input", tmp_path / "digit_q.npy")
    np.testing.assert_array_equal(values(raw_in, 0, name), values(report, 0, name))


def test_library_api_runs_named_arrays(built):
    from tfedge_device.run import open_model, run_steps, steps_from_arrays

    model, manifest = open_model(built["two"])
    zz, aa = np.array([[1, 0, 2]], np.float32), np.array([[3, 4]], np.float32)
    result = run_steps(model, steps_from_arrays(model, {"zz": [zz], "aa": [aa]}))
    assert manifest is None and result.names == ["out"]
    np.testing.assert_array_equal(result.outputs[0]["out"], np.concatenate([zz * 10, aa - 1], -1))


# -- bad inputs: exit 2, one line naming the problem -----------------------------------------------------------------


def _bad_inputs(tmp, built):
    """name -> (model, extra args, words of the message)."""
    np.save(tmp / "x4.npy", np.ones((1, 4), np.float32))
    np.save(tmp / "words.npy", np.array([["a", "b", "c"]]))
    np.savez(tmp / "only_zz.npz", zz=np.ones((1, 3), np.float32))
    np.savez(tmp / "extra.npz", zz=np.ones((1, 3), np.float32), aa=np.ones((1, 2), np.float32),
             bias=np.ones(1, np.float32))
    write_wav(tmp / "slow.wav", tone(), rate=8000)
    write_wav(tmp / "cut.wav", tone())
    (tmp / "cut.wav").write_bytes((tmp / "cut.wav").read_bytes()[:1000])  # header promises 1600 frames
    (tmp / "noise.wav").write_bytes(b"RIFF not really a wave file" * 4)
    model = shutil.copy(built["dense"], tmp / "dense.tflite")
    from tfedge_device.manifest import write_manifest
    from tfedge_device.model import Model

    described = Model(model, allocate=False).describe()
    write_manifest(model, {"task": "generic", "inputs": described["inputs"], "outputs": described["outputs"],
                           "preprocess": {"audio": {"sample_rate": RATE}}})
    return {
        "missing file": (built["multi"], ["--input", tmp / "absent.npy"], ["input file not found", "absent.npy"]),
        "wrong shape": (built["multi"], ["--input", tmp / "x4.npy"], ["input 'features'", "[1, 6]", "[1, 4]"]),
        "wrong dtype": (built["multi"], ["--input", tmp / "words.npy"], ["words.npy", "cannot feed input 'features'"]),
        "unknown name": (built["two"], ["--input", f"bias={tmp / 'x4.npy'}"], ["no input 'bias'", "aa", "zz"]),
        "npz lacks a name": (built["two"], ["--input", tmp / "only_zz.npz"], ["no data for input 'aa'"]),
        "npz key no input": (built["two"], ["--input", tmp / "extra.npz"], ["extra.npz", "'bias'", "no input"]),
        "unnamed, two inputs": (built["two"], ["--input", tmp / "x4.npy"], ["x4.npy", "2 inputs", "NAME=FILE"]),
        "wav sample rate": (model, ["--input", tmp / "slow.wav"], ["slow.wav", "8000 Hz", "16000 Hz"]),
        "truncated wav": (built["dense"], ["--input", tmp / "cut.wav"], ["cut.wav", "damaged", "1600 frames"]),
        "not a wav": (built["dense"], ["--input", tmp / "noise.wav"], ["noise.wav", "not a readable PCM .wav"]),
        "no input": (built["multi"], [], ["no input given"]),
    }


CASES = ["missing file", "wrong shape", "wrong dtype", "unknown name", "npz lacks a name", "npz key no input",
         "unnamed, two inputs", "wav sample rate", "truncated wav", "not a wav", "no input"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory, built):
    return _bad_inputs(tmp_path_factory.mktemp("bad_inputs"), built)


@pytest.mark.parametrize("case", CASES)
def test_bad_inputs_are_one_line_errors(tfedge_run, bad_inputs, case, tmp_path):
    model, args, words = bad_inputs[case]
    result = tfedge_run("run", model, *args, "--output", tmp_path / "never.npz")
    assert_clean_error(result, 2, *words)
    assert not (tmp_path / "never.npz").exists() and not list(tmp_path.glob(".never.npz.*"))


def test_arrays_are_fitted_by_leading_and_trailing_ones_only():
    from tfedge_device.errors import BadInput
    from tfedge_device.model import TensorSpec
    from tfedge_device.run import fit

    wave_in = TensorSpec("input_2", 0, (-1, 6, 1), np.dtype("float32"))  # basic-pitch's [-1, 43844, 1], shortened
    assert fit(np.zeros(6), wave_in, None, "a.wav").shape == (1, 6, 1)
    assert fit(np.zeros((1, 1, 6, 1)), wave_in, None, "a.npy").shape == (1, 6, 1)
    assert fit(np.zeros((2, 6)), TensorSpec("x", 0, (-1, -1), np.dtype("float32")), (2, 6), "b.npy").shape == (2, 6)
    with pytest.raises(BadInput, match=r"takes shape \[-1, 6, 1\] float32 \(-1: any size\), got \[7\]"):
        fit(np.zeros(7), wave_in, None, "a.wav")
    with pytest.raises(BadInput, match=r"takes shape \[1, 6, 1\]"):
        fit(np.zeros((3, 2)), wave_in, (1, 6, 1), "c.npy")  # same size, but never reshaped otherwise


def test_another_projects_json_sidecar_is_not_a_manifest(built, tmp_path):
    from tfedge_device.errors import BadInput
    from tfedge_device.manifest import find_manifest

    model = shutil.copy(built["multi"], tmp_path / "okay.tflite")
    (tmp_path / "okay.json").write_text(json.dumps({"type": "micro", "model": "okay.tflite", "version": 2}))
    assert find_manifest(model) == (None, None)  # micro-wakeword ships such a file beside its model
    (tmp_path / "okay.json").write_text(json.dumps({"format": "tfedge-manifest/9", "model": "okay.tflite"}))
    with pytest.raises(BadInput, match="not a tfedge manifest"):
        find_manifest(model)


def test_verify_takes_input_shape(tfedge_run, built, tmp_path):
    from tfedge.ship.bundle import BundleRequest, bundle

    np.save(tmp_path / "f.npy", np.linspace(-1, 1, 6, dtype=np.float32)[None])
    bundle(BundleRequest(models=[built["multi"]], output=tmp_path / "multi.tfedge", sample=tmp_path / "f.npy"))
    verified = tfedge_run("verify", tmp_path / "multi.tfedge", "--input-shape", "features:1,6")
    assert verified.returncode == 0 and "matches" in verified.stdout, verified
    assert_clean_error(tfedge_run("verify", tmp_path / "multi.tfedge", "--input-shape", "features:1,7"), 2,
                       "--input-shape 'features:1,7' does not fit input 'features'", "[1, 6]")
