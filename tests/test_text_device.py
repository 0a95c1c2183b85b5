"""tfedge-run embed and classify --text: text on the device with tokenizers and the bundled tokenizer.json,
never TensorFlow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_clean_error
from text_fixtures import SEQ_LEN

BLOCK_TENSORFLOW = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "


def run_device(code: str, *blocked: str) -> subprocess.CompletedProcess:
    """Run device code in a fresh interpreter with TensorFlow (and `blocked`) made unimportable."""
    block = "".join(f"sys.modules[{name!r}] = None; " for name in blocked)
    return subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW + block + code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_embed_json_without_tensorflow(tiny_dynamic):
    code = (f"from tfedge_device.cli import main; sys.exit(main(['embed', {str(tiny_dynamic)!r}, '--text', "
            "'A man is eating food.', '--text', 'A man is eating a piece of bread.', '--json']))")
    done = run_device(code)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["dim"] == 32 and len(result["embeddings"]) == 2 and result["length_adaptive"]
    assert result["cosine"][0][0] == pytest.approx(1.0, abs=1e-5)
    first, second = (np.asarray(e, dtype=np.float64) for e in result["embeddings"])
    expected = first @ second / (np.linalg.norm(first) * np.linalg.norm(second))
    assert result["cosine"][0][1] == pytest.approx(expected, abs=1e-5)  # the pair's cosine, from its embeddings
    assert result["cosine"][1][0] == pytest.approx(expected, abs=1e-5)


def test_embed_human_output(tfedge_run, tiny_dynamic, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("The cat is sleeping.\n\nThe dog is barking.\n")
    result = tfedge_run("embed", tiny_dynamic, "--file", texts, "--fixed")
    assert result.returncode == 0, result
    assert "dim 32" in result.stdout and "cosine similarity" in result.stdout
    assert "[1]" in result.stdout and "[2]" not in result.stdout  # blank lines skipped


def test_embed_without_text(tfedge_run, tiny_dynamic):
    assert_clean_error(tfedge_run("embed", tiny_dynamic), 2, "no text")


def test_embed_on_an_image_model(tfedge_run, digits_float):
    assert_clean_error(tfedge_run("embed", digits_float, "--text", "hello"), 2, "not a text model")


def test_embed_missing_tokenizer(tfedge_run, tiny_dynamic, tmp_path):
    for name in (tiny_dynamic.name, tiny_dynamic.with_suffix(".json").name):
        shutil.copy(tiny_dynamic.parent / name, tmp_path / name)
    assert_clean_error(tfedge_run("embed", tmp_path / tiny_dynamic.name, "--text", "hi"), 2, "tokenizer")


def test_embed_missing_text_file(tfedge_run, tiny_dynamic, tmp_path):
    assert_clean_error(tfedge_run("embed", tiny_dynamic, "--file", tmp_path / "none.txt"), 2, "not found")


def test_embed_without_tokenizers_library(tiny_dynamic):
    code = f"from tfedge_device.cli import main; sys.exit(main(['embed', {str(tiny_dynamic)!r}, '--text', 'hi']))"
    done = run_device(code, "tokenizers")
    assert done.returncode == 3, done.stderr
    assert "tokenizers" in done.stderr and "[text]" in done.stderr and "Traceback" not in done.stderr


def test_text_encoder_truncates_and_pads(tiny_bert):
    from tfedge_device.text import TextEncoder

    encoder = TextEncoder(tiny_bert / "tokenizer.json", SEQ_LEN)
    token_ids, mask = encoder.encode(["word " * 100, "hi"])
    assert token_ids.shape == mask.shape == (2, SEQ_LEN) and token_ids.dtype.name == "int32"
    assert mask[0].all() and token_ids[0, -1] == 3  # truncated, still ends with [SEP]
    assert mask[1].sum() == encoder.token_lengths(["hi"])[0] < SEQ_LEN


def test_classify_text_json_without_tensorflow(tiny_classifier, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("negative\nneutral\npositive\n")
    code = (f"from tfedge_device.cli import main; sys.exit(main(['classify', {str(tiny_classifier)!r}, '--text', "
            f"'A man is eating food.', '--text', 'The dog is barking.', '-k', '3', '-t', '0', "
            f"'--labels', {str(labels)!r}, '--json']))")
    done = run_device(code)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["task"] == "sequence-classification" and result["summary"]["texts"] == 2
    first = result["results"][0]
    assert first["text"] == "A man is eating food." and len(first["inference_ms"]) == 1
    assert {c["label"] for c in first["classes"]} == {"negative", "neutral", "positive"}
    assert sum(c["score"] for c in first["classes"]) == pytest.approx(1.0, abs=1e-3)  # softmax of the logits
    from tfedge_device.text import TextModel

    logits = TextModel(tiny_classifier).run("A man is eating food.")[0].reshape(-1)  # the head outputs logits
    scores = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert first["classes"][0]["id"] == int(scores.argmax())
    assert first["classes"][0]["score"] == pytest.approx(float(scores.max()), abs=1e-5)


def test_classify_one_text_prints_pycoral_layout(tfedge_run, tiny_classifier):
    result = tfedge_run("classify", tiny_classifier, "--text", "The cat is sleeping.", "-c", "3", "-t", "0")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "----INFERENCE TIME----" and "-------RESULTS--------" in lines
    assert len(lines[1:lines.index("-------RESULTS--------")]) == 3  # --count 3: each run timed


@pytest.mark.parametrize("args, words", [
    (["--input", "IMAGE"], ["sequence-classification", "--text"]),
    ([], ["nothing to classify"]),
    (["--input", "IMAGE", "--text", "hi"], ["not both"]),
    (["--text", "hi", "--edgetpu"], ["--edgetpu", "image models"]),
])
def test_classify_text_classifier_errors(tfedge_run, tiny_classifier, digits_dir, args, words):
    image = str(digits_dir / "images" / "digit_0.png")
    args = [image if a == "IMAGE" else a for a in args]
    assert_clean_error(tfedge_run("classify", tiny_classifier, *args), 2, *words)


def test_classify_text_on_other_models(tfedge_run, tiny_dynamic, digits_float):
    assert_clean_error(tfedge_run("classify", tiny_dynamic, "--text", "hi"), 2, "sentence-embedding",
                       "tfedge-run embed")
    assert_clean_error(tfedge_run("classify", digits_float, "--text", "hi"), 2, "not a text model")
