"""Arguments shared by tfedge-run's subcommands (defined once, as pip-tools' options.py does)."""

from __future__ import annotations

import argparse


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def add_model(parser, help_text: str) -> None:
    """MODEL as a positional argument or pycoral's -m/--model."""
    parser.add_argument("model", metavar="MODEL", nargs="?", help=help_text)
    parser.add_argument("-m", "--model", dest="model_option", metavar="MODEL", help="MODEL, pycoral style.")


def take_model(args) -> None:
    """Settle args.model from the positional or -m/--model (exactly one of them)."""
    from ..errors import BadInput

    if args.model and args.model_option and args.model != args.model_option:
        raise BadInput(f"two models given ({args.model} and -m {args.model_option}); give one")
    args.model = args.model or args.model_option
    if not args.model:
        raise BadInput("no model given", hint="pass MODEL.tflite (or -m MODEL.tflite)")


def add_input_shape(parser) -> None:
    """--input-shape NAME:DIMS (repeatable), benchmark_model's --input_layer_shape meaning."""
    parser.add_argument(
        "--input-shape", dest="input_shapes", action="append", default=[], metavar="NAME:DIMS",
        help="Shape of a dynamic input, e.g. audio:1,16000 (NAME: signature or tensor name; a bare 1,16000 "
             "for a single-input model). Repeat for several inputs.")
