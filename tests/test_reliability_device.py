"""Reliability catalogue, device side: bad inputs to `tfedge-run` and the model guard.

Each case asserts the exit code, one error line naming the problem, no traceback, and no file left behind.
Damaged models are made from the real digits models: cut, overwritten, or with one flatbuffer field
rewritten at its position (found with the `tflite` schema package). The Edge TPU model is crafted
(edgetpu_models.py: the digits model's I/O around one `edgetpu-custom-op`, as in test_bundle.py): nothing can
compile for the Edge TPU here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error
from edgetpu_models import edgetpu_twin


# -- models damaged at one field ---------------------------------------------------------------------
def _tensor_with_buffer(model, subgraph=0):
    """A constant tensor (its buffer holds data: activations have empty buffers)."""
    tensors = model.Subgraphs(subgraph)
    return next(tensors.Tensors(i) for i in range(tensors.TensorsLength())
                if model.Buffers(tensors.Tensors(i).Buffer()).DataLength() > 0)


def patched(data: bytes, field: str) -> bytes:
    """`data` with one structural field set to an impossible value."""
    import tflite

    model = tflite.Model.GetRootAsModel(data, 0)
    out = bytearray(data)
    if field == "huge_shape":  # the first input's batch dimension -> 2**30 (tens of GB of activations)
        subgraph = model.Subgraphs(0)
        tensor = subgraph.Tensors(int(subgraph.InputsAsNumpy()[0]))
        position, value = tensor._tab.Vector(tensor._tab.Offset(4)), 1 << 30
    elif field == "buffer_index":  # a constant tensor pointing past the buffer table
        tensor = _tensor_with_buffer(model)
        position, value = tensor._tab.Pos + tensor._tab.Offset(8), 10_000
    elif field == "opcode_index":  # an operator naming an operator code that does not exist
        subgraph = model.Subgraphs(0)
        op = next(subgraph.Operators(i) for i in range(subgraph.OperatorsLength())
                  if subgraph.Operators(i)._tab.Offset(4))
        position, value = op._tab.Pos + op._tab.Offset(4), 999
    elif field == "tensor_index":  # the subgraph's output is a tensor that does not exist
        subgraph = model.Subgraphs(0)
        position, value = subgraph._tab.Vector(subgraph._tab.Offset(8)), 5_000
    elif field == "schema_version":
        position, value = model._tab.Pos + model._tab.Offset(4), 4
    elif field == "negative_dimension":
        tensor = _tensor_with_buffer(model)
        position, value = tensor._tab.Vector(tensor._tab.Offset(4)), 0xFFFFFFFE  # -2
    elif field == "constant_size":  # a weight tensor whose shape claims one more row than its data holds
        tensor = _tensor_with_buffer(model)
        position, value = tensor._tab.Vector(tensor._tab.Offset(4)), int(tensor.ShapeAsNumpy()[0]) + 1
    elif field == "root_offset":
        position, value = 0, len(data) + 64
    elif field == "zero_points":  # per-channel weights with 2 zero points for N > 2 scales
        subgraph = model.Subgraphs(0)
        quantization = next(subgraph.Tensors(i).Quantization() for i in range(subgraph.TensorsLength())
                            if subgraph.Tensors(i).Quantization() is not None
                            and subgraph.Tensors(i).Quantization().ScaleLength() > 2)
        position, value = quantization._tab.Vector(quantization._tab.Offset(10)) - 4, 2  # the length prefix
    else:
        raise ValueError(field)
    out[position:position + 4] = struct.pack("<I", value)
    return bytes(out)


# -- images ------------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A PNG header declaring width x height pixels (what a decoder would allocate) with a tiny body."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _png_chunk(b"IEND", b""))


def save_image(path: Path, mode: str, size=(8, 8)) -> Path:
    from PIL import Image

    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze() if channels == 1 else pixels, mode).save(path)
    return path


@pytest.fixture(scope="module")
def rgb_model(session_dir) -> Path:
    """A tiny RGB classifier (8x8x3 -> 3 classes), converted float32 with its manifest."""
    import keras

    from tfedge.convert.pipeline import ConvertRequest, convert

    out = session_dir / "rgb_tiny.tflite"
    if not out.exists():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
        model.save(session_dir / "rgb_tiny.keras")
        convert(ConvertRequest(source=str(session_dir / "rgb_tiny.keras"), output=out, verify_count=2,
                               show_progress=False))
    return out


@pytest.fixture(scope="module")
def bad(tmp_path_factory, digits_int8, digits_float) -> dict:
    """Every bad file the catalogue uses, in one directory (name -> path)."""
    root = tmp_path_factory.mktemp("bad")
    data = digits_int8.read_bytes()
    files = {
        "empty.tflite": b"",
        "truncated.tflite": data[: len(data) // 3],
        "random.tflite": np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "wrong_magic.tflite": data[:4] + b"TFL2" + data[8:],
        "text.tflite": b"this is a README, not a model\n" * 10,
        "huge_shape.tflite": patched(data, "huge_shape"),
        "buffer_index.tflite": patched(data, "buffer_index"),
        "opcode_index.tflite": patched(data, "opcode_index"),
        "tensor_index.tflite": patched(data, "tensor_index"),
        "digits_edgetpu.tflite": edgetpu_twin(data),  # crafted, see the module docstring
        "corrupt.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4,
        "zero.png": b"",
        "bomb.png": png_bomb(),
        "few_labels.txt": b"zero\none\n",
    }
    for name, content in files.items():
        (root / name).write_bytes(content)
    (root / "corrupt.png").write_bytes(DIGIT.read_bytes()[:60])  # a real PNG cut short
    (root / "no_images").mkdir()
    # A manifest that belongs to another model (hash mismatch).
    shutil.copy(digits_int8, root / "stale.tflite")
    shutil.copy(digits_float.with_suffix(".json"), root / "stale.json")
    # Manifests edited by hand (their sha256 still matches the unchanged model): preprocessing for another
    # input shape; inputs of another shape and dtype.
    shutil.copy(digits_int8, root / "reshaped.tflite")
    manifest = json.loads(digits_int8.with_suffix(".json").read_text())
    manifest["preprocess"]["image"].update(height=28, width=28, channels=3)
    (root / "reshaped.json").write_text(json.dumps(manifest))
    shutil.copy(digits_int8, root / "retyped.tflite")
    manifest = json.loads(digits_int8.with_suffix(".json").read_text())
    manifest["inputs"][0].update(shape=[1, 28, 28, 3], dtype="float32")
    (root / "retyped.json").write_text(json.dumps(manifest))
    shutil.copy(digits_int8, root / "badjson.tflite")
    (root / "badjson.json").write_text("{ not json")
    return root


DIGIT = Path(__file__).resolve().parents[1] / "models" / "digits" / "images" / "digit_3.png"

# case -> (tfedge-run arguments with {bad}, {int8} placeholders, exit code, words the message names)
CASES = {
    "empty_model": (["info", "{bad}/empty.tflite"], 2, ["not a TFLite model", "0 bytes"]),
    "truncated_model": (["info", "{bad}/truncated.tflite"], 2, ["not a valid TFLite model", "truncated"]),
    "random_bytes_model": (["info", "{bad}/random.tflite"], 2, ["not a TFLite model"]),
    "wrong_magic": (["classify", "{bad}/wrong_magic.tflite", "-i", DIGIT], 2, ["no TFL3 identifier"]),
    "text_named_tflite": (["classify", "{bad}/text.tflite", "-i", DIGIT], 2, ["not a TFLite model"]),
    "missing_model": (["info", "{bad}/nope.tflite"], 2, ["not found"]),
    "model_is_directory": (["info", "{bad}/no_images"], 2, ["directory"]),
    "huge_tensor_shape": (["info", "{bad}/huge_shape.tflite"], 2, ["would need", "GB"]),
    "buffer_index_out_of_range": (["info", "{bad}/buffer_index.tflite"], 2, ["buffer index 10000 out of range"]),
    "opcode_index_out_of_range": (["classify", "{bad}/opcode_index.tflite", "-i", DIGIT], 2,
                                  ["opcode index 999 out of range"]),
    "tensor_index_out_of_range": (["info", "{bad}/tensor_index.tflite"], 2, ["output tensor index 5000"]),
    "manifest_hash_mismatch": (["classify", "{bad}/stale.tflite", "-i", DIGIT], 2, ["stale.json", "sha256"]),
    "manifest_preprocess_mismatch": (["classify", "{bad}/reshaped.tflite", "-i", DIGIT], 2,
                                     ["28x28x3", "does not match", "[1, 8, 8, 1]"]),
    "manifest_input_shape_dtype_mismatch": (["classify", "{bad}/retyped.tflite", "-i", DIGIT], 2,
                                            ["retyped.json says input", "[1, 28, 28, 3] float32",
                                             "[1, 8, 8, 1] int8"]),
    "manifest_not_json": (["classify", "{bad}/badjson.tflite", "-i", DIGIT], 2, ["not valid JSON"]),
    "corrupt_jpeg": (["classify", "{int8}", "-i", "{bad}/corrupt.jpg"], 2, ["cannot read image", "corrupt.jpg"]),
    "corrupt_png": (["classify", "{int8}", "-i", "{bad}/corrupt.png"], 2, ["cannot read image", "corrupt.png"]),
    "zero_byte_image": (["classify", "{int8}", "-i", "{bad}/zero.png"], 2, ["cannot read image", "zero.png"]),
    "decompression_bomb": (["classify", "{int8}", "-i", "{bad}/bomb.png"], 2, ["bomb.png", "decompression bomb"]),
    "missing_image": (["classify", "{int8}", "-i", "{bad}/nope.png"], 2, ["not found", "nope.png"]),
    "folder_without_images": (["classify", "{int8}", "-i", "{bad}/no_images"], 2, ["no images"]),
    "labels_fewer_than_classes": (["classify", "{int8}", "-i", DIGIT, "--labels", "{bad}/few_labels.txt"], 2,
                                  ["2 labels", "10 classes"]),
    "edgetpu_library_missing": (["classify", "{int8}", "-i", DIGIT, "--edgetpu"], 3, ["Edge TPU", "libedgetpu"]),
    "edgetpu_model_without_delegate": (["classify", "{bad}/digits_edgetpu.tflite", "-i", DIGIT], 2,
                                       ["Edge TPU", "--edgetpu"]),
    "unknown_command": (["convert", "{int8}"], 2, ["invalid choice"]),
    "bad_flag_value": (["classify", "{int8}", "-i", DIGIT, "--top-k", "0"], 2, ["--top-k"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tfedge_run_bad_input(case, bad, digits_int8, tfedge_run, tmp_path):
    args, code, words = CASES[case]
    args = [str(a).format(bad=bad, int8=digits_int8) for a in args]
    before = sorted(os.listdir(bad))
    result = tfedge_run(*args, cwd=tmp_path, env={"TFEDGE_CACHE_DIR": str(tmp_path / "cache")})
    assert_clean_error(result, code, *words)
    assert len(result.stderr.strip().splitlines()) == 1, result
    assert sorted(os.listdir(bad)) == before  # nothing written beside the inputs
    assert [p.name for p in tmp_path.iterdir() if p.name != "cache"] == []


@pytest.mark.parametrize("mode,note", [("L", "converted to RGB"), ("RGBA", "lose their alpha channel")])
def test_grayscale_and_rgba_images_for_an_rgb_model_are_converted_with_a_note(mode, note, rgb_model, tfedge_run,
                                                                              tmp_path):
    """Not errors: an operator expects the colour conversion to happen, and to be told once."""
    image = save_image(tmp_path / f"{mode}.png", mode)
    result = tfedge_run("classify", rgb_model, "-i", image, "--json")
    assert result.returncode == 0, result
    assert note in result.stderr and "Traceback" not in result.stderr, result
    assert len(json.loads(result.stdout)["results"]) == 1


# -- the guard --------------------------------------------------------------------------------------
def test_structure_check_accepts_every_model_tfedge_makes(digits_int8, digits_float, rgb_model):
    from tfedge_device.guard import check_structure

    for path in (digits_int8, digits_float, rgb_model):
        check_structure(path.read_bytes(), path.name)


def test_probe_runs_once_per_file_then_the_cache_answers(digits_float, tmp_path, monkeypatch):
    from tfedge_device import guard
    from tfedge_device.runtime import get_runtime

    monkeypatch.setenv("TFEDGE_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("TFEDGE_PROBE", raising=False)
    data = digits_float.read_bytes() + b"\0" * 16  # trailing bytes: a file this process did not convert
    started = time.perf_counter()
    first = guard.probe(data, get_runtime(), digits_float.name)
    assert isinstance(first, float) and 0 < first <= time.perf_counter() - started  # it ran: its seconds
    assert guard.probe(data, get_runtime(), digits_float.name) is None  # cached
    assert len(list((tmp_path / "probed").iterdir())) == 1
    monkeypatch.setenv("TFEDGE_PROBE", "0")
    assert guard.probe(b"anything", get_runtime()) is None
    print(f"probe of {digits_float.name}: {first:.3f} s (a child process: Python + runtime import + one invoke)")


def test_probe_turns_a_crash_into_bad_input(tmp_path, monkeypatch):
    """A child that dies by a signal (what a native crash looks like) is a clean BadInput in the parent."""
    from tfedge_device import guard
    from tfedge_device.errors import BadInput
    from tfedge_device.runtime import get_runtime

    monkeypatch.setenv("TFEDGE_CACHE_DIR", str(tmp_path))
    crash, python = tmp_path / "crash.py", tmp_path / "python-crash"
    crash.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {crash}\n")
    python.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))  # the probe's child is this crashing "python"
    with pytest.raises(BadInput, match="the runtime crashed loading m.tflite \\(SIGSEGV\\)"):
        guard.probe(b"x" * 64, get_runtime(), "m.tflite")
    assert not (tmp_path / "probed").exists()  # a crash is never cached as good


def test_converter_output_is_trusted_without_a_probe(tmp_path, monkeypatch, digits_float):
    from tfedge_device import guard
    from tfedge_device.runtime import get_runtime

    monkeypatch.setenv("TFEDGE_CACHE_DIR", str(tmp_path))
    data = digits_float.read_bytes() + b"\0" * 8  # bytes no cache has seen
    guard.trust(data)
    assert guard.probe(data, get_runtime()) is None


class _FailingInterpreter:
    """TEST DOUBLE: what LiteRT did on damaged models the fuzzer found (they load, then fail at invoke)."""

    def __init__(self, real):
        self.real = real

    def __getattr__(self, name):
        return getattr(self.real, name)

    def invoke(self):
        raise RuntimeError("Input tensor 7 lacks data")

    def get_tensor(self, index):
        raise ValueError("Tensor data is null. Run allocate_tensors() first")


def test_runtime_errors_after_loading_are_bad_input(digits_float, digits_test):
    from tfedge_device.errors import BadInput
    from tfedge_device.model import Model

    model = Model(digits_float)
    model._interpreter = _FailingInterpreter(model.interpreter)
    with pytest.raises(BadInput, match="the runtime failed running digits_float32.tflite: Input tensor 7"):
        model.predict(digits_test[0][:1])
    with pytest.raises(BadInput, match="failed reading the outputs of digits_float32.tflite: Tensor data is null"):
        model.get_outputs()


@pytest.mark.parametrize("field,words", [
    ("schema_version", "schema version 4, expected 3"),
    ("negative_dimension", "negative dimension"),
    ("constant_size", "bytes, shape"),
    ("root_offset", "root offset"),
    ("huge_shape", "would need"),
    ("buffer_index", "buffer index 10000"),
    ("opcode_index", "opcode index 999"),
    ("tensor_index", "tensor index 5000"),
    ("zero_points", "scales but 2 zero points"),
])
def test_structure_check_names_the_damage(field, words, digits_int8, digits_float):
    """Every model tested (int8 and float32); per-channel quantization only exists in the int8 one."""
    from tfedge_device.errors import BadInput
    from tfedge_device.guard import check_structure

    for model in (digits_int8,) if field == "zero_points" else (digits_int8, digits_float):
        with pytest.raises(BadInput, match=re.escape(words)):
            check_structure(patched(model.read_bytes(), field), model.name)
