"""`tfedge compare`: one table of params, GFLOPs, size, latency, speed-up and accuracy for several variants,
written as Markdown, self-contained HTML with plots, and JSON."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .options import (
    data_option,
    emit,
    json_option,
    limit_option,
    preprocess_option,
    quiet_option,
    runs_option,
    seq_len_option,
    task_option,
    threads_option,
    warmup_option,
    weights_option,
)

log = logging.getLogger(__name__)


@click.command("compare")
@click.argument("variants", nargs=-1, required=True)
@data_option("Evaluation data (as for `tfedge eval`): .npz of model-ready x (+ y), or class folders; for "
             "detectors, images with their COCO annotations.json (mAP@0.5). Inputs without labels are compared by "
             "cosine to the source (else the float32 variant).")
@click.option("--report", "report", type=click.Path(path_type=Path),
              help="Write REPORT.md, REPORT.html (plots embedded) and REPORT.json.")
@runs_option("Timed runs per variant.")
@warmup_option("Warm-up runs per variant.")
@preprocess_option("Image preset for class folders when a variant has no manifest.")
@limit_option("Evaluate at most this many samples.")
@threads_option
@weights_option
@task_option
@seq_len_option
@json_option
@quiet_option
def compare(variants, data, report, runs, warmup, preprocess, limit, threads, weights, task, seq_len, as_json, quiet):
    """Params, GFLOPs, size, latency, speed-up and accuracy of VARIANTS.

    VARIANTS: .tflite files and/or the source model; measured on the device runtime.
    """
    from ..analysis.compare import compare as run
    from ..analysis.report import report_paths, to_markdown, write_reports
    from ..convert.sources import LoadOptions

    if report is not None:
        report_paths(report)  # a bad --report fails before the measurements
    quiet = quiet or as_json
    result = run(list(variants), data=data, runs=runs, warmup=warmup, threads=threads, preset=preprocess,
                 limit=limit, load_options=LoadOptions(weights=weights, task=task, seq_len=seq_len),
                 progress=None if quiet else lambda text: click.echo(text, err=True))
    if report is not None:
        result["reports"] = write_reports(result, report)
    emit(result, as_json, lambda r: click.echo(to_markdown(r) + "".join(
        f"wrote {path}\n" for path in (r.get("reports") or {}).values())))
