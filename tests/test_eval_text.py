"""`tfedge eval`/`compare` on a text embedding model (tiny keras-hub BERT): cosine to the hf: source, whose
sequence length comes from the converted model's manifest; dynamic sequence length resized to the data."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from text_fixtures import SEQ_LEN, sentences, tiny_bert, tiny_dynamic  # noqa: F401


@pytest.fixture(scope="session")
def text_inputs(tiny_bert, tmp_path_factory):  # noqa: F811
    """Tokenized sentences as model-ready inputs named after the source's inputs (token_ids, padding_mask)."""
    from tfedge.convert.sources import LoadOptions, load_source

    source = load_source(f"hf:{tiny_bert}", LoadOptions(task="sentence-embedding", seq_len=SEQ_LEN))
    samples = source.encode(sentences()[:12])
    path = tmp_path_factory.mktemp("text_inputs") / "inputs.npz"
    np.savez(path, **{spec.name: np.concatenate([s[i] for s in samples]) for i, spec in enumerate(source.inputs)})
    return path


def test_cosine_to_the_source_with_its_shape_from_the_manifest(tfedge, tiny_dynamic, tiny_bert, text_inputs):  # noqa: F811
    result = tfedge("eval", tiny_dynamic, "--data", text_inputs, "--reference", f"hf:{tiny_bert}", "--json")
    assert result.returncode == 0, result
    figures = json.loads(result.stdout)
    assert figures["samples"] == 12 and figures["top1"] is None
    assert figures["cosine_min"] > 0.98 and figures["top1_agreement"] is None  # embeddings: no argmax


def test_shorter_sequences_resize_the_dynamic_model(tiny_dynamic, text_inputs, tmp_path):  # noqa: F811
    from tfedge.analysis.evaluate import evaluate

    with np.load(text_inputs) as data:
        short = {key: data[key][:, :12] for key in data.files}
    np.savez(tmp_path / "short.npz", **short)
    figures = evaluate(str(tiny_dynamic), tmp_path / "short.npz", reference=str(tiny_dynamic))
    assert figures["cosine_min"] == pytest.approx(1.0, abs=1e-6)


def test_compare_text_variants_by_cosine(tfedge, tiny_dynamic, tiny_bert, text_inputs):  # noqa: F811
    started = time.perf_counter()
    result = tfedge("compare", f"hf:{tiny_bert}", tiny_dynamic, "--data", text_inputs, "--runs", 3, "--json")
    elapsed_ms = (time.perf_counter() - started) * 1e3
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    assert data["metric"] == "cosine"
    source, dynamic = data["rows"]
    assert source["mode"] == "source" and source["accuracy"] == pytest.approx(1.0)
    assert source["params"] == tiny_bert_params(tiny_bert)
    assert dynamic["accuracy"] > 0.98 and 0 < dynamic["latency_p50_ms"] < elapsed_ms
    # fully connected layers on every token + attention (Q.K^T, weights.V), 2 FLOPs per multiply-accumulate
    macs = 2 * (4 * 32 * 32 + 2 * 32 * 64) * SEQ_LEN + 2 * 2 * SEQ_LEN * SEQ_LEN * 32
    assert dynamic["gflops"] == pytest.approx(2 * macs / 1e9, rel=1e-9)


def tiny_bert_params(directory) -> int:
    """BertBackbone(num_layers=2, hidden_dim=32, intermediate_dim=64, max_sequence_length=64: write_tiny_bert's
    default) parameters, counted from the architecture and the vocabulary size of its tokenizer.json."""
    vocabulary = len(json.loads((directory / "tokenizer.json").read_text())["model"]["vocab"])
    hidden, intermediate, positions = 32, 64, 64
    embeddings = (vocabulary + positions + 2) * hidden + 2 * hidden  # token, position, segment; layer norm
    attention = 4 * (hidden * hidden + hidden) + 2 * hidden  # Q, K, V, output; layer norm
    feed_forward = hidden * intermediate + intermediate + intermediate * hidden + hidden + 2 * hidden
    pooler = hidden * hidden + hidden
    return embeddings + 2 * (attention + feed_forward) + pooler
