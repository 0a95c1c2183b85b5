"""tfedge.convert.rewrites: the export rewrites of keras-hub attention and dense layers compute the same function
(against the model as keras-hub built it, with padding) and give the graph they promise; --no-rewrites
converts the graph as traced."""

from __future__ import annotations

import json

import numpy as np
import pytest
from text_fixtures import SENTENCES, SEQ_LEN, convert_tiny, sentences, write_tiny_bert

from tfedge.analysis.graph import read_graph


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert_biases"), random_biases=True)


@pytest.fixture(scope="module")
def source(tiny_bert):
    from tfedge.convert.sources import LoadOptions, load_source

    return load_source(f"hf:{tiny_bert}", LoadOptions(seq_len=SEQ_LEN))


def test_rewritten_graph_computes_the_same_embeddings(source):
    import tensorflow as tf
    original, export = source.concrete_function(), source.export_function()
    assert export is not original
    assert source.extra_manifest["export_rewrites"] == {"attention": 2, "dense": 11}  # 2 x (Q, K, V, 2 FFN) + pooler
    for sample in source.encode(sentences()[:6]):  # real sentences: most positions are padding
        a, b = (np.asarray(f(*[tf.constant(x) for x in sample])[0]) for f in (original, export))
        assert np.max(np.abs(a - b)) < 1e-5


def test_layers_are_restored_after_tracing(source):
    source.export_function()
    patched = [layer.name for layer in source.backbone._flatten_layers(recursive=True)
               if "call" in vars(layer) or "_compute_attention" in vars(layer)]
    assert patched == []


def _graph_facts(path):
    main = read_graph(path).main
    fcs = [op for op in main.ops if op.name == "FULLY_CONNECTED"]
    return {"fc": len(fcs), "fc_with_bias": sum(len(op.inputs) > 2 and op.inputs[2] >= 0 for op in fcs),
            "select": sum(op.name == "SELECT_V2" for op in main.ops),
            "shape_ops": sum(op.name in ("SHAPE", "REDUCE_PROD") for op in main.ops)}


def test_converted_graph_fuses_biases_and_drops_the_mask_selects(tiny_bert, tmp_path):
    fast, plain = tmp_path / "fast.tflite", tmp_path / "plain.tflite"
    result = convert_tiny(tiny_bert, fast, "dynamic")
    convert_tiny(tiny_bert, plain, "dynamic", rewrites=False)
    assert result["verification"]["cosine_min"] > 0.99  # verified against the unrewritten model
    fast_facts, plain_facts = _graph_facts(fast), _graph_facts(plain)
    assert fast_facts["fc"] == plain_facts["fc"] == fast_facts["fc_with_bias"]
    assert plain_facts["fc_with_bias"] < plain_facts["fc"]
    assert fast_facts["select"] + 2 * 2 == plain_facts["select"]  # two per attention layer gone
    assert fast_facts["shape_ops"] < plain_facts["shape_ops"]
    manifests = [json.loads(p.with_suffix(".json").read_text()) for p in (fast, plain)]
    assert manifests[0]["export_rewrites"]["attention"] == 2 and "export_rewrites" not in manifests[1]
    assert any("export rewrites" in note for note in result["notes"])


@pytest.mark.parametrize("equation, projects", [
    ("abc,cde->abde", True),  # keras-hub's query/key/value projection
    ("abc,cd->abd", True),
    ("abcd,cde->abe", False),  # the attention output projection: two contracted axes
    ("ab,bc->ac", False),  # rank 2
    ("abc,dce->abde", False),  # contracts a kernel axis other than the first
])
def test_which_einsum_dense_layers_are_rewritten(equation, projects):
    from tfedge.convert.rewrites import _projects_last_axis

    assert _projects_last_axis(equation) is projects


def test_cli_no_rewrites_flag(tfedge, tiny_bert, tmp_path):
    out = tmp_path / "plain.tflite"
    result = tfedge("convert", f"hf:{tiny_bert}", "-o", out, "--quant", "float32", "--seq-len", SEQ_LEN,
                    "--verify-count", "4", "--calib", SENTENCES, "--no-rewrites", "--json")
    assert result.returncode == 0, result
    assert "export_rewrites" not in json.loads(out.with_suffix(".json").read_text())
    assert _graph_facts(out)["fc_with_bias"] < _graph_facts(out)["fc"]


@pytest.mark.parametrize("bias_axes, applies", [("de", True), ("e", False), (None, True)])
def test_einsum_dense_with_a_partial_bias_is_left_alone(bias_axes, applies):
    import keras

    from tfedge.convert.rewrites import _dense, _dense_applies

    layer = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 4, 8), bias_axes=bias_axes)
    x = np.random.default_rng(0).normal(size=(1, 5, 16)).astype("float32")
    expected = np.asarray(layer(x))
    if bias_axes:
        layer.bias.assign(np.random.default_rng(1).normal(size=layer.bias.shape).astype("float32"))
        expected = np.asarray(layer(x))
    assert _dense_applies(layer) is applies
    if applies:
        assert np.max(np.abs(np.asarray(_dense(layer, x)) - expected)) < 1e-5
