"""Edge TPU on the device: detection from the flatbuffer's operator codes, the `--edgetpu` paths.

No edgetpu_compiler, libedgetpu or Coral can be installed here. Two stand-ins, each named as such:
- compiled models are crafted as real TFLite flatbuffers with the `tflite` schema package (edgetpu_models.py):
  the shape edgetpu_compiler gives a fully mapped model. They prove detection and the messages, not that a
  compiled model runs on a Coral.
- `NoOpDelegateDouble` (edgetpu_models.py) is a TEST DOUBLE of libedgetpu's delegate, put in at ONE seam,
  `tfedge_device.runtime.load_edgetpu_delegate`: a real TfLiteDelegate struct (ctypes) whose Prepare claims
  no node. The real LiteRT interpreter accepts it, calls its Prepare, and runs every op on the CPU — what
  libedgetpu does with a model that has no `edgetpu-custom-op` — so the code after a successful delegate load
  (interpreter with the delegate, invoke, timing, pycoral's first-inference note) runs for real.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import tflite
from conftest import assert_clean_error
from edgetpu_models import (
    edgetpu_shaped_model,
    edgetpu_twin,
    replace_delegate_loader,
    with_edgetpu_name_in_metadata,
)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("crafted") / "crafted_edgetpu.tflite"
    path.write_bytes(edgetpu_shaped_model())
    return path


@pytest.fixture(scope="module")
def named_in_metadata(digits_int8, tmp_path_factory) -> Path:
    """A real CPU model whose metadata (name and buffer) holds the bytes `edgetpu-custom-op`."""
    path = tmp_path_factory.mktemp("negative") / "digits_int8_noted.tflite"
    path.write_bytes(with_edgetpu_name_in_metadata(digits_int8.read_bytes()))
    return path


def test_crafted_models_are_valid_flatbuffers_detected_by_their_operator_code(compiled, digits_int8):
    from tfedge_device.guard import check_structure
    from tfedge_device.model import needs_edgetpu

    for data in (compiled.read_bytes(), edgetpu_twin(digits_int8.read_bytes())):
        check_structure(data, "crafted")  # tfedge's own structural checks accept it
        model = tflite.Model.GetRootAsModel(data, 0)
        assert model.OperatorCodes(0).CustomCode() == b"edgetpu-custom-op"
        assert model.Subgraphs(0).OperatorsLength() == 1 and needs_edgetpu(data)
    assert not needs_edgetpu(digits_int8.read_bytes())


def test_the_name_outside_the_operator_codes_is_not_an_edge_tpu_model(named_in_metadata, tfedge_run, digits_dir):
    """A byte search would call this compiled; the operator codes say it is the CPU model it is."""
    from tfedge_device.model import needs_edgetpu

    data = named_in_metadata.read_bytes()
    assert data.count(b"edgetpu-custom-op") == 2 and not needs_edgetpu(data)
    result = tfedge_run("classify", named_in_metadata, "-i", digits_dir / "images" / "digit_3.png", "--json")
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["results"][0]["classes"][0]["id"] == 3
    info = tfedge_run("info", named_in_metadata, "--json")
    assert info.returncode == 0 and json.loads(info.stdout)["model"]["needs_edgetpu_delegate"] is False, info


def test_cli_refuses_it_without_the_delegate_and_needs_the_library_with_it(tfedge_run, compiled, digits_dir):
    image = digits_dir / "images" / "digit_0.png"
    assert_clean_error(
        tfedge_run("classify", compiled, "-i", image), 2, "compiled for the Edge TPU", "--edgetpu"
    )
    result = tfedge_run("classify", compiled, "-i", image, "--edgetpu")
    assert_clean_error(result, 3, "libedgetpu.so.1", "apt-get install libedgetpu1-std")
    info = tfedge_run("info", compiled)
    assert info.returncode == 0 and "Edge TPU model: needs the Edge TPU delegate" in info.stdout, info
    assert "custom ops" not in info.stdout  # the model row says it; no second line about the same op
    model = json.loads(tfedge_run("info", compiled, "--json").stdout)["model"]
    assert (model["custom_ops"], model["custom_ops_missing"]) == (["edgetpu-custom-op"], None)


def test_runtime_unresolved_custom_op_becomes_the_edge_tpu_message(compiled, monkeypatch):
    """With detection bypassed, LiteRT itself refuses the op; Model turns that into one line (exit 3)."""
    from tfedge_device import model as model_module
    from tfedge_device.errors import EnvironmentMissing

    monkeypatch.setattr(model_module, "needs_edgetpu", lambda data: False)
    monkeypatch.setenv("TFEDGE_PROBE", "0")  # no crash-probe child: the in-process load is what is tested
    with pytest.raises(EnvironmentMissing, match="needs the Edge TPU delegate"):
        model_module.Model(compiled)


# -- the success path of --edgetpu, through the delegate double ---------------------------------------------
@pytest.fixture
def delegate_double(monkeypatch) -> list:
    """Replace the one seam; returns the doubles handed out, in order."""
    monkeypatch.setenv("TFEDGE_PROBE", "0")  # the CPU run below must not pay (or skip) a probe the other lacks
    return replace_delegate_loader(monkeypatch)


def run_cli(capsys, *args) -> tuple[int, str]:
    from tfedge_device.cli import main

    code = main([str(arg) for arg in args])
    return code, capsys.readouterr().out


def test_edgetpu_success_path_classifies_times_and_prints_the_first_inference_note(
    delegate_double, digits_int8, digits_dir, capsys
):
    from tfedge_device.commands.classify import EDGETPU_NOTE

    image = digits_dir / "images" / "digit_7.png"
    code, cpu = run_cli(capsys, "classify", digits_int8, "-i", image, "-c", "3")
    assert code == 0 and delegate_double == []
    code, tpu = run_cli(capsys, "classify", digits_int8, "-i", image, "-c", "3", "--edgetpu")
    assert code == 0, tpu
    assert len(delegate_double) == 1 and delegate_double[0].prepared == 1  # loaded once, taken by LiteRT
    lines = tpu.splitlines()
    assert lines[:2] == ["----INFERENCE TIME----", EDGETPU_NOTE] and EDGETPU_NOTE not in cpu
    assert all(re.fullmatch(r"\d+\.\d\dms", line) for line in lines[2:5]) and len(lines[2:5]) == 3
    assert lines[5] == "-------RESULTS--------"
    assert lines[5:] == cpu.splitlines()[4:] and lines[6].startswith("7: ")  # same scores as the CPU run

    code, out = run_cli(capsys, "classify", digits_int8, "-i", image, "--edgetpu", "--json")
    assert code == 0 and json.loads(out)["edgetpu"] is True and delegate_double[-1].prepared == 1


def test_edgetpu_success_path_of_bench(delegate_double, digits_int8, capsys):
    code, out = run_cli(capsys, "bench", digits_int8, "--edgetpu", "--runs", "5", "--warmup", "1", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["edgetpu"] is True and result["inference"]["count"] == 5 and result["first_inference_us"] > 0
    assert len(delegate_double) == 1 and delegate_double[0].prepared == 1
    code, text = run_cli(capsys, "bench", digits_int8, "--edgetpu", "--runs", "2", "--warmup", "0")
    assert code == 0 and "+ Edge TPU delegate" in text
