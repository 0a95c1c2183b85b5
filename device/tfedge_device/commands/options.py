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


def add_images(parser, required: bool = False) -> None:
    """-i/--input: image files and folders."""
    parser.add_argument("-i", "--input", nargs="+", default=[], required=required, metavar="IMG|DIR",
                        help="Image files and/or folders (searched recursively).")


def add_labels(parser) -> None:
    parser.add_argument("-l", "--labels", help="Label file (`0 cat`, `0: cat` or one a line); default: manifest's.")


def add_runs(parser) -> None:
    """Options of every image/text model run: -c/--count, --threads, --edgetpu, --json."""
    parser.add_argument("-c", "--count", type=positive, default=1,
                        help="Inferences per image; the first is the warm-up (default 1).")
    parser.add_argument("--threads", type=positive, default=None, help="Interpreter threads (default: runtime's).")
    parser.add_argument("--edgetpu", action="store_true", help="Run on the Edge TPU delegate (libedgetpu).")
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only.")


def add_preprocess(parser) -> None:
    """--preset/--resize: overrides of the manifest's image preprocessing."""
    from ..preprocess import PRESETS, RESAMPLE

    parser.add_argument("--preset", choices=sorted(PRESETS), help="Override the normalisation preset.")
    parser.add_argument("--resize", choices=sorted(RESAMPLE), help="Override the resize filter.")
