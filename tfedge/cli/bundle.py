"""`tfedge bundle MODEL.tflite [MODEL_edgetpu.tflite] -o NAME.tfedge [--zip]`."""

from __future__ import annotations

from pathlib import Path

import click

from .options import emit, json_option, labels_option, output_option, table


@click.command("bundle")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@output_option("The bundle to write: a directory NAME.tfedge (or one zip archive with --zip).")
@labels_option("Labels file (default: the model manifest's).")
@click.option("--sample", type=click.Path(path_type=Path),
              help="Stored self-test input: an image or a .npy/.npz of the input (default: random, seed 0).")
@click.option("--extra", multiple=True, type=click.Path(path_type=Path),
              help="Another file to ship in the bundle (repeatable).")
@click.option("--zip", "as_zip", is_flag=True, help="Write one zip archive instead of a directory.")
@json_option
def bundle(models, output, labels, sample, extra, as_zip, as_json):
    """Make one deployable bundle of MODELS (a CPU .tflite and optionally its *_edgetpu.tflite).

    The bundle holds the models with their manifests, labels, tokenizer files, a sample input with the
    expected output (so `tfedge-run verify` can self-test on the device) and SHA256SUMS.
    """
    from ..ship.bundle import BundleRequest
    from ..ship.bundle import bundle as run

    result = run(BundleRequest(models=list(models), output=output, labels=labels, sample=sample,
                               extra=list(extra), as_zip=as_zip))
    emit(result, as_json, print_result)


def print_result(result: dict) -> None:
    rows = [("bundle", (f"{result['output']} ({result['format']}, {result['size_bytes'] / 1e6:.3f} MB, "
                       f"{result['files']} files checksummed)"))]
    rows += [(f"{name} variant", model) for name, model in result["variants"].items()]
    rows += [("labels", result["labels"] or "none"), ("extra files", ", ".join(result["extra_files"]) or "none"),
             ("sample", result["sample"] or "none (no CPU model)"),
             ("min runtime", result["min_runtime_release"] or "unknown")]
    click.echo(table(rows))
