"""`tfedge edgetpu compile`: run Coral's `edgetpu_compiler`, parse what it reports, place its outputs.

The compiler [coral.ai/docs/edgetpu/compiler] exists only for x86-64 Debian/Ubuntu (Coral's apt repository).
It writes `NAME_edgetpu.tflite` (or `NAME_segment_I_of_N_edgetpu.tflite` with --num_segments) and
`NAME_edgetpu.log` into --out_dir, and prints a summary on stdout:

    Edge TPU Compiler version 16.0.384591198
    Model compiled successfully in 577 ms.
    Input model: m.tflite / Input size: ... / Output model: m_edgetpu.tflite / Output size: ...
    On-chip memory used for caching model parameters: 3.00KiB
    On-chip memory remaining for caching model parameters: 7.67MiB
    Off-chip memory used for streaming uncached model parameters: 0.00B
    Number of Edge TPU subgraphs: 1
    Total number of operations: 36
    Operation log: m_edgetpu.log
    [Number of operations that will run on Edge TPU: N / ... on CPU: M, when not all map]
    Operator                       Count      Status
    CONV_2D                        12         Mapped to Edge TPU

The log file holds the same operator table (every row, also when all ops mapped). Both are parsed into the
report format of `check` (check.summarize), with the pre-check's prediction beside it for comparison.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from tfedge_device.fileio import write_bytes
from tfedge_device.manifest import read_manifest, write_manifest
from tfedge_device.model import needs_edgetpu, read_model_bytes

from ..errors import BadInput, EnvironmentMissing
from .check import OpVerdict, check, cpu_op_counts, log_name, summarize
from .rules import COMPILER_VERSIONS, DEFAULT_COMPILER, EDGETPU_CUSTOM_OP

COMPILER = "edgetpu_compiler"
INSTALL_HINT = ("it runs on x86-64 Debian/Ubuntu only: add Coral's apt repository (packages.cloud.google.com/apt "
                "coral-edgetpu-stable) and `apt-get install edgetpu-compiler`; meanwhile `tfedge edgetpu check "
                "MODEL.tflite` predicts the mapping")

_SUMMARY_KEYS = {  # stdout "Key: value" lines -> report keys
    "Edge TPU Compiler version": "compiler_version",
    "On-chip memory used for caching model parameters": "on_chip_memory_used",
    "On-chip memory remaining for caching model parameters": "on_chip_memory_remaining",
    "Off-chip memory used for streaming uncached model parameters": "off_chip_memory_used",
    "Number of Edge TPU subgraphs": "tpu_subgraphs",
    "Total number of operations": "ops_total",
    "Number of operations that will run on Edge TPU": "ops_on_tpu",
    "Number of operations that will run on CPU": "ops_on_cpu",
    "Operation log": "log_file",
}
_COUNTS = ("ops_total", "ops_on_tpu", "ops_on_cpu", "tpu_subgraphs")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
_ROW = re.compile(r"^(?P<op>[A-Za-z][\w-]*)\s+(?P<count>\d+)\s+(?P<status>\S.*?)\s*$")
_HEADER = re.compile(r"^Operator\s+Count\s+Status\s*$")


def parse_size(text: str) -> int | None:
    """'3.00KiB' -> 3072 (the compiler's memory figures)."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMG]?i?B)\s*", text)
    if not match or match.group(2) not in _UNITS:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def parse_summary(stdout: str) -> dict:
    """The compiler's stdout summary -> {compiler_version, memory figures (bytes), counts, log_file}."""
    summary = {}
    for line in stdout.splitlines():
        if line.startswith("Edge TPU Compiler version"):
            summary["compiler_version"] = line.rsplit(" ", 1)[-1].strip()
            continue
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in _SUMMARY_KEYS:
            continue
        name, value = _SUMMARY_KEYS[key.strip()], value.strip()
        if name.endswith(("_used", "_remaining")):
            summary[name] = parse_size(value)
        elif name == "log_file":
            summary[name] = value
        elif value.isdigit():
            summary[name] = int(value)
    return summary


def parse_operation_table(text: str) -> list:
    """Rows after the 'Operator Count Status' header -> [OpVerdict] (one per row; `count` ops each)."""
    rows, in_table = [], False
    for line in text.splitlines():
        if _HEADER.match(line.strip()):
            in_table = True
            continue
        if not in_table or not line.strip():
            continue
        match = _ROW.match(line.strip())
        if match is None:
            if rows:  # the table ended (e.g. "... All other operators were mapped successfully")
                break
            continue
        rows.append(OpVerdict(len(rows), match["op"], None, match["status"], count=int(match["count"]),
                              macs=None))
    return rows


def parse_log(text: str) -> dict:
    """A `NAME_edgetpu.log` (version line, Input:/Output: lines, operator table) -> {compiler_version, input,
    output, rows: [OpVerdict]}; the same fields from the compiler's stdout when given that."""
    log = {"compiler_version": parse_summary(text).get("compiler_version")}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("Input", "Output") and key.strip().lower() not in log:
            log[key.strip().lower()] = value.strip()
    log["rows"] = parse_operation_table(text)
    return log


def compiler_major(version: str | None) -> int | None:
    """'16.0.384591198' -> 16."""
    head = (version or "").split(".", 1)[0]
    return int(head) if head.isdigit() else None


def find_compiler(explicit: str | None) -> str:
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise BadInput(f"--compiler {explicit}: not an executable file")
        return str(path)
    found = shutil.which(COMPILER)
    if found is None:
        raise EnvironmentMissing(f"{COMPILER} is not installed (not on PATH)", hint=INSTALL_HINT)
    return found


# The compiler's own words for a refused model, preferred over its last line ("Model could not be parsed").
_REFUSAL_LINES = ("Didn't find op for builtin opcode", "Model not quantized", "Compilation failed")


def _last_line(*texts: str) -> str:
    for text in texts:
        refusal = [line.strip() for line in (text or "").splitlines() if any(r in line for r in _REFUSAL_LINES)]
        if refusal:
            return refusal[0][:300]
    for text in texts:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return "no output"


def run_compiler(compiler: str, model: Path, work: Path, num_segments: int | None, timeout: float,
                 extra_args=()) -> subprocess.CompletedProcess:
    command = [compiler, "--out_dir", str(work), "--timeout_sec", str(int(timeout)), "--show_operations",
               *(["--num_segments", str(num_segments)] if num_segments else []), *extra_args, str(model)]
    try:
        # the compiler enforces --timeout_sec itself; ours is a backstop a little later
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout + 2, cwd=work)
    except subprocess.TimeoutExpired:
        raise BadInput(f"{COMPILER} did not finish within {timeout:g} s on {model.name}",
                       hint="raise --timeout, or split the model with --num-segments") from None
    except OSError as err:
        raise EnvironmentMissing(f"cannot run {compiler}: {err.strerror or err}", hint=INSTALL_HINT) from None
    if done.returncode != 0:
        raise BadInput(f"{COMPILER} failed on {model.name} (exit {done.returncode}): "
                       f"{_last_line(done.stderr, done.stdout)}")
    return done


