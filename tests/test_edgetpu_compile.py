"""`tfedge edgetpu compile`: parsing of the Edge TPU Compiler's stdout summary, and the subprocess handling.

The real compiler cannot be installed here (x86-64 Debian/Ubuntu via Coral's apt repository only). So:
  * the operator table and log parser, and the compare-with-prediction path, are tested on the REAL compiler's
    logs and compiled models in tests/test_edgetpu_truth.py;
  * the stdout summary (memory lines, counts) is tested here on text in the compiler's documented output format.
    Sources of the format: coral.ai/docs/edgetpu/compiler (usage, options, "Operation log") and compiler output
    published with edgetpu_compiler 14.1/15.0/16.0 (e.g. github.com/google-coral/edgetpu/issues/358 and /211:
    the "Model compiled successfully" summary, memory lines, "Number of Edge TPU subgraphs", "Operation log").
    The sample below is written in that format for this test; it is not a copy of any one log;
  * the subprocess path runs PLUMBING_DOUBLE, a TEST DOUBLE of the compiler binary this test writes, for the
    plumbing only (arguments, exit codes, timeout, files written, a missing binary): it copies the input model
    and prints no operator table and no counts, so it makes no claim about which ops map, and the report says
    there is nothing to compare (`agrees_with_prediction` None).
"""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest
from conftest import assert_clean_error
from edgetpu_models import edgetpu_twin

from tfedge.edgetpu import rules
from tfedge.edgetpu.compiler import parse_operation_table, parse_size, parse_summary

DOCUMENTED_FORMAT_STDOUT = """\
Edge TPU Compiler version 16.0.384591198

Model compiled successfully in 412 ms.

Input model: /models/net_int8.tflite
Input size: 2.61MiB
Output model: /out/net_int8_edgetpu.tflite
Output size: 2.86MiB
On-chip memory used for caching model parameters: 2.50MiB
On-chip memory remaining for caching model parameters: 5.17MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 40
Operation log: /out/net_int8_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model \
will instead run on the CPU, which is slower. If possible, consider updating your model to use only operations \
supported by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 31
Number of operations that will run on CPU: 9

Operator                       Count      Status

CONV_2D                        20         Mapped to Edge TPU
CONV_2D                        3          More than one subgraph is not supported
DEPTHWISE_CONV_2D              10         Mapped to Edge TPU
LEAKY_RELU                     1          Operation not supported
RESHAPE                        1          Tensor has unsupported rank (up to 3 innermost dimensions mapped)
QUANTIZE                       1          Mapped to Edge TPU
DEQUANTIZE                     1          Operation is working on an unsupported data type
PACK                           3          More than one subgraph is not supported
"""


def test_parse_summary_documented_format():
    summary = parse_summary(DOCUMENTED_FORMAT_STDOUT)
    assert summary["compiler_version"] == "16.0.384591198"
    assert summary["on_chip_memory_used"] == int(2.5 * 1024 ** 2)
    assert summary["on_chip_memory_remaining"] == int(5.17 * 1024 ** 2)
    assert summary["off_chip_memory_used"] == 0
    assert summary["tpu_subgraphs"] == 1 and summary["ops_total"] == 40
    assert summary["ops_on_tpu"] == 31 and summary["ops_on_cpu"] == 9
    assert summary["log_file"] == "/out/net_int8_edgetpu.log"


def test_parse_operation_table_documented_format():
    rows = parse_operation_table(DOCUMENTED_FORMAT_STDOUT)
    assert [(r.op, r.count) for r in rows][:3] == [("CONV_2D", 20), ("CONV_2D", 3), ("DEPTHWISE_CONV_2D", 10)]
    assert sum(r.count for r in rows) == 40
    assert sum(r.count for r in rows if r.on_tpu) == 31
    statuses = {r.status for r in rows}
    assert statuses <= set(rules.STATUSES), statuses - set(rules.STATUSES)


def test_parse_table_stops_at_the_trailer():
    text = ("Operator                       Count      Status\n\n"
            "RESHAPE                        1          Operation is otherwise supported, but not mapped due to some "
            "unspecified limitation\n"
            "... All other operators were mapped successfully. See m_edgetpu.log.\n")
    rows = parse_operation_table(text)
    assert len(rows) == 1 and rows[0].status == rules.UNSPECIFIED


@pytest.mark.parametrize("text, expected", [("0.00B", 0), ("3.00KiB", 3072), ("1.50MiB", 1572864), ("x", None)])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


# -- the subprocess path, with a TEST DOUBLE of edgetpu_compiler (plumbing only) ---------------------------------

