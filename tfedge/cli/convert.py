"""`tfedge convert SOURCE -o OUT.tflite --quant MODE`."""

from __future__ import annotations

import logging
import sys

import click

from ..convert.registry import mode_names
from .options import (
    emit,
    input_shape_option,
    json_option,
    labels_option,
    num_labels_option,
    output_option,
    parse_shape,
    preprocess_option,
    quiet_option,
    rewrites_option,
    seq_len_option,
    signature_option,
    table,
    task_option,
    unsafe_option,
    weights_option,
)

log = logging.getLogger("tfedge")


@click.command()
@click.argument("source")
@output_option("Output .tflite (its manifest OUT.json is written beside it).", dir_okay=False)
@click.option("--quant", "mode", default="float32", show_default=True,
              help=f"Quantization mode: {', '.join(mode_names())}; Optimum aliases accepted.")
@click.option("--io-type", type=click.Choice(["int8", "uint8", "int16", "float32"]),
              help="Input/output type of integer modes (int8: int8 default; int16x8: int16 default).")
@click.option("--calib", help="Calibration data: image folder, .npy/.npz of input tensors, or 'random'.")
@click.option("--calib-count", type=int, default=200, show_default=True, help="Calibration samples used.")
@preprocess_option("Image normalisation preset: mobilenet, unit, caffe, torch, raw.")
@labels_option("Labels file copied into the manifest.")
@click.option("--verify-count", type=int, default=50, show_default=True,
              help="Samples compared between source and converted model, held out of --calib (0: skip; "
                   "refused with a budget).")
@click.option("--verify-data", help="A separate verification set (same formats as --calib); default: samples "
                                    "held out of --calib.")
@click.option("--min-cosine", type=float, help="Budget: minimum cosine similarity to the source (exit 4).")
@click.option("--min-top1-agreement", type=float, help="Budget: minimum top-1 agreement, 0..1 (exit 4).")
@click.option("--max-abs-error", type=float, help="Budget: maximum absolute output error (exit 4).")
@click.option("--min-detection-agreement", type=float,
              help="Budget for detectors: minimum share, 0..1, of the source's confident detections (score >= 0.5) "
                   "found again, same class, IoU >= 0.5 (exit 4).")
@input_shape_option
@signature_option
@weights_option
@unsafe_option
@task_option
@seq_len_option
@num_labels_option
@rewrites_option
@json_option
@quiet_option
def convert(source, output, mode, io_type, calib, calib_count, preprocess, labels, verify_count, verify_data,
            min_cosine,
            min_top1_agreement, max_abs_error, min_detection_agreement, input_shapes, signature, weights, unsafe, task, seq_len, num_labels,
            rewrites, as_json, quiet):
    """Convert SOURCE to TFLite and verify it against SOURCE.

    SOURCE: a SavedModel directory, a Keras 3 .keras file, a tf_keras .h5 file, keras-app:NAME
    (a keras.applications architecture) or hf:DIR (a Hugging Face directory: BERT family, ViT, DeiT, DINOv2).
    """
    from ..convert.pipeline import ConvertRequest
    from ..convert.pipeline import convert as run
    from ..convert.sources import LoadOptions

    request = ConvertRequest(
        source=source, output=output, mode=mode, io_type=io_type, calib=calib, calib_count=calib_count,
        preprocess=preprocess, labels=labels, verify_count=verify_count, verify_data=verify_data,
        budgets={"min_cosine": min_cosine, "min_top1_agreement": min_top1_agreement,
                 "max_abs_error": max_abs_error, "min_detection_agreement": min_detection_agreement},
        load=LoadOptions(signature=signature, input_shapes=[parse_shape(s) for s in input_shapes],
                         weights=weights, unsafe=unsafe, task=task, seq_len=seq_len,
                         num_labels=num_labels, rewrites=rewrites),
        show_progress=not (quiet or as_json),
    )
    result = run(request)
    if not (quiet or as_json):
        for note in result["notes"]:
            log.warning(note)
        sys.stderr.flush()
    emit(result, as_json, print_result)


def print_result(result: dict) -> None:
    figures = result["verification"] or {}
    rows = [
        ("output", result["output"]),
        ("mode", f"{result['mode']} (I/O {result['io_type']})"),
        ("size", f"{result['size_bytes'] / 1e6:.3f} MB"),
        ("converted in", f"{result['timings']['total_s']:.1f} s"),
    ]
    selective = (result.get("search") or {}).get("selective")
    if selective and result["mode"] == "selective-int8":  # auto prints its own table
        rows.append(("int8 search", f"{selective['summary']} ({selective['seconds']:.0f} s)"))
    if figures:
        rows.append(("verified on", figures["data"] + ("" if figures["real_data"] else "  (not real data)")))
        rows.append(("samples", split_wording(figures)))
        if figures["top1_agreement"] is not None:
            rows.append(("top-1 agreement", f"{figures['top1_agreement'] * 100:.1f} %"))
        if figures.get("detection_agreement") is not None:
            found = (f"{figures['detection_agreement'] * 100:.1f} % of {figures['detections_compared']}, "
                     f"box IoU {figures['box_iou_mean']:.3f}")
            rows.append(("detections found", found))
        if figures["cosine_mean"] is not None:
            rows += [
                ("cosine mean/min", f"{figures['cosine_mean']:.5f} / {figures['cosine_min']:.5f}"),
                ("max abs error", f"{figures['max_abs_error']:.3g}"),
            ]
    for name, entry in (figures.get("outputs") or {}).items() if len(figures.get("outputs") or {}) > 1 else ():
        rows.append((f"  output {name}", output_wording(entry)))
    click.echo(table(rows))


# How the verification samples relate to the calibration samples, as the summary says it.
SPLIT_WORDING = {
    "held-out": "held out: calibrated on {calibration_samples}, verified on {verification_samples} others",
    "separate": "separate --verify-data: calibrated on {calibration_samples}, verified on {verification_samples}",
    "in-sample": "IN-SAMPLE: verified on {verification_samples} of the {calibration_samples} calibration samples "
                 "(too few to split)",
    "not calibrated": "not calibrated: verified on {verification_samples}",
}


def split_wording(figures: dict) -> str:
    return SPLIT_WORDING[figures["split"]].format(**figures)


def output_wording(entry: dict) -> str:
    if entry["equal"] is not None:
        return f"equal {entry['equal'] * 100:.1f} %, max abs error {entry['max_abs_error']:.3g}"
    return f"cosine min {entry['cosine_min']:.5f}, max abs error {entry['max_abs_error']:.3g}"