def _manifest(model: Path, compiled: Path, summary: dict) -> dict:
    """The source's manifest carried over (hash recomputed by write_manifest), marked as compiled."""
    manifest = read_manifest(model, check_hash=False)
    if manifest is None:
        from tfedge_device.model import Model

        source = Model(model)
        manifest = {"mode": "edgetpu", "inputs": [s.to_dict() for s in source.inputs],
                    "outputs": [s.to_dict() for s in source.outputs]}
    for key in ("format", "model", "model_sha256"):
        manifest.pop(key, None)
    manifest["model_file"] = compiled.name
    manifest["edgetpu"] = {"compiled": True, "source_model": model.name,
                           "compiler_version": summary.get("compiler_version"),
                           "tpu_subgraphs": summary.get("tpu_subgraphs"),
                           "on_chip_memory_used": summary.get("on_chip_memory_used"),
                           "off_chip_memory_used": summary.get("off_chip_memory_used")}
    return manifest


def compile_model(model: str | Path, out_dir: str | Path | None = None, num_segments: int | None = None,
                  timeout: float = 180, compiler: str | None = None, min_runtime_version: int | None = None,
                  extra_args=()) -> dict:
    """Compile MODEL.tflite; write `*_edgetpu.tflite`, the log and a manifest into out_dir (default: beside)."""
    model = Path(model)
    data = read_model_bytes(model)
    if needs_edgetpu(data):
        raise BadInput(f"{model.name} is already compiled for the Edge TPU (it contains the Edge TPU custom op)",
                       hint="compile the model tfedge convert --quant edgetpu wrote")
    out_dir = Path(out_dir) if out_dir else model.parent
    if not out_dir.is_dir():
        raise BadInput(f"output directory does not exist: {out_dir}")
    if num_segments is not None and num_segments < 1:
        raise BadInput("--num-segments must be 1 or more")
    if timeout <= 0:
        raise BadInput("--timeout must be positive")
    executable = find_compiler(compiler)
    with tempfile.TemporaryDirectory(prefix=".edgetpu-", dir=out_dir) as work:
        work = Path(work)
        passed = [*(["--min_runtime_version", str(min_runtime_version)] if min_runtime_version else []),
                  *extra_args]
        done = run_compiler(executable, model.resolve(), work, num_segments, timeout, passed)
        outputs = sorted(work.glob("*_edgetpu.tflite"))
        if not outputs:
            raise BadInput(f"{COMPILER} exited 0 but wrote no *_edgetpu.tflite for {model.name}: "
                           f"{_last_line(done.stdout, done.stderr)}")
        summary = parse_summary(done.stdout)
        logs = sorted(work.glob("*.log"))
        log_text = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in logs)
        rows = parse_operation_table(log_text) or parse_operation_table(done.stdout)
        written = []
        for path in [*outputs, *logs]:
            target = out_dir / path.name
            write_bytes(target, path.read_bytes())
            written.append(target)
    compiled = [p for p in written if p.suffix == ".tflite"]
    for path in compiled:
        write_manifest(path, _manifest(model, path, summary))
    report = summarize(str(model), rows, "edgetpu_compiler", tpu_subgraphs=summary.get("tpu_subgraphs"),
                       extra={"compiled_models": [str(p) for p in compiled],
                              "log_files": [str(p) for p in written if p.suffix == ".log"],
                              "compiler": executable,
                              **{k: v for k, v in summary.items() if k not in _COUNTS + ("log_file",)}})
    if not rows and "ops_total" in summary:  # no table: the summary's counts
        total = summary["ops_total"]
        on_tpu = summary.get("ops_on_tpu", total if "ops_on_cpu" not in summary else total - summary["ops_on_cpu"])
        report.update(ops_total=total, ops_on_tpu=on_tpu, ops_on_cpu=total - on_tpu, fully_mapped=on_tpu == total,
                      share_ops_on_tpu=round(on_tpu / total, 4) if total else 0.0)
    major = compiler_major(summary.get("compiler_version"))
    return with_prediction(report, check(model, major if major in COMPILER_VERSIONS else DEFAULT_COMPILER),
                           placement_known=bool(rows) or "ops_total" in summary)