PLUMBING_DOUBLE = r'''#!{python}
"""TEST DOUBLE of the edgetpu_compiler binary, written by tests/test_edgetpu_compile.py for the subprocess
plumbing only. NOT a compiler: it copies the input model under the output names and prints no operator table
or counts (no claim about placement). DOUBLE_MODE: ok | refuse | hang | nooutput."""
import argparse, os, pathlib, shutil, sys, time
parser = argparse.ArgumentParser()
parser.add_argument("--out_dir", default=".")
parser.add_argument("--timeout_sec", type=int, default=180)
parser.add_argument("--num_segments", type=int, default=0)
parser.add_argument("--show_operations", action="store_true")
parser.add_argument("--min_runtime_version", type=int)
parser.add_argument("--search_delegate", action="store_true")
parser.add_argument("model")
args = parser.parse_args()
mode = os.environ.get("DOUBLE_MODE", "ok")
if os.environ.get("DOUBLE_ARGV"):
    pathlib.Path(os.environ["DOUBLE_ARGV"]).write_text(" ".join(sys.argv[1:]))
print("Edge TPU Compiler version 16.0.384591198")
if mode == "refuse":  # the real compiler's refusal text, as posted in google-coral/edgetpu issue 845
    print("ERROR: Didn't find op for builtin opcode 'TRANSPOSE_CONV' version '4'. An older version of this "
          "builtin might be supported. Are you using an old TFLite binary with a newer model?\n")
    print("ERROR: Registration failed.\n\nInvalid model: " + pathlib.Path(args.model).name)
    print("Model could not be parsed")
    sys.exit(1)
if mode == "hang":
    time.sleep(60)
model = pathlib.Path(args.model)
if mode == "ok":
    names = ([f"{{model.stem}}_segment_{{i}}_of_{{args.num_segments}}_edgetpu.tflite"
              for i in range(args.num_segments)] if args.num_segments else [f"{{model.stem}}_edgetpu.tflite"])
    for name in names:
        shutil.copy(model, pathlib.Path(args.out_dir, name))
    pathlib.Path(args.out_dir, f"{{model.stem}}_edgetpu.log").write_text(
        "Edge TPU Compiler version 16.0.384591198\nInput: " + model.name + "\n")
print("\nModel compiled successfully in 5 ms.\n")
print("On-chip memory used for caching model parameters: 40.25KiB")
'''


@pytest.fixture
def plumbing_double(tmp_path):
    """A directory holding the TEST DOUBLE under the compiler's name, and its path."""
    bin_dir = tmp_path / "doublebin"
    bin_dir.mkdir()
    path = bin_dir / "edgetpu_compiler"
    path.write_text(PLUMBING_DOUBLE.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def edgetpu_model(tmp_path, session_dir, digits_dir):
    """The digits model converted with --quant edgetpu and labels (once per session), copied with its manifest."""
    from tfedge_device.manifest import read_manifest, write_manifest

    source = session_dir / "compile_source" / "digits_edgetpu.tflite"  # with labels (test_edgetpu_check's has none)
    if not source.exists():
        source.parent.mkdir(exist_ok=True)
        from tfedge.convert.pipeline import ConvertRequest, convert

        convert(ConvertRequest(source=str(digits_dir / "digits.keras"), output=source, mode="edgetpu",
                               calib=str(digits_dir / "calib"), labels=digits_dir / "labels.txt",
                               show_progress=False, verify_count=5))
    work = tmp_path / "models"
    work.mkdir()
    target = work / "digits_edgetpu.tflite"
    target.write_bytes(source.read_bytes())
    write_manifest(target, {k: v for k, v in read_manifest(source).items()
                            if k not in ("format", "model", "model_sha256")})
    return target


def _env(bin_dir, mode="ok"):
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "DOUBLE_MODE": mode}


def test_compile_with_test_double_on_path(tfedge, plumbing_double, edgetpu_model):
    result = tfedge("edgetpu", "compile", edgetpu_model, "--json", env=_env(plumbing_double.parent))
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["source"] == "edgetpu_compiler" and report["compiler"] == str(plumbing_double)
    compiled = edgetpu_model.with_name("digits_edgetpu_edgetpu.tflite")
    assert report["compiled_models"] == [str(compiled)] and compiled.exists()
    assert edgetpu_model.with_name("digits_edgetpu_edgetpu.log").exists()
    assert report["on_chip_memory_used"] == int(40.25 * 1024) and report["compiler_version"] == "16.0.384591198"
    # the double printed no table or counts: nothing to compare, and the report must not claim agreement
    assert report["agrees_with_prediction"] is None and report["prediction"]["compiler_version"] == 16
    from tfedge_device.manifest import read_manifest

    manifest = read_manifest(compiled)  # hash checked: it describes the compiled file
    assert manifest["model_file"] == compiled.name and manifest["edgetpu"]["compiled"] is True
    assert manifest["edgetpu"]["source_model"] == edgetpu_model.name
    assert manifest["labels"] and manifest["mode"] == "edgetpu"  # carried over from the source manifest
    assert not list(edgetpu_model.parent.glob(".edgetpu-*")), "the work directory must be removed"


