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
    assert info["macs"] >= per_token * SEQ_LEN
    assert any(o["op"] == "BATCH_MATMUL" and o["macs"] > 0 for o in info["operators"])