def with_prediction(report: dict, prediction: dict, placement_known: bool = True) -> dict:
    """The compiler's report with the pre-check's prediction beside it and whether they agree: the same ops (by
    name and count) on the CPU. None when the compiler's output said nothing about placement."""
    report["prediction"] = {k: prediction[k] for k in ("fully_mapped", "tpu_subgraphs", "ops_on_tpu", "ops_total",
                                                        "share_ops_on_tpu", "share_macs_on_tpu", "compiler_version",
                                                        "ops_uncertain")}
    report["prediction"]["cpu_ops"] = cpu_op_counts(prediction)
    same_cpu_ops = cpu_op_counts(report) == cpu_op_counts(prediction) if report["ops"] else True
    report["agrees_with_prediction"] = (same_cpu_ops and report["ops_on_tpu"] == prediction["ops_on_tpu"]
                                        and report["tpu_subgraphs"] == prediction["tpu_subgraphs"]
                                        if placement_known else None)
    return report


def cpu_ops_from_log(text: str) -> dict:
    """{op: count} the compiler's operation log (or stdout table) puts on the CPU."""
    rows = parse_operation_table(text)
    return cpu_op_counts({"ops": [row.to_dict() for row in rows]})


def cpu_ops_from_compiled(path: str | Path) -> dict:
    """{op: count} left outside `edgetpu-custom-op` in a compiled `*_edgetpu.tflite`: the ops on the CPU (named
    as the compiler's log names them)."""
    from ..analysis.graph import read_graph

    counts = {}
    for op in read_graph(path).ops:
        if op.name != EDGETPU_CUSTOM_OP:
            counts[log_name(op)] = counts.get(log_name(op), 0) + 1
    return counts
