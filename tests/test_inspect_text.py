"""`tfedge inspect` on a text model with a dynamic sequence length: MACs counted at the default input shape
[1, seq_len], not at the flatbuffer's placeholder length 1."""

from __future__ import annotations

import json

from text_fixtures import SEQ_LEN, tiny_bert, tiny_dynamic  # noqa: F401


def test_macs_at_the_default_sequence_length(tfedge, tiny_dynamic):  # noqa: F811
    result = tfedge("inspect", tiny_dynamic, "--json")
    assert result.returncode == 0, result
    info = json.loads(result.stdout)
    assert info["macs_at"] == [[1, SEQ_LEN], [1, SEQ_LEN]]
    # tiny BERT: 2 layers, hidden 32, intermediate 64; the fully connected layers alone, every token:
    per_token = 2 * (4 * 32 * 32 + 2 * 32 * 64)
    fully_connected = sum(o["macs"] for o in info["operators"] if o["op"] == "FULLY_CONNECTED")
    assert fully_connected == per_token * SEQ_LEN, info["operators"]
    # attention: Q.K^T and weights.V, each seq x seq x hidden multiply-accumulates (all heads), per layer
    attention = sum(o["macs"] for o in info["operators"] if o["op"] == "BATCH_MATMUL")
    assert attention == 2 * 2 * SEQ_LEN * SEQ_LEN * 32, info["operators"]
    assert info["macs"] == fully_connected + attention  # no other op of this graph multiplies-accumulates
