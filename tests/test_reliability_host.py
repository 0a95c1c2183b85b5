"""Reliability catalogue, host side: bad inputs to `tfedge`, unsafe Keras files, full and read-only disks, Ctrl-C.

Each case asserts the exit code, one error line naming the problem, no traceback, and no output left behind
(an existing output survives unchanged). Full and read-only disks are real: a 32 KiB or read-only tmpfs
mounted in a private mount namespace (`unshare -m`, as root); skipped where that is not permitted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import VENV_BIN, assert_clean_error, run_command

OLD = b"previous output, must survive\n"


@pytest.fixture(scope="module")
def lambda_models(tmp_path_factory) -> dict:
    """A Keras 3 .keras and a tf_keras .h5 file, each with a Lambda layer (x * 2) in front of a classifier."""
    import keras
    import tf_keras

    root = tmp_path_factory.mktemp("lambda")
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Dense(10, activation="softmax")(
        keras.layers.Flatten()(keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)))
    keras.Model(inputs, outputs).save(root / "lambda.keras")
    inputs = tf_keras.Input((8, 8, 1))
    outputs = tf_keras.layers.Dense(10, activation="softmax")(
        tf_keras.layers.Flatten()(tf_keras.layers.Lambda(lambda t: t * 2.0, name="doubler")(inputs)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras calls HDF5 "legacy": it is the format under test
        tf_keras.Model(inputs, outputs).save(root / "lambda.h5")
    return {"keras": root / "lambda.keras", "h5": root / "lambda.h5"}


@pytest.fixture(scope="module")
def inputs_dir(tmp_path_factory, digits_int8) -> Path:
    root = tmp_path_factory.mktemp("host_inputs")
    (root / "not_saved_model").mkdir()
    (root / "not_saved_model" / "variables.txt").write_text("x")
    np.savez(root / "wrong.npz", x=np.zeros((4, 9, 9, 1), np.float32), y=np.zeros(4, np.int64))
    (root / "text.tflite").write_text("not a model\n")
    data = digits_int8.read_bytes()
    (root / "truncated.tflite").write_bytes(data[: len(data) // 2])
    return root


# case -> (arguments with {keras} {h5} {in} {int8} {out} placeholders, exit code, words the message names).
# An empty calibration folder and a calibration .npy of the wrong shape are cases of
# test_convert.py::test_bad_input_is_one_line_exit_2 (same checks; not repeated: each costs a TensorFlow load).
CASES = {
    "missing_source": (["convert", "{in}/nope.keras", "-o", "{out}"], 2, ["source not found"]),
    "unknown_mode": (["convert", "{digits}", "-o", "{out}", "--quant", "int3"], 2, ["unknown", "int3"]),
    "directory_not_saved_model": (["convert", "{in}/not_saved_model", "-o", "{out}"], 2, ["not a SavedModel"]),
    "input_shape_flag_mismatch": (["convert", "{digits}", "-o", "{out}", "--input-shape", "1,9,9,1"], 2,
                                  ["--input-shape [1, 9, 9, 1]", "does not fit"]),
    "eval_data_wrong_shape": (["eval", "{int8}", "--data", "{in}/wrong.npz"], 2, ["[4, 9, 9, 1]", "does not fit"]),
    "keras_lambda_refused": (["convert", "{keras}", "-o", "{out}"], 2, ["Lambda layer", "doubler", "--unsafe"]),
    "h5_lambda_refused": (["convert", "{h5}", "-o", "{out}"], 2, ["Lambda layer", "doubler", "--unsafe"]),
    "output_directory_missing": (["convert", "{digits}", "-o", "{in}/no/such/dir/out.tflite"], 2,
                                 ["output directory does not exist"]),
    "export_c_output_directory_missing": (["export-c", "{int8}", "-o", "{in}/no/dir/model.cc"], 2,
                                          ["output directory does not exist"]),
    "inspect_text_named_tflite": (["inspect", "{in}/text.tflite"], 2, ["not a TFLite model"]),
    "export_c_truncated_model": (["export-c", "{in}/truncated.tflite", "-o", "{out_cc}"], 2,
                                 ["not a valid TFLite model"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tfedge_bad_input(case, lambda_models, inputs_dir, digits_int8, digits_dir, tfedge, tmp_path):
    args, code, words = CASES[case]
    out = tmp_path / "out.tflite"
    values = {"keras": lambda_models["keras"], "h5": lambda_models["h5"], "in": inputs_dir, "int8": digits_int8,
              "out": out, "out_cc": tmp_path / "model.cc", "digits": digits_dir / "digits.keras"}
    before = sorted(os.listdir(inputs_dir))
    result = tfedge(*[a.format(**values) for a in args], cwd=tmp_path)
    assert_clean_error(result, code, *words)
    assert os.listdir(tmp_path) == []  # no output, no temp file
    assert sorted(os.listdir(inputs_dir)) == before


def test_lambda_model_converts_with_unsafe(lambda_models, tfedge, tmp_path):
    out = tmp_path / "lambda.tflite"
    result = tfedge("convert", lambda_models["h5"], "-o", out, "--unsafe", "--verify-count", "2", "-q")
    assert result.returncode == 0, result
    assert out.exists() and out.with_suffix(".json").exists()


# -- real full and read-only filesystems ------------------------------------------------------------
def in_small_filesystem(directory: Path, mount_options: str, *args, listing: Path) -> subprocess.CompletedProcess:
    """Run `tfedge ARGS` with `directory` a fresh tmpfs (mount_options) seen only by that process; an existing
    output `directory/out.tflite` holding OLD is planted first (unless read-only); the directory's listing and
    the old file's content afterwards are written to `listing`."""
    if shutil.which("unshare") is None:  # util-linux: part of every Debian system
        pytest.fail("unshare is not installed (Debian: util-linux)")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=32k tmpfs {directory}"],
                           check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs in a mount namespace here (CI runs as root): {probe.stderr.strip()[:200]}")
    plant = "" if "ro" in mount_options.split(",") else f'printf "{OLD.decode().strip()}\\n" > "$0/out.tflite"; '
    script = (f'mount -t tmpfs -o {mount_options} tmpfs "$0" && {plant}"$@"; code=$?; '
              f'ls -A "$0" > {listing}; cat "$0/out.tflite" >> {listing} 2>/dev/null; exit $code')
    return subprocess.run(["unshare", "-m", "sh", "-c", script, str(directory), str(VENV_BIN / "tfedge"),
                           *map(str, args)], check=False, capture_output=True, text=True, timeout=600)


