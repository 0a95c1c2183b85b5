"""`--quant edgetpu`: full-integer conversion for the Edge TPU Compiler, then the pre-check on the result.

What the Edge TPU needs [coral.ai/docs/edgetpu/models-intro#model-requirements]: every tensor 8-bit quantized,
sizes fixed at compile time (batch 1), integer builtin ops only. So: the `int8` mode's converter settings
(TFLITE_BUILTINS_INT8 only, no float fallback, calibration as in int8) with uint8 I/O by default (Coral's
examples use uint8; int8 is selectable with --io-type int8).

After conversion the pre-check (check.py) runs on the new model:
  * an op left working on a non-8-bit type (no integer kernel) -> refused (exit 2), naming the op and why:
    such a model would compile to a CPU-only or split model, which is not what --quant edgetpu promises;
  * ops the TPU lacks or cannot map (partial mapping) -> the model is written, with a warning naming the first
    CPU op and the predicted shares; the full report is in the result and manifest (`search.edgetpu_check`).
    This is what the compiler itself does: it compiles and reports, and a partly mapped model still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..convert.modes import Mode, configure_int8
from ..errors import BadInput
from . import rules

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EdgeTpuMode(Mode):
    """A mode that converts and then judges the result: convert() calls `build(...) -> model bytes`."""

    build: Callable | None = None


def _check_fixed_batch(source) -> None:
    for spec in source.inputs:
        if spec.shape and spec.shape[0] != 1:
            raise BadInput(f"--quant edgetpu needs batch 1; input {spec.name!r} has shape {list(spec.shape)}",
                           hint="pass --input-shape with a leading 1, e.g. 1,224,224,3")


def _refusal(report: dict, by_design: set) -> dict | None:
    """The first op the converter left without an integer kernel (on a float/int32 activation), if any, other
    than the ops (indices) that run on the CPU by design (rules.CPU_BY_DESIGN).

    The converter wraps such an op in DEQUANTIZE ... QUANTIZE: name the op itself, not its wrappers."""
    bad = [op for op in report["ops"] if op["status"] in rules.NO_INTEGER_KERNEL and op["index"] not in by_design]
    return next((op for op in bad if op["op"] not in ("QUANTIZE", "DEQUANTIZE")), bad[0] if bad else None)


def compact(report: dict) -> dict:
    """The report without its per-op rows (for the manifest and the convert result)."""
    return {k: v for k, v in report.items() if k != "ops"}


def build_edgetpu(source, samples, context, request) -> bytes:
    from ..analysis.graph import graph_from_bytes
    from ..convert.converter import run_converter
    from .check import check_graph

    _check_fixed_batch(source)
    converter = source.converter()
    configure_int8(converter, context)
    adjust = getattr(source, "adjust_converter", None)  # e.g. detectors: float outputs after the NMS op
    if adjust is not None:
        adjust(converter, MODE)
    name = Path(source.location).name
    model_bytes = run_converter(converter, name, context)
    finalize = getattr(source, "finalize_model", None)  # judged as it will be written (convert() finalizes too:
    if finalize is not None:  # finalize_model is idempotent)
        model_bytes = finalize(model_bytes)
    graph = graph_from_bytes(model_bytes, request.output)
    report = check_graph(graph)
    by_design = {op.index for op in graph.ops if op.name in rules.CPU_BY_DESIGN}  # the report says CUSTOM
    bad = _refusal(report, by_design)
    if bad is not None:
        raise BadInput(f"--quant edgetpu: op #{bad['index']} {bad['op']} of {name} cannot be integer-quantized "
                       f"for the Edge TPU: {bad['reasons'][0]}",
                       hint="replace the op in the source model (see docs/edgetpu.md), or use --quant int8 "
                            "for a CPU-only model")
    cpu_ops = [op for op in report["ops"] if not op["on_tpu"] and op["index"] not in by_design]
    if report["refusal"]:
        log.warning("Edge TPU pre-check: edgetpu_compiler %d would refuse this model: %s. Details: tfedge edgetpu "
                    "check %s", report["compiler_version"], report["refusal"]["message"], request.output)
    elif not report["fully_mapped"] and not cpu_ops:
        log.info("Edge TPU pre-check: the whole network predicted on the TPU; on the CPU by design: %s",
                 ", ".join(sorted({op.name for op in graph.ops if op.index in by_design})))
    elif not report["fully_mapped"]:
        first = report["first_cpu_op"]
        log.warning("Edge TPU pre-check: %d of %d ops (%.0f %% of MACs) predicted on the TPU; op #%d %s and the "
                    "ops that depend on it run on the CPU: %s. Details: tfedge edgetpu check %s",
                    report["ops_on_tpu"], report["ops_total"], 100 * (report["share_macs_on_tpu"] or 0),
                    first["index"], first["op"], first["status"], request.output)
    context.options["report"] = {"edgetpu_check": compact(report)}
    return model_bytes


MODE = EdgeTpuMode("edgetpu", "full integer for the Coral Edge TPU (uint8 I/O, batch 1), pre-checked",
                   configure_int8, aliases=("coral", "edge-tpu"), needs_calibration=True,
                   io_types=("uint8", "int8"), quantized_io_ok=True, build=build_edgetpu)
