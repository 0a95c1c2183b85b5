"""`tfedge`: the host CLI. A thin click layer: commands are loaded lazily so `tfedge --help` is instant.

Errors are raised deep as TfedgeError and printed once here (one line, documented exit code).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from .. import __version__
from ..errors import report

# command name -> "module:attribute" (each a small module in this package). One line per command.
COMMANDS = {
    "bench": "tfedge.cli.bench:bench",
    "bundle": "tfedge.cli.bundle:bundle",
    "cluster": "tfedge.cli.cluster:cluster",
    "compare": "tfedge.cli.compare:compare",
    "convert": "tfedge.cli.convert:convert",
    "deploy": "tfedge.cli.deploy:deploy",
    "distill": "tfedge.cli.distill:distill",
    "edgetpu": "tfedge.cli.edgetpu:edgetpu",
    "export-c": "tfedge.cli.export_c:export_c",
    "eval": "tfedge.cli.eval:evaluate",
    "inspect": "tfedge.cli.inspect:inspect",
    "prune": "tfedge.cli.prune:prune",
    "qat": "tfedge.cli.qat:qat",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tfedge")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
def cli(verbose: int) -> None:
    """Convert TensorFlow/Keras models to TFLite for edge devices, verify, optimize and deploy them.

    Exit codes: 0 ok, 1 internal bug, 2 bad input or usage, 3 environment missing, 4 budget not met.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="tfedge: %(message)s", stream=sys.stderr)


def main(argv=None) -> None:
    from tfedge_device.fileio import interrupt_on_signals

    interrupt_on_signals()  # a stopped service or `timeout` cleans up like Ctrl-C: no partial output
    try:
        cli.main(args=argv, prog_name="tfedge", standalone_mode=False)
    except click.exceptions.Exit as done:
        sys.exit(done.exit_code)
    except click.ClickException as err:  # usage errors: one line, like tfedge-run's (not click's three)
        where = err.ctx.command_path if getattr(err, "ctx", None) else "tfedge"
        message = " ".join(err.format_message().split())
        print(f"tfedge: error: {message} (see {where} --help)", file=sys.stderr)
        sys.exit(2)
    except click.exceptions.Abort:
        print("tfedge: interrupted; no output was written", file=sys.stderr)
        sys.exit(130)
    except BaseException as err:
        if isinstance(err, SystemExit):
            raise
        sys.exit(report(err, "tfedge"))
    sys.exit(0)
