"""`tfedge deploy BUNDLE user@host:DIR [--port N] [--identity KEY] [--install] [--run INPUT]`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from .options import emit, json_option, table

log = logging.getLogger("tfedge")


@click.command("deploy")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("target")
@click.option("-p", "--port", type=click.IntRange(1, 65535), help="SSH port (default: ssh's, usually 22).")
@click.option("-i", "--identity", type=click.Path(path_type=Path), help="SSH private key file.")
@click.option("-o", "--ssh-option", "ssh_options", multiple=True,
              help="An ssh -o option, e.g. UserKnownHostsFile=FILE (repeatable).")
@click.option("--install", is_flag=True,
              help="Install/update the device package in a venv on the device, from a wheel built here.")
@click.option("--wheel", type=click.Path(path_type=Path), help="With --install: this tfedge_device wheel.")
@click.option("--venv", default="~/.tfedge/venv", show_default=True,
              help="The device's venv holding tfedge-run (created by --install).")
@click.option("--python", default="python3", show_default=True, help="Python on the device.")
@click.option("--run", "run_input", help="After verifying, run one inference on INPUT (a local file) there.")
@click.option("--no-verify", is_flag=True, help="Copy only; do not run `tfedge-run verify` on the device.")
@json_option
def deploy(bundle, target, port, identity, ssh_options, install, wheel, venv, python, run_input, no_verify,
           as_json):
    """Copy BUNDLE to TARGET (user@host:DIR) over SSH and verify it there.

    Only changed files travel (none when the device already has this bundle); the device assembles the
    new bundle beside the old one and swaps it in atomically, so it never runs a half-copied model.
    Needs key-based SSH (no password prompts) and python3 on the device.
    """
    from ..ship.deploy import DeployRequest
    from ..ship.deploy import deploy as run

    result = run(DeployRequest(bundle=bundle, target=target, port=port, identity=identity,
                               ssh_options=list(ssh_options), install=install, wheel=wheel, venv=venv,
                               python=python, run_input=run_input, verify=not no_verify,
                               stream_to_stderr=as_json))
    emit(result, as_json, print_result)


def print_result(result: dict) -> None:
    transfer = result["transfer"]
    if transfer["unchanged"]:
        sent = "unchanged on the device: nothing transferred"
    else:
        sent = (f"{transfer['sent_files']} files, {transfer['sent_bytes'] / 1e6:.3f} MB sent, "
                f"{transfer['reused_files']} reused; swapped in ({transfer['swap']})")
    device = result["device"]
    rows = [("deployed", result["target"]), ("transfer", sent),
            ("device", (f"Python {device['python']} on {device['machine']}, "
                       f"{device['free_bytes'] / 1e6:.0f} MB free"))]
    if result["install"]:
        rows.append(("device package", f"{result['install']['wheel']} "
                     + ("installed" if result["install"]["installed"] else "already installed")))
    rows.append(("verified", "yes" if result["verified"] else "skipped (--no-verify)"))
    click.echo(table(rows))
