"""`tfedge export-c`: a .tflite model as a C array for TensorFlow Lite for Microcontrollers."""

from __future__ import annotations

from pathlib import Path

import click

from .options import emit, json_option, output_option, table


@click.command("export-c")
@click.argument("model", type=click.Path(path_type=Path))
@output_option("The C/C++ source to write (e.g. model_data.cc); its header (.h) is written beside it.")
@click.option("--name", default="g_model", show_default=True, help="The array's C name.")
@json_option
def export_c(model, output, name, as_json):
    """MODEL.tflite as a C array for TFLite Micro.

    Writes OUTPUT with a 16-byte aligned array and its length constant, and a header beside it.
    """
    from ..analysis.export_c import export_c as run

    result = run(model, output, name)
    emit(result, as_json, lambda r: click.echo(table([
        ("source", r["source"]), ("header", r["header"]),
        ("array", f"{r['name']}[{r['length']}] (alignas({r['alignment']})), length in {r['name']}_len"),
    ])))
