"""Options shared by several commands, defined once (pip-tools' options.py pattern)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import BadInput


def parse_shape(text: str) -> tuple | None:
    """'1,224,224,3' or '1x224x224x3' -> (1, 224, 224, 3); '-' keeps an input as it is."""
    if text.strip() == "-":
        return None
    try:
        dims = tuple(int(part) for part in text.replace("x", ",").split(",") if part.strip())
    except ValueError:
        raise BadInput(f"--input-shape {text!r} is not a list of integers like 1,224,224,3") from None
    if not dims or any(d < 1 for d in dims):
        raise BadInput(f"--input-shape {text!r} must list positive dimensions")
    return dims


json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout only.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bars or notes on stderr.")
threads_option = click.option("--threads", type=click.IntRange(1, 256), default=None,
                              help="Interpreter threads (default: the runtime's).")
input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True,
    help="Fix an input's shape, e.g. 1,224,224,3 (repeat per input, in order; '-' keeps one).")
signature_option = click.option("--signature", help="SavedModel signature (default: serving_default).")
weights_option = click.option("--weights", help="keras-app: weights file, or 'none' for random weights.")
task_option = click.option("--task", help="hf: sources: sentence-embedding or sequence-classification; "
                                           "eval: detection (COCO mAP of a detector).")


def sequence_length_option(help_text: str, default: int | None = None):
    """--seq-len: tokens per text input (hf: sources, text distillation)."""
    return click.option("--seq-len", type=click.IntRange(2), default=default, show_default=default is not None,
                        help=help_text)


seq_len_option = sequence_length_option("hf: sources: sequence length (as converted).")
num_labels_option = click.option("--num-labels", type=click.IntRange(2),
                                 help="hf: sequence-classification: classes of the head (default: config.json's "
                                      "id2label, else 2).")
rewrites_option = click.option("--no-rewrites", "rewrites", is_flag=True, flag_value=False, default=True,
                               help="hf: sources: convert the graph as traced, without tfedge's attention/dense "
                                    "export rewrites (for A/B checks).")
unsafe_option = click.option("--unsafe", is_flag=True,
                             help="Allow Keras Lambda layers (runs code from the file: only for trusted files).")


# Options several commands take with the same name, type and default; each command says in its help what the
# option means to it (eval's DATA is required, compare's is not), so these take the help text.
def data_option(help_text: str, required: bool = False, path: bool = True):
    """--data: evaluation or training data (a path; training data stays a string, as calibration takes it)."""
    return click.option("--data", "data", required=required, type=click.Path(path_type=Path) if path else None,
                        help=help_text)


def preprocess_option(help_text: str, default: str | None = None):
    """--preprocess: an image normalisation preset (tfedge_device.preprocess)."""
    return click.option("--preprocess", default=default, show_default=default is not None, help=help_text)


def limit_option(help_text: str):
    return click.option("--limit", type=click.IntRange(1), help=help_text)


def runs_option(help_text: str):
    return click.option("--runs", type=click.IntRange(1), default=50, show_default=True, help=help_text)


def warmup_option(help_text: str):
    return click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help=help_text)


def labels_option(help_text: str):
    return click.option("--labels", type=click.Path(path_type=Path), help=help_text)


def output_option(help_text: str, dir_okay: bool = True):
    """-o/--output: the file (or directory) a command writes."""
    return click.option("-o", "--output", required=True, type=click.Path(dir_okay=dir_okay, path_type=Path),
                        help=help_text)


def require_full_option(help_text: str):
    return click.option("--require-full", is_flag=True, help=help_text)


def emit(result: dict, as_json: bool, human) -> None:
    """--json: the result alone on stdout; otherwise `human(result)` prints the short table."""
    if as_json:
        json.dump(result, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        human(result)


def table(rows: list[tuple], headers: tuple | None = None) -> str:
    """A plain aligned text table."""
    rows = [tuple("" if v is None else str(v) for v in row) for row in rows]
    if headers:
        rows = [tuple(headers)] + rows
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows else []
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if headers:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
