"""`tfedge eval`: top-1/top-5 on labelled data, or cosine to a reference, for a .tflite or the source model."""

from __future__ import annotations

import click

from .options import (
    data_option,
    emit,
    json_option,
    limit_option,
    preprocess_option,
    seq_len_option,
    table,
    task_option,
    threads_option,
    weights_option,
)


def percent(value) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


@click.command("eval")
@click.argument("model")
@data_option("A .npz with x (model-ready inputs, already preprocessed) and y (class indices) and/or "
             "reference (expected outputs), or an image folder with one sub-folder per class; with --task "
             "detection, a folder of images with their COCO annotations.json, or that JSON file.", required=True)
@click.option("--reference", help="Compare outputs with this variant (a .tflite or the source model): cosine.")
@preprocess_option("Image preset for folders when the model has no manifest (unit, mobilenet, ...).")
@limit_option("Evaluate at most this many samples (spread evenly).")
@threads_option
@weights_option
@task_option
@seq_len_option
@json_option
def evaluate(model, data, reference, preprocess, limit, threads, weights, task, seq_len, as_json):
    """Accuracy of MODEL on DATA: top-1/top-5 or cosine; with --task detection, COCO mAP.

    MODEL: a .tflite file, or a SOURCE (model.keras, SavedModel dir, keras-app:NAME, hf:DIR)
    run in TensorFlow.
    """
    if task == "detection":
        from ..analysis.detection_eval import evaluate_detection

        emit(evaluate_detection(model, data, limit=limit, threads=threads), as_json, print_detection)
        return
    from ..analysis.evaluate import evaluate as run
    from ..convert.sources import LoadOptions

    result = run(model, data, reference=reference, preset=preprocess, limit=limit, threads=threads,
                 load_options=LoadOptions(weights=weights, task=task, seq_len=seq_len))
    emit(result, as_json, print_result)


def print_result(result: dict) -> None:
    rows = [("model", f"{result['model']} ({result['kind']})"), ("data", result["data"])]
    if result["top1"] is not None:
        rows += [("top-1", percent(result["top1"])), ("top-5", percent(result["top5"]))]
    if result["cosine_mean"] is not None:
        rows += [("cosine mean/min", f"{result['cosine_mean']:.5f} / {result['cosine_min']:.5f}"),
                 ("reference", result["reference"])]
    if result["top1_agreement"] is not None:
        rows.append(("top-1 agreement", percent(result["top1_agreement"])))
    rows.append(("time", f"{result['seconds']:.2f} s for {result['samples']} samples"))
    click.echo(table(rows))


def print_detection(result: dict) -> None:
    click.echo(table([("model", f"{result['model']} ({result['layout']['layout']})"), ("data", result["data"]),
                      ("mAP@0.5", percent(result["map_50"])), ("mAP@0.5:0.95", percent(result["map_50_95"])),
                      ("objects / detections", f"{result['objects']} / {result['detections']}"),
                      ("time", f"{result['seconds']:.2f} s for {result['samples']} images")]))
