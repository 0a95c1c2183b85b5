"""tfedge convert hf:DIR: text models from a tiny keras-hub BERT built in-session (2 layers, hidden 32),
real conversions and the device runtime; selective-int8 and auto; bad inputs (exit code + one line)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_clean_error
from text_fixtures import SENTENCES, SEQ_LEN, convert_tiny, sentences


def test_source_matches_sentence_transformers_head(tiny_bert):
    from tfedge.convert.sources import LoadOptions, load_source

    source = load_source(f"hf:{tiny_bert}", LoadOptions(seq_len=SEQ_LEN))
    assert source.task == "sentence-embedding"
    assert [s.name for s in source.inputs] == ["token_ids", "padding_mask"]
    assert all(s.shape == (1, SEQ_LEN) and s.dtype == "int32" for s in source.inputs)
    token_ids, mask = source.encode(["A man is eating food."])[0]
    assert token_ids[0, 0] == 2 and mask.sum() == len([t for t in token_ids[0] if t]) > 3  # [CLS] first
    embedding = source.predict([token_ids, mask])[0]
    assert embedding.shape == (1, 32)
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)  # Normalize module
    # mean pooling ignores padding: the same sentence padded further gives the same vector
    longer = source.tokenizer().encode(["A man is eating food."], SEQ_LEN)
    assert np.allclose(source.predict(list(longer))[0], embedding, atol=1e-6)


def test_dynamic_conversion_writes_tokenizer_and_text_manifest(tiny_dynamic):
    manifest = json.loads(tiny_dynamic.with_suffix(".json").read_text())
    assert manifest["task"] == "sentence-embedding"
    assert manifest["text"] == {"tokenizer": "tokenizer.json", "seq_len": SEQ_LEN, "lowercase": True,
                                "pooling": "mean", "normalize": True, "inputs": ["token_ids", "padding_mask"],
                                "dynamic_length": True}
    assert manifest["inputs"][0]["shape"] == [1, -1]  # resizable on the device
    assert (tiny_dynamic.parent / "tokenizer.json").is_file()
    assert manifest["verification"]["cosine_min"] > 0.999
    assert "sentences from" in manifest["verification"]["data"]


def test_embed_on_device_matches_source(tiny_bert, tiny_dynamic):
    from tfedge_device.commands.embed import embed

    from tfedge.convert.sources import LoadOptions, load_source
    from tfedge.convert.verify import cosine

    texts = sentences()[:3]
    result = embed(tiny_dynamic, texts)
    assert result["dim"] == 32 and len(result["embeddings"]) == 3
    source = load_source(f"hf:{tiny_bert}", LoadOptions(seq_len=SEQ_LEN))
    for text, vector in zip(texts, result["embeddings"]):
        reference = source.predict(source.encode([text])[0])[0]
        assert cosine(reference, vector) > 0.999
    assert np.allclose(np.diag(result["cosine"]), 1.0, atol=1e-5)


def test_length_adaptive_equals_fixed_length(tiny_dynamic):
    from tfedge_device.commands.embed import embed

    texts = ["A man is eating food.", sentences()[40]]
    adaptive = embed(tiny_dynamic, texts)
    fixed = embed(tiny_dynamic, texts, adaptive=False)
    assert adaptive["length_adaptive"] and not fixed["length_adaptive"]
    assert np.allclose(adaptive["embeddings"], fixed["embeddings"], atol=1e-4)


def test_sequence_classification_head(tfedge, tiny_bert, tmp_path):
    out = tmp_path / "classifier.tflite"
    converted = tfedge("convert", f"hf:{tiny_bert}", "-o", out, "--task", "sequence-classification",
                       "--num-labels", "3", "--seq-len", SEQ_LEN, "--calib", SENTENCES, "--verify-count", "12", "--json")
    assert converted.returncode == 0, converted
    result = json.loads(converted.stdout)
    assert any("random weights" in note for note in result["notes"])
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["task"] == "sequence-classification" and manifest["text"]["pooling"] is None
    assert manifest["outputs"][0]["shape"] == [1, 3]
    assert result["verification"]["top1_agreement"] == 1.0
    from tfedge_device.commands.embed import embed

    device = embed(out, ["A man is eating food."])
    assert device["task"] == "sequence-classification" and len(device["scores"][0]) == 3
    assert sum(device["scores"][0]) == pytest.approx(1.0, abs=1e-4)
    assert device["classes"][0]["score"] == pytest.approx(max(device["scores"][0]), abs=1e-5)


def test_selective_int8_searches_when_full_int8_misses(tiny_bert, tmp_path):
    # The tiny random BERT survives full int8 (no outlier channels), so an exacting budget forces the search.
    # 8 --calib sentences (< MIN_SAMPLES_TO_HOLD_OUT): verified in-sample, and marked so. The exacting budget
    # holds on the sentences the search measured, not on unseen ones (held out of 24: min cosine 0.9998 < 0.99999,
    # exit 4), and this test is about the search.
    out = tmp_path / "selective.tflite"
    result = convert_tiny(tiny_bert, out, "selective-int8", budgets={"min_cosine": 0.99999}, calib_count=8)
    assert result["verification"]["split"] == "in-sample"
    plan = result["search"]["selective"]
    assert plan["sensitivity"] and plan["float_ops"], plan
    ranked = [row["cosine_min"] for row in plan["sensitivity"]]
    assert ranked == sorted(ranked, reverse=True)
    assert set(plan["int8_ops"]).isdisjoint(plan["float_ops"])
    assert plan["int8_ops"] or plan["int8_layers"], plan  # something stayed int8: the search chose, within budget
    assert plan["figures"]["cosine_min"] >= 0.99999
    assert result["verification"]["cosine_min"] >= 0.99999  # and the written model meets it too
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["search"]["selective"]["float_ops"] == plan["float_ops"]


def test_calibrate_uses_only_its_samples_not_the_held_out_half(tmp_path):
    # auto and selective-int8 calibrate on one half of --calib and measure on the other: the held-out half
    # (here the only samples reaching 100) must not widen the calibrated ranges.
    import keras
    import tflite

    from tfedge.convert.calibration import Samples
    from tfedge.convert.modes import ConvertContext
    from tfedge.convert.selective import calibrate
    from tfedge.convert.sources import LoadOptions, load_source

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "dense.keras")
    source = load_source(str(tmp_path / "dense.keras"), LoadOptions())
    half = Samples([[np.full((1, 4), 0.5, np.float32)]] * 4, "calibration half", True)
    every = Samples(half.arrays + [[np.full((1, 4), 100.0, np.float32)]] * 4, "all", True)
    calibrated = calibrate(source, half, ConvertContext(samples=every, show_progress=False))
    graph = tflite.Model.GetRootAsModel(calibrated, 0).Subgraphs(0)
    recorded = graph.Tensors(graph.Inputs(0)).Quantization()
    assert recorded.MaxAsNumpy().tolist() == [0.5]


def test_search_budget_note_when_the_verification_misses_what_the_search_met():
    from tfedge.convert.verify import search_budget_note

    report = {"selective": {"budgets": {"min_cosine": 0.99}, "int8_ops": []}}
    figures = {"cosine_min": 0.98861, "cosine_mean": 0.99319, "top1_agreement": None, "max_abs_error": 0.03}
    note = search_budget_note(report, figures)
    assert "0.9886 misses the budget 0.99" in note and "--calib" in note
    assert search_budget_note(report, {**figures, "cosine_min": 0.995}) is None
    assert search_budget_note(None, figures) is None and search_budget_note(report, None) is None


class HarmfulLayerEvaluator:
    """Test double of selective.Evaluator: instead of measuring outputs, it says min cosine 0.5 whenever the
    FULLY_CONNECTED layer `harmful` runs int8 (int8 weights) and 1.0 otherwise. The quantization is real."""

    def __init__(self, harmful: str, samples=None):
        self.harmful, self.samples = harmful, samples

    def finalize(self, model_bytes: bytes) -> bytes:
        return model_bytes

    def figures(self, model_bytes: bytes) -> dict:
        from tfedge.analysis.graph import graph_from_bytes

        main = graph_from_bytes(model_bytes).main
        int8 = {main.tensors[op.outputs[0]].name for op in main.ops
                if op.name == "FULLY_CONNECTED" and main.tensors[op.inputs[1]].dtype == "int8"}
        cosine = 0.5 if self.harmful in int8 else 1.0
        return {"cosine_min": cosine, "cosine_mean": cosine, "top1_agreement": 1.0, "max_abs_error": 0.0}


def test_selective_int8_falls_back_only_the_layer_that_hurts(tiny_bert):
    from tfedge.analysis.graph import graph_from_bytes
    from tfedge.convert.calibration import load_samples
    from tfedge.convert.selective import calibrate, layer_names, search
    from tfedge.convert.sources import LoadOptions, load_source

    source = load_source(f"hf:{tiny_bert}", LoadOptions(seq_len=SEQ_LEN))
    calibrated = calibrate(source, load_samples(str(SENTENCES), source, 8, None, False))
    layers = [name for _, name in layer_names(calibrated, {"FULLY_CONNECTED"})]
    assert len(layers) >= 12  # 2 layers x (Q, K, V, output, 2 feed-forward) (+ the pooler/head, if any)
    harmful = next(name for name in layers if "feedforward_output" in name)  # MiniLM's sensitive kind of layer
    plan = search(calibrated, HarmfulLayerEvaluator(harmful), {"min_cosine": 0.99})

    assert "FULLY_CONNECTED" not in plan.float_ops + plan.int8_ops  # decided layer by layer
    assert plan.float_layers == [harmful] and sorted(plan.int8_layers) == sorted(set(layers) - {harmful})
    assert plan.layer_sensitivity[-1] == {"layer": harmful, "op": "FULLY_CONNECTED", "cosine_min": 0.5}
    assert plan.describe().endswith(f"int8 {len(layers) - 1} of {len(layers)} FULLY_CONNECTED layers")
    main = graph_from_bytes(plan.quantized(calibrated)).main  # the model written: only `harmful` float
    weights = {main.tensors[op.outputs[0]].name: main.tensors[op.inputs[1]].dtype
               for op in main.ops if op.name == "FULLY_CONNECTED"}
    assert weights.pop(harmful) == "float32" and set(weights.values()) == {"int8"}


def slow_int8_transpose_timer(models: dict, sample, runs: int) -> dict:
    """Test double of latency.interleaved_latency_ms: 1 ms, +0.5 ms when the model has an int8 TRANSPOSE."""
    from tfedge.analysis.graph import graph_from_bytes

    def ms(model_bytes: bytes) -> float:
        main = graph_from_bytes(model_bytes).main
        return 1.0 + 0.5 * any(op.name == "TRANSPOSE" and main.tensors[op.inputs[0]].dtype == "int8"
                               for op in main.ops)

    return {name: ms(model_bytes) for name, model_bytes in models.items()}


def test_selective_int8_keeps_float_where_int8_is_slower(tiny_bert):
    from tfedge.analysis.graph import graph_from_bytes
    from tfedge.convert.calibration import load_samples
    from tfedge.convert.selective import calibrate, keep_int8_that_pays, layer_names, search
    from tfedge.convert.sources import LoadOptions, load_source

    source = load_source(f"hf:{tiny_bert}", LoadOptions(seq_len=SEQ_LEN))
    samples = load_samples(str(SENTENCES), source, 8, None, False)
    calibrated = calibrate(source, samples)
    harmful = next(name for _, name in layer_names(calibrated, {"FULLY_CONNECTED"}) if "feedforward_output" in name)
    evaluator = HarmfulLayerEvaluator(harmful, samples)
    searched = search(calibrated, evaluator, {"min_cosine": 0.99})
    assert "TRANSPOSE" in searched.int8_ops  # accuracy alone keeps it int8

    plan = keep_int8_that_pays(calibrated, searched, evaluator, {"min_cosine": 0.99},
                               timer=slow_int8_transpose_timer)
    decided = {row["op"]: row["kept"] for row in plan.timing}
    assert decided.pop("TRANSPOSE") == "float" and set(decided.values()) == {"int8"}
    assert decided.keys() == set(searched.int8_ops) - {"TRANSPOSE"} | {"FULLY_CONNECTED"}
    assert "TRANSPOSE" in plan.float_ops and plan.float_layers == [harmful]
    assert plan.describe().endswith("float because int8 was slower: TRANSPOSE")
    main = graph_from_bytes(plan.quantized(calibrated)).main
    transposes = [main.tensors[op.inputs[0]].dtype for op in main.ops if op.name == "TRANSPOSE"]
    assert transposes and set(transposes) == {"float32"}


def test_auto_picks_fastest_within_budget(tiny_bert, tmp_path):
    out = tmp_path / "auto.tflite"
    result = convert_tiny(tiny_bert, out, "auto", budgets={"min_cosine": 0.99})
    report = result["search"]["auto"]
    names = [row["mode"] for row in report["candidates"]]
    assert names == ["float16", "dynamic", "int8", "selective-int8", "int16x8"]
    within = [row for row in report["candidates"] if row["meets"]]
    chosen = next(row for row in within if row["mode"] == report["chosen"])
    assert chosen["latency_ms"] == min(row["latency_ms"] for row in within)
    assert report["baseline"]["mode"] == "float32" and report["budgets"] == {"min_cosine": 0.99}


def test_auto_exits_4_when_no_candidate_meets_the_budget(tfedge, tiny_bert, tmp_path):
    result = tfedge("convert", f"hf:{tiny_bert}", "-o", tmp_path / "m.tflite", "--quant", "auto", "--seq-len",
                    SEQ_LEN, "--calib", SENTENCES, "--calib-count", 8, "--min-cosine", 1.5)
    assert_clean_error(result, 4, "no candidate meets")
    assert "auto candidates" in result.stderr and "dynamic" in result.stderr  # the table explains why
    # the converter's own reason (int32 token inputs are not calibrated), not a progress stream closed by an
    # earlier candidate's conversion
    int16 = next(line for line in result.stderr.splitlines() if line.startswith("int16x8"))
    assert "cannot convert" in int16 and "during calibration" in int16, int16
    assert not (tmp_path / "m.tflite").exists()


def test_cli_convert_json(tfedge, tiny_bert, tmp_path):
    out = tmp_path / "cli.tflite"
    result = tfedge("convert", f"hf:{tiny_bert}", "-o", out, "--task", "sentence-embedding", "--seq-len", 16,
                    "--quant", "float32", "--calib", SENTENCES, "--verify-count", 4, "--json")
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["verification"]["cosine_min"] > 0.9999
    assert json.loads(out.with_suffix(".json").read_text())["text"]["seq_len"] == 16


def test_cli_selective_int8_prints_what_the_search_kept_float(tfedge, tiny_bert, tmp_path):
    result = tfedge("convert", f"hf:{tiny_bert}", "-o", tmp_path / "sel.tflite", "--seq-len", SEQ_LEN,
                    "--quant", "selective-int8", "--calib", SENTENCES, "--calib-count", 8, "--verify-count", 4)
    assert result.returncode == 0, result
    line = next(line for line in result.stdout.splitlines() if line.startswith("int8 search"))
    plan = json.loads((tmp_path / "sel.json").read_text())["search"]["selective"]
    assert plan["summary"] in line and line.endswith(" s)")


@pytest.mark.parametrize("make, args, words", [
    (lambda d: d / "missing", (), ["not found"]),
    (lambda d: d, (), ["no config.json"]),
    ("no-tokenizer", (), ["tokenizer.json"]),
    ("bert", ("--task", "translation"), ["translation", "sentence-embedding"]),
    ("bert", ("--seq-len", "1"), ["--seq-len", "1 is not in the range"]),
    ("bert", ("--num-labels", "3"), ["--num-labels", "sentence-embedding", "--task sequence-classification"]),
])
def test_bad_hf_sources(tfedge, tiny_bert, tmp_path, make, args, words):
    import shutil

    if make == "bert":
        source = tiny_bert
    elif make == "no-tokenizer":
        source = tmp_path / "copy"
        shutil.copytree(tiny_bert, source)
        (source / "tokenizer.json").unlink()
    else:
        source = make(tmp_path)
    result = tfedge("convert", f"hf:{source}", "-o", tmp_path / "m.tflite", "--quant", "float32", *args)
    assert_clean_error(result, 2, *words)


def test_sentence_file_on_an_image_model_is_refused(tfedge, digits_dir, tmp_path):
    result = tfedge("convert", digits_dir / "digits.keras", "-o", tmp_path / "m.tflite", "--quant", "int8",
                    "--calib", SENTENCES)
    assert_clean_error(result, 2, "unsupported calibration data sentences.txt", "image folder")


def test_empty_sentence_file(tfedge, tiny_bert, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    result = tfedge("convert", f"hf:{tiny_bert}", "-o", tmp_path / "m.tflite", "--quant", "int8",
                    "--seq-len", SEQ_LEN, "--calib", empty)
    assert_clean_error(result, 2, "no sentences")
