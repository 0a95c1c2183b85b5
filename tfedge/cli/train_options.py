"""Options and output shared by the optimization commands (prune, qat, cluster, distill), defined once."""

from __future__ import annotations

import logging

import click

from .options import data_option, json_option, output_option, preprocess_option, quiet_option, table

log = logging.getLogger("tfedge")


def training_options(epochs: int, learning_rate: float, patience: int = 3, quant_help: str = "int8"):
    """DATA/OUT/training/strategy options with per-command defaults (applied bottom-up)."""
    decorators = [
        data_option("Training data: an image folder (one sub-folder per class), a .npz with x and y, or a .txt "
                    "of sentences (embedding distillation).", required=True, path=False),
        click.option("--val", help="Validation data (same formats); default: 10 % of DATA held out (seeded)."),
        output_option("OUT.tflite (converted with --quant, manifest beside), OUT.h5 (tf_keras) or a "
                      "SavedModel directory; each is accepted by `tfedge convert`."),
        click.option("--epochs", type=int, default=epochs, show_default=True, help="Maximum epochs."),
        click.option("--batch-size", type=click.IntRange(1), default=32, show_default=True),
        click.option("--learning-rate", type=float, default=learning_rate, show_default=True),
        click.option("--patience", type=click.IntRange(0), default=patience, show_default=True,
                     help="Stop after this many epochs without val_loss improvement (0: never stop early)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Random seed (runs reproduce)."),
        click.option("--strategy", type=click.Choice(["default", "mirrored", "multiworker"]), default="default",
                     show_default=True, help="tf.distribute strategy (multiworker reads TF_CONFIG)."),
        preprocess_option("Image preset for image folders (unit, mobilenet, caffe, torch, raw).", default="unit"),
        click.option("--quant", default="int8", show_default=True,
                     help=f"Mode of OUT.tflite and of the converted figures ({quant_help})."),
        json_option,
        quiet_option,
    ]

    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def make_request(model, kw: dict, options: dict | None = None):
    from ..optimize.common import OptimizeRequest
    from ..optimize.train import FitOptions

    fit = FitOptions(epochs=kw["epochs"], batch_size=kw["batch_size"], learning_rate=kw["learning_rate"],
                     patience=kw["patience"], seed=kw["seed"], show_progress=not (kw["quiet"] or kw["as_json"]))
    return OptimizeRequest(model=model, data=kw["data"], output=kw["output"], val=kw["val"],
                           preset=kw["preprocess"], strategy=kw["strategy"], quant=kw["quant"], fit=fit,
                           options=options or {})


def percent(value) -> str:
    return "n/a" if value is None else f"{value * 100:.2f} %"


def print_result(result: dict, details: list[tuple]) -> None:
    """The summary, the converted-variants table, then notes (to stderr)."""
    training = result["training"]
    rows = [
        ("output", f"{result['output']['path']} ({result['output']['format']})"),
        ("trained", f"{training['epochs_run']}/{training['epochs_max']} epochs"
                    + (" (stopped early)" if training["stopped_early"] else "")
                    + f", {result['strategy']['name']} strategy x{result['strategy']['replicas']}"),
        ("accuracy before", percent(result["accuracy_before"])),
        ("accuracy after", percent(result["accuracy_after"])),
    ] + details
    click.echo(table(rows))
    click.echo()
    text = any("cosine_to_teacher" in v for v in result["tflite"].values())
    variants = [(name, v["mode"], f"{v['size_bytes'] / 1024:.1f}", f"{v['gzip_bytes'] / 1024:.1f}",
                 f"{v['cosine_to_teacher']:.4f}" if text else percent(v["top1"]), f"{v['latency_ms'] * 1000:.0f}")
                for name, v in result["tflite"].items()]
    click.echo(table(variants, ("converted", "mode", "KiB", "gzip KiB", "cosine" if text else "top-1",
                                "latency us")))
    for note in result["notes"]:
        log.warning(note)
