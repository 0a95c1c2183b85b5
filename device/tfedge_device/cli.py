"""`tfedge-run`: the device CLI. A thin argparse layer over one module per subcommand.

Each module in `tfedge_device.commands` defines `add_arguments(parser)` and `run(args) -> int`; its
docstring's first line is the command's help. Only the chosen command's module is imported, and command
modules import their heavy parts (numpy, PIL, the runtime) inside functions, so `tfedge-run --help` and
usage errors are instant. Errors become one line and an exit code at this edge (errors.report).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__
from .errors import BAD_INPUT, report
from .fileio import interrupt_on_signals

PROG = "tfedge-run"

# command name -> module under tfedge_device.commands. One line per command.
COMMANDS = {
    "bench": "bench",
    "classify": "classify",
    "detect": "detect",
    "doctor": "doctor",
    "embed": "embed",
    "info": "info",
    "verify": "verify",
}

# Shown by `tfedge-run --help` without importing every command module.
SUMMARIES = {
    "bench": "latency percentiles, peak memory and size of a model (benchmark_model style)",
    "classify": "classify images (pycoral's classify_image conventions), or texts with --text",
    "detect": "detect objects in images: SSD, YOLO and end-to-end layouts, boxes in the image's pixels",
    "doctor": "will inference (and the Edge TPU) work here: each check with a fix; exit 3 when not ready",
    "embed": "sentence embeddings with a text model",
    "info": "runtime in use, the model's inputs/outputs and quantization, its manifest",
    "verify": "check a bundle's checksums and that it runs here",
}

EPILOG = "Exit codes: 0 ok, 1 internal bug, 2 bad input or usage, 3 environment missing, 4 budget not met."


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line and exit 2, like every other tfedge-run error."""

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(BAD_INPUT)


def command_module(name: str):
    return importlib.import_module(f"{__package__}.commands.{COMMANDS[name]}")


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `chosen`'s module is imported and given its arguments."""
    parser = OneLineParser(
        prog=PROG,
        description="Run tfedge models (.tflite) on a Raspberry Pi, Coral or any Linux box, without TensorFlow.",
        epilog=EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="More log output on stderr.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    commands.required = True
    for name in COMMANDS:
        sub = commands.add_parser(name, help=SUMMARIES.get(name, ""), epilog=EPILOG)
        if name == chosen:
            module = command_module(name)
            sub.description = (module.__doc__ or "").strip() or None
            sub.formatter_class = argparse.RawDescriptionHelpFormatter
            module.add_arguments(sub)
    return parser


def chosen_command(argv: list[str]) -> str | None:
    """The first argument that names a command (options before it take no values)."""
    return next((arg for arg in argv if arg in COMMANDS), None)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    interrupt_on_signals()  # a stopped service cleans up like Ctrl-C (fileio)
    try:
        args = build_parser(chosen_command(argv)).parse_args(argv)
        level = logging.WARNING - 10 * args.verbose
        logging.basicConfig(level=max(level, logging.DEBUG), format=f"{PROG}: %(message)s", stream=sys.stderr)
        code = command_module(args.command).run(args)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here
    except SystemExit as done:  # argparse: --help, --version, usage errors
        code = done.code if isinstance(done.code, int) else BAD_INPUT
    except BrokenPipeError:  # `tfedge-run classify ... | head`: the reader left; quiet, like other Unix tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except BaseException as err:  # noqa: BLE001 - the CLI edge: one line and an exit code for everything
        code = report(err, PROG)
    return code


if __name__ == "__main__":
    sys.exit(main())
