"""Bad inputs of tfedge prune / qat / cluster / distill: exit 2, one line, no traceback, nothing written.

Run in-process (they all fail before any training or tfmot import), so the file stays fast."""

from __future__ import annotations

import types

import numpy as np
import pytest
from conftest import DIGITS, assert_clean_error


@pytest.fixture(scope="module")
def digits_train(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.npz"
    with np.load(DIGITS / "test.npz") as data:
        np.savez(path, x=data["x"][:64], y=data["y"][:64])
    return path


@pytest.fixture
def tfedge(capsys):
    """In-process CLI run -> an object with returncode/stdout/stderr, like the subprocess runner."""
    from tfedge.cli import main

    def run(*args):
        with pytest.raises(SystemExit) as done:
            main([str(a) for a in args])
        captured = capsys.readouterr()
        return types.SimpleNamespace(returncode=done.value.code, stdout=captured.out, stderr=captured.err)

    return run


@pytest.mark.parametrize("args, words", [
    (("prune", "{model}", "--data", "{tmp}/missing.npz", "-o", "{tmp}/o.h5"), ("not found",)),
    (("prune", "{model}", "--data", "{unlabeled}", "-o", "{tmp}/o.h5"), ("no labels",)),
    (("prune", "{model}", "--data", "{wrong_shape}", "-o", "{tmp}/o.h5"), ("shape",)),
    (("prune", "{model}", "--data", "{train}", "--sparsity", "1.5", "-o", "{tmp}/o.h5"), ("sparsity",)),
    (("prune", "{tmp}/nope.keras", "--data", "{train}", "-o", "{tmp}/o.h5"), ("not found",)),
    (("prune", "{train}", "--data", "{train}", "-o", "{tmp}/o.h5"), ("unsupported model",)),
    (("prune", "{model}", "--data", "{train}", "-o", "{tmp}/no/dir/o.h5"), ("does not exist",)),
    (("prune", "{model}", "--data", "{train}", "--exclude", "Conv3D", "-o", "{tmp}/o.h5"), ("matches no layer",)),
    (("qat", "{model}", "--data", "{train}", "-o", "{tmp}/o.h5"), ("tflite",)),
    (("qat", "{model}", "--data", "{train}", "--quant", "float16", "-o", "{tmp}/o.tflite"), ("int8",)),
    (("cluster", "{model}", "--data", "{train}", "--clusters", "1", "-o", "{tmp}/o.h5"), ("clusters",)),
    (("cluster", "{model}", "--data", "{train}", "--epochs", "0", "-o", "{tmp}/o.h5"), ("epochs",)),
    (("distill", "--teacher", "{model}", "--student", "{model}", "--data", "{train}", "--alpha", "2",
      "-o", "{tmp}/o.h5"), ("alpha",)),
])
def test_bad_inputs_exit_2(tfedge, digits_train, tmp_path, args, words):
    unlabeled, wrong_shape = tmp_path / "unlabeled.npz", tmp_path / "wrong.npz"
    np.savez(unlabeled, x=np.zeros((8, 8, 8, 1), np.float32))
    np.savez(wrong_shape, x=np.zeros((8, 4, 4, 1), np.float32), y=np.zeros(8, np.int64))
    fill = {"model": DIGITS / "digits.keras", "tmp": tmp_path, "unlabeled": unlabeled,
            "wrong_shape": wrong_shape, "train": digits_train}
    result = tfedge(*[a.format(**fill) for a in args])
    assert_clean_error(result, 2, *words)
    assert not (tmp_path / "o.h5").exists() and not (tmp_path / "o.tflite").exists()


def test_distill_student_that_does_not_fit_the_teacher(tfedge, digits_train, tmp_path):
    import keras

    wrong = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    wrong.save(tmp_path / "wrong.keras")
    result = tfedge("distill", "--teacher", DIGITS / "digits.keras", "--student", tmp_path / "wrong.keras",
                    "--data", digits_train, "-o", tmp_path / "o.h5")
    assert_clean_error(result, 2, "does not match the teacher")


@pytest.mark.parametrize("tf_config, words", [
    (None, ("TF_CONFIG",)),
    ("{not json", ("not valid JSON",)),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', ("cluster.worker",)),
    ('{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 5}}', ("task",)),
])
def test_multiworker_needs_a_valid_tf_config(tfedge, digits_train, tmp_path, monkeypatch, tf_config, words):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    result = tfedge("prune", DIGITS / "digits.keras", "--data", digits_train, "--strategy", "multiworker",
                    "-o", tmp_path / "o.h5")
    assert_clean_error(result, 2, *words)