def test_disk_full_during_write_leaves_the_old_output(digits_dir, tmp_path):
    small, listing = tmp_path / "small", tmp_path / "listing.txt"
    small.mkdir()
    done = in_small_filesystem(small, "size=32k", "convert", digits_dir / "digits.keras", "-o", small / "out.tflite",
                               "--verify-count", "2", "-q", listing=listing)
    assert_clean_error(done, 3, "no space left on device", "out.tflite")
    names, old = listing.read_text().split("\n", 1)
    assert names == "out.tflite" and old.encode() == OLD  # no temp file; the old output intact


def test_read_only_output_directory(digits_dir, tmp_path):
    readonly, listing = tmp_path / "readonly", tmp_path / "listing.txt"
    readonly.mkdir()
    done = in_small_filesystem(readonly, "ro,size=32k", "convert", digits_dir / "digits.keras",
                               "-o", readonly / "out.tflite", listing=listing)
    assert_clean_error(done, 2, "output directory is not writable")
    assert listing.read_text() == ""


# -- Ctrl-C -------------------------------------------------------------------------------------------
@contextlib.contextmanager
def sigint_as_in_a_terminal():
    """SIGINT with Python's default handler for the block, then as before. A suite started in the background
    (`nohup ... &`) inherits SIGINT as ignored, and tfedge rightly keeps ignoring it then."""
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_interrupted_conversion_leaves_no_partial_file(stop, digits_dir, tmp_path):
    """Ctrl-C, or SIGTERM (a service stopped, `timeout`): exit 130, no partial file, the old output intact."""
    out = tmp_path / "out.tflite"
    out.write_bytes(OLD)
    # MobileNetV2 calibrated on 200 images takes far longer than the wait below even on a quiet machine, so
    # the signal lands while TensorFlow is imported, the model built, or calibration runs: never after the end.
    with sigint_as_in_a_terminal():  # exec hands the child the default action, not an inherited "ignored"
        process = subprocess.Popen([str(VENV_BIN / "tfedge"), "convert", "keras-app:MobileNetV2", "--weights", "none",
                                    "-o", out, "--quant", "int8", "--calib", digits_dir / "calib", "--calib-count",
                                    "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    process.send_signal(stop)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert sorted(os.listdir(tmp_path)) == ["out.tflite"] and out.read_bytes() == OLD


def test_atomic_path_keeps_the_old_file_when_interrupted_mid_write(tmp_path):
    from tfedge_device.fileio import atomic_path

    target = tmp_path / "model.tflite"
    target.write_bytes(OLD)
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        tmp.write_bytes(b"half a mod")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["model.tflite"] and target.read_bytes() == OLD


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt
def test_ctrl_c_that_python_loses_in_a_destructor_still_stops_the_write(tmp_path, monkeypatch):
    """A KeyboardInterrupt raised inside __del__ (or a callback from native code) is printed as "Exception
    ignored" and dropped: the recorded interrupt still keeps atomic_path from committing (fileio._INTERRUPTED)."""
    import threading

    from tfedge_device import fileio

    monkeypatch.setattr(fileio, "_INTERRUPTED", threading.Event())

    class DroppedInterrupt:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))  # Python runs the handler here, inside __del__, which swallows its exception

    target = tmp_path / "model.tflite"
    target.write_bytes(OLD)
    with sigint_as_in_a_terminal():
        fileio.interrupt_on_signals()
        with pytest.raises(KeyboardInterrupt), fileio.atomic_path(target) as tmp:
            tmp.write_bytes(b"new model")
            DroppedInterrupt()  # collected at once: the interrupt lands and is lost
            reached_end_of_work = True
    assert reached_end_of_work  # the work itself was not stopped: only the record stops the commit
    assert os.listdir(tmp_path) == ["model.tflite"] and target.read_bytes() == OLD


