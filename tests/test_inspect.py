"""`tfedge inspect`: operators, tensors, parameters and MACs of real converted digits models; runtime
compatibility (FULLY_CONNECTED v12 from a dynamic-range model vs tflite-runtime 2.14); bad inputs."""

from __future__ import annotations

import json

import pytest
from conftest import DIGITS, assert_clean_error


@pytest.fixture(scope="session")
def digits_dynamic(session_dir):
    from tfedge.convert.pipeline import ConvertRequest, convert

    out = session_dir / "digits_dynamic.tflite"
    convert(ConvertRequest(source=str(DIGITS / "digits.keras"), output=out, mode="dynamic",
                           labels=DIGITS / "labels.txt", show_progress=False))
    return out


@pytest.fixture(scope="session")
def keras_counts():
    """Parameters and MACs of the Keras digits model, counted from its layers (the reference)."""
    import keras

    model = keras.saving.load_model(DIGITS / "digits.keras", compile=False)
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            macs += h * w * c_out * kh * kw * layer.input.shape[-1]
        elif kind == "DepthwiseConv2D":
            kh, kw = layer.kernel_size
            _, h, w, c_out = layer.output.shape
            macs += h * w * c_out * kh * kw
        elif kind == "Dense":
            macs += layer.input.shape[-1] * layer.units
    return model.count_params(), macs


def _inspect(tfedge, model):
    result = tfedge("inspect", model, "--json")
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def test_float_model_counts_match_keras(tfedge, digits_float, keras_counts):
    params, macs = keras_counts
    info = _inspect(tfedge, digits_float)
    assert info["params"] == params
    assert info["macs"] == pytest.approx(macs, rel=0.02)
    assert info["flops"] == 2 * info["macs"]
    assert info["size_bytes"] == digits_float.stat().st_size
    ops = {o["op"] for o in info["operators"]}
    assert "CONV_2D" in ops and "FULLY_CONNECTED" in ops
    assert sum(o["count"] for o in info["operators"]) == info["operator_count"]
    assert info["inputs"][0]["shape"] == [1, 8, 8, 1] and info["inputs"][0]["dtype"] == "float32"
    assert info["manifest"]["mode"] == "float32"


def test_int8_model_tensors_are_quantized(tfedge, digits_int8, keras_counts):
    info = _inspect(tfedge, digits_int8)
    assert info["params"] == keras_counts[0]
    assert info["inputs"][0]["dtype"] == "int8"
    q = info["inputs"][0]["quantization"]
    assert q["per_channel"] is False and q["scale"] == pytest.approx(1 / 255, rel=1e-3)
    weights = [t for t in info["tensors"] if t["constant"] and t["dtype"] == "int8" and t["quantization"]]
    assert any(t["quantization"]["per_channel"] for t in weights)  # conv kernels: per-channel scales


def test_dynamic_model_is_flagged_for_tflite_runtime_214(tfedge, digits_dynamic):
    info = _inspect(tfedge, digits_dynamic)
    compat = info["compatibility"]
    assert any(n["op"] == "FULLY_CONNECTED" and n["version"] >= 12 for n in compat["ops"])
    verdicts = {v["runtime"]: v for v in compat["runtimes"]}
    assert verdicts["litert"]["ok"] is True and verdicts["litert"]["method"] == "loaded here"
    old = verdicts["tflite-runtime"]
    assert old["ok"] is False and "FULLY_CONNECTED" in old["reason"] and "2.14" in old["reason"]
    human = tfedge("inspect", digits_dynamic)
    assert human.returncode == 0, human
    rows = {line.split()[0]: line.split()[1:] for line in human.stdout.splitlines()
            if line.startswith(("litert", "tflite-runtime"))}
    assert "NO" in rows["tflite-runtime"] and "yes" in rows["litert"], human.stdout  # its "can run" column
    assert "tflite-runtime cannot run" in human.stderr


def test_float_model_runs_everywhere(tfedge, digits_float):
    verdicts = _inspect(tfedge, digits_float)["compatibility"]["runtimes"]
    assert all(v["ok"] for v in verdicts), verdicts


def test_human_output(tfedge, digits_int8):
    result = tfedge("inspect", digits_int8, "--tensors")
    assert result.returncode == 0, result
    for word in ("parameters", "GFLOPs", "CONV_2D", "scale", "Runtime compatibility", "Manifest: mode int8"):
        assert word in result.stdout, word


def test_stale_manifest_is_shown_and_flagged(tfedge, tmp_path, digits_float, digits_int8):
    model = tmp_path / "model.tflite"
    model.write_bytes(digits_float.read_bytes())
    (tmp_path / "model.json").write_text(digits_int8.with_suffix(".json").read_text())  # another model's
    result = tfedge("inspect", model)
    assert result.returncode == 0, result
    assert "STALE" in result.stdout
    assert _inspect(tfedge, model)["manifest_matches_model"] is False


def test_bad_inputs(tfedge, tmp_path, digits_float):
    assert_clean_error(tfedge("inspect", tmp_path / "missing.tflite"), 2, "not found")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    assert_clean_error(tfedge("inspect", junk), 2, "not a TFLite model")
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(digits_float.read_bytes()[:200])
    assert_clean_error(tfedge("inspect", truncated), 2, "truncated.tflite")
    assert_clean_error(tfedge("inspect", tmp_path), 2, "directory")


def test_edgetpu_compiled_model_is_judged_without_loading(tfedge, tmp_path):
    from edgetpu_models import edgetpu_shaped_model  # a model shaped like edgetpu_compiler's output

    model = tmp_path / "m_edgetpu.tflite"
    model.write_bytes(edgetpu_shaped_model())
    info = _inspect(tfedge, model)
    assert info["edgetpu_custom_op"] is True
    assert any(o["op"] == "edgetpu-custom-op" for o in info["operators"])
    compat = info["compatibility"]
    assert compat["unknown_to_table"] == []  # custom ops carry no builtin version
    for verdict in compat["runtimes"]:
        assert verdict["method"] == "release table" and "libedgetpu" in verdict["reason"]