def test_compile_out_dir_segments_and_named_compiler(tfedge, plumbing_double, edgetpu_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = tfedge("edgetpu", "compile", edgetpu_model, "-o", out, "--num-segments", "2", "--compiler",
                    plumbing_double, "--timeout", "30", "--min-runtime-version", "13",
                    "--compiler-arg=--search_delegate",
                    env={"DOUBLE_MODE": "ok", "DOUBLE_ARGV": str(tmp_path / "argv.txt")})
    assert result.returncode == 0, result
    argv = (tmp_path / "argv.txt").read_text()
    for passed in ("--num_segments 2", "--timeout_sec 30", "--min_runtime_version 13", "--search_delegate",
                   "--show_operations", str(edgetpu_model.resolve())):
        assert passed in argv, (passed, argv)
    assert not list(out.glob(".edgetpu-*")), "the compiler's work directory must be removed"
    names = sorted(p.name for p in out.glob("*_edgetpu.tflite"))
    assert names == ["digits_edgetpu_segment_0_of_2_edgetpu.tflite", "digits_edgetpu_segment_1_of_2_edgetpu.tflite"]
    assert all(p.with_suffix(".json").exists() for p in out.glob("*_edgetpu.tflite"))
    assert "edgetpu_compiler 16.0.384591198" in result.stdout
    assert "no operation table or counts to compare" in result.stdout


def test_compiler_absent_exit_3(tfedge, edgetpu_model, tmp_path):
    empty = tmp_path / "emptybin"
    empty.mkdir()
    result = tfedge("edgetpu", "compile", edgetpu_model,
                    env={"PATH": f"{empty}{os.pathsep}{os.path.dirname(sys.executable)}"})
    assert_clean_error(result, 3, "edgetpu_compiler is not installed", "x86-64", "apt", "edgetpu check")


def test_compiler_refusal_exit_2_names_the_compilers_reason(tfedge, plumbing_double, edgetpu_model):
    result = tfedge("edgetpu", "compile", edgetpu_model, "--compiler", plumbing_double, env={"DOUBLE_MODE": "refuse"})
    assert_clean_error(result, 2, "failed", "exit 1", "Didn't find op for builtin opcode 'TRANSPOSE_CONV'")
    assert not list(edgetpu_model.parent.glob("*_edgetpu_edgetpu*"))


def test_compiler_timeout_exit_2(tfedge, plumbing_double, edgetpu_model):
    result = tfedge("edgetpu", "compile", edgetpu_model, "--compiler", plumbing_double, "--timeout", "1",
                    env={"DOUBLE_MODE": "hang"})
    assert_clean_error(result, 2, "did not finish within 1 s", "--timeout")
    assert not list(edgetpu_model.parent.glob(".edgetpu-*"))


def test_compiler_missing_output_exit_2(tfedge, plumbing_double, edgetpu_model):
    result = tfedge("edgetpu", "compile", edgetpu_model, "--compiler", plumbing_double,
                    env={"DOUBLE_MODE": "nooutput"})
    assert_clean_error(result, 2, "wrote no", "_edgetpu.tflite")


def test_compile_bad_inputs(tfedge, plumbing_double, edgetpu_model, tmp_path):
    assert_clean_error(tfedge("edgetpu", "compile", edgetpu_model, "--compiler", tmp_path / "nope"), 2,
                       "not an executable")
    assert_clean_error(tfedge("edgetpu", "compile", edgetpu_model, "-o", tmp_path / "absent", "--compiler",
                              plumbing_double), 2, "output directory does not exist")
    compiled = tmp_path / "already_edgetpu.tflite"
    compiled.write_bytes(edgetpu_twin(edgetpu_model.read_bytes()))
    assert_clean_error(tfedge("edgetpu", "compile", compiled, "--compiler", plumbing_double), 2, "already compiled")
    assert_clean_error(tfedge("edgetpu", "compile", tmp_path / "absent.tflite", "--compiler", plumbing_double), 2,
                       "not found")