def test_unknown_command_and_bad_flag(tfedge):
    assert_clean_error(run_command("tfedge", "frobnicate"), 2, "frobnicate")
    assert_clean_error(tfedge("convert", "x.keras"), 2, "--output")


def test_manifest_write_failure_keeps_the_old_model_and_manifest(digits_dir, tmp_path, monkeypatch):
    """Disk full exactly when the manifest is written: the old model and manifest both survive."""
    import errno

    from tfedge_device.errors import EnvironmentMissing
    from tfedge_device.fileio import write_text

    from tfedge.convert import pipeline as convert_module
    from tfedge.convert.pipeline import ConvertRequest, convert

    out = tmp_path / "out.tflite"
    out.write_bytes(OLD)
    out.with_suffix(".json").write_bytes(OLD)

    def disk_full(model_path, manifest):  # the real writer, into a file that cannot grow
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("os.fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left")))
            return write_text(Path(model_path).with_suffix(".json"), "{}")

    monkeypatch.setattr(convert_module, "write_manifest", disk_full)
    with pytest.raises(EnvironmentMissing, match="no space left"):
        convert(ConvertRequest(source=str(digits_dir / "digits.keras"), output=out, verify_count=2,
                               show_progress=False))
    assert sorted(os.listdir(tmp_path)) == ["out.json", "out.tflite"]
    assert out.read_bytes() == OLD and out.with_suffix(".json").read_bytes() == OLD


def test_temp_files_left_by_a_killed_process_are_swept_by_the_next_write(tmp_path):
    """SIGKILL or a power cut can leave `.NAME.XXXX.tmp`; the next write of NAME removes old ones (not fresh
    ones: another process may be writing)."""
    from tfedge_device.fileio import STALE_TEMP_S, write_bytes

    old, fresh = tmp_path / ".model.tflite.abc123.tmp", tmp_path / ".model.tflite.def456.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    stale = time.time() - STALE_TEMP_S - 60
    os.utime(old, (stale, stale))
    write_bytes(tmp_path / "model.tflite", b"complete")
    assert sorted(os.listdir(tmp_path)) == [".model.tflite.def456.tmp", "model.tflite"]
