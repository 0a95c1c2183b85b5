"""`tfedge deploy BUNDLE user@host:DIR`: copy a bundle to a device over SSH, atomically, and verify it there.

Transport: the system OpenSSH client (`ssh`), not a Python SSH library. It already honours the user's
~/.ssh/config (Host aliases, ProxyJump), known_hosts, ssh-agent and hardware keys, exists on every Linux,
macOS and Windows 10+ host, and adds no dependency; paramiko/asyncssh would re-implement all of that.
One multiplexed connection (ControlMaster) carries every step, so the handshake is paid once.
Files travel as a tar stream over `ssh`; the device needs only `python3` (rsync and scp are not used).

Steps: probe (the device's Python, free space, the deployed bundle's verified checksums) -> [--install: the
device package as a wheel built here, into a venv there] -> send only changed files, which the device
assembles beside the old bundle and swaps in atomically (nothing is sent when nothing changed) ->
`tfedge-run verify` there -> [--run INPUT: one inference, its output streamed].
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tfedge_device.bundle import CHECKSUMS, open_bundle, read_checksums
from tfedge_device.fileio import sha256_file

from ..errors import BAD_INPUT, BUDGET, ENVIRONMENT, BadInput, BudgetNotMet, EnvironmentMissing, TfedgeError

log = logging.getLogger(__name__)

REMOTE_SCRIPT = Path(__file__).with_name("deploy_remote.py")
DEFAULT_VENV = "~/.tfedge/venv"
CONNECT_TIMEOUT_S = 10
SPACE_MARGIN_BYTES = 1 << 20

# ssh's stderr (exit 255) -> one line and a hint. First match wins. All are exit 3.
SSH_FAILURES = (
    ("Permission denied", "authentication refused by {host}",
     ("check the user name and --identity KEY; the device's ~/.ssh/authorized_keys must hold its public key "
     "(ssh-copy-id)")),
    ("Host key verification failed", "the host key of {host} is unknown or has changed",
     "connect once with `ssh` to check and accept it, or fix ~/.ssh/known_hosts"),
    ("Connection refused", "{host} port {port} refused the connection",
     "is sshd running on the device, and is the port right (--port)?"),
    ("Could not resolve hostname", "cannot resolve the host name {host}", "check the name or use its IP address"),
    ("timed out", "{host} did not answer within " + str(CONNECT_TIMEOUT_S) + " s",
     "is the device on and on this network?"),
    ("No route to host", "no route to {host}", "is the device on and on this network?"),
    ("Network is unreachable", "network unreachable for {host}", "check this machine's network"),
)

# bundle task -> the tfedge-run command and option that take one input (--run INPUT).
RUN_COMMANDS = {"sentence-embedding": ("embed", "--text"), "default": ("classify", "--input")}


@dataclass(frozen=True)
class Target:
    user: str | None
    host: str
    directory: str

    @property
    def destination(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host


def parse_target(text: str) -> Target:
    """'user@host:DIR', 'host:DIR' or '[::1]:DIR' -> Target. DIR is relative to the remote home if not absolute."""
    user, _, rest = text.rpartition("@") if "@" in text.split(":")[0] else (None, "", text)
    if rest.startswith("["):
        host, _, directory = rest[1:].partition("]:")
    else:
        host, _, directory = rest.partition(":")
    if not host or not directory or (user is not None and not user):
        raise BadInput(f"target {text!r} is not user@host:DIR", hint="e.g. pi@raspberrypi.local:models")
    return Target(user or None, host, directory)


@dataclass
class DeployRequest:
    bundle: Path
    target: str
    port: int | None = None
    identity: Path | None = None
    ssh_options: list[str] = field(default_factory=list)
    install: bool = False
    wheel: Path | None = None
    venv: str = DEFAULT_VENV
    python: str = "python3"
    run_input: str | None = None
    verify: bool = True
    stream_to_stderr: bool = False  # --json: remote output must not mix with the JSON on stdout


class Connection:
    """One multiplexed OpenSSH connection to the device."""

    def __init__(self, target: Target, port=None, identity=None, options=(), python="python3"):
        self.target, self.port, self.python = target, port, python
        self._control_dir = tempfile.mkdtemp(prefix="tfedge-ssh-")
        self.base = ["ssh", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}",
                     "-o", "ServerAliveInterval=15"]
        if os.name != "nt":  # Windows' OpenSSH has no connection sharing
            self.base += ["-o", "ControlMaster=auto", "-o", f"ControlPath={self._control_dir}/%C",
                          "-o", "ControlPersist=60"]
        if port:
            self.base += ["-p", str(port)]
        if identity:
            if not Path(identity).is_file():
                raise BadInput(f"--identity key not found: {identity}")
            self.base += ["-i", str(identity), "-o", "IdentitiesOnly=yes"]
        for option in options:
            self.base += ["-o", option]
        self.base.append(target.destination)
        self._script = REMOTE_SCRIPT.read_text(encoding="utf-8")

    def popen(self, argv: list[str], **kw) -> subprocess.Popen:
        try:
            return subprocess.Popen([*self.base, "--", shlex.join(argv)], **kw)
        except FileNotFoundError:
            raise EnvironmentMissing("no ssh client on this machine",
                                     hint="install OpenSSH (Debian: apt-get install openssh-client)") from None

    def run(self, argv: list[str], stream=None) -> tuple[int, str]:
        """Run a remote command, its stdout going to `stream` (our stdout by default) as it comes.
        Returns (exit code, its stderr); the stderr is echoed only when the command succeeds."""
        process = self.popen(argv, stdout=stream, stderr=subprocess.PIPE, text=True)
        _, err = process.communicate()
        if process.returncode == 255:
            raise self.failure(err)
        if process.returncode == 0:
            sys.stderr.write(err)
        return process.returncode, err

    def script(self, command: str, *args: str, feed=None, echo: bool = False) -> dict:
        """Run deploy_remote.py COMMAND ARGS on the device; `feed(stdin)` writes its input; `echo` shows its
        stderr as it comes (pip's output). Returns its JSON result."""
        import threading

        process = self.popen([self.python, "-c", self._script, command, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        err_chunks: list[bytes] = []

        def drain() -> None:  # a full stderr pipe must never stall the device while we feed or read
            for line in iter(process.stderr.readline, b""):
                err_chunks.append(line)
                if echo:
                    sys.stderr.write(line.decode(errors="replace"))

        drainer = threading.Thread(target=drain, daemon=True)
        drainer.start()
        try:
            if feed is not None:
                feed(process.stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass  # the device stopped reading: its error comes below
        out = process.stdout.read()
        process.wait()
        drainer.join()
        text_err = b"".join(err_chunks).decode(errors="replace")
        if process.returncode == 255:
            raise self.failure(text_err)
        if process.returncode == 127 or (process.returncode != 0 and "not found" in text_err and not out):
            raise EnvironmentMissing(f"no {self.python} on {self.target.host}",
                                     hint="install Python 3.10+ on the device (Debian: apt-get install python3)")
        try:
            result = json.loads(out.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            detail = " ".join(text_err.split())[-300:] or f"exit {process.returncode}"
            raise EnvironmentMissing(f"the deploy helper failed on {self.target.host}: {detail}") from None
        if "error" in result:
            raise remote_failure(result, self.target)
        return result

    def failure(self, stderr: str) -> EnvironmentMissing:
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        for needle, message, hint in SSH_FAILURES:
            if any(needle in line for line in lines):
                where = {"host": self.target.host, "port": self.port or 22}
                return EnvironmentMissing(message.format(**where), hint=hint)
        detail = lines[-1] if lines else "no message"
        return EnvironmentMissing(f"ssh to {self.target.host} failed: {detail}")

    def close(self) -> None:
        if os.name != "nt":
            subprocess.run([*self.base[:-1], "-O", "exit", self.target.destination], capture_output=True, check=False)
        import shutil

        shutil.rmtree(self._control_dir, ignore_errors=True)


def remote_failure(result: dict, target: Target) -> TfedgeError:
    kind, message = result.get("kind"), result["error"]
    if kind == "space":
        return EnvironmentMissing(f"no space left on {target.host}: {message}", hint="free space on the device")
    if kind == "venv":
        return EnvironmentMissing(f"{message} on {target.host}",
                                  hint="install the venv module (Debian: apt-get install python3-venv)")
    if kind == "input":
        return BadInput(f"{target.host}: {message}")
    return EnvironmentMissing(f"{target.host}: {message}")


def tar_feeder(root: Path, names: list[str]):
    """A function that writes a tar of `names` (relative to root) to a stream; counts the bytes sent."""
    sent = {"bytes": 0}

    def feed(stream) -> None:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as archive:
            for name in names:
                info = archive.gettarinfo(str(root / name), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with open(root / name, "rb") as fh:
                    archive.addfile(info, fh)
                sent["bytes"] += info.size

    return feed, sent


def file_feeder(path: Path):
    def feed(stream) -> None:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                stream.write(block)

    return feed


def remote_path(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


def plan_transfer(local_root: Path, remote: dict) -> tuple[list[str], list[str]]:
    """(names to send, names to reuse from the device's current copy) — by sha256, not by time or size."""
    local = read_checksums(local_root / CHECKSUMS)
    reuse = [name for name, digest in local.items() if remote["verified"].get(name) == digest]
    send = [name for name in local if name not in reuse] + [CHECKSUMS]
    return send, reuse


def sync_bundle(connection: Connection, local_root: Path, target_path: str, remote: dict) -> dict:
    unchanged = (remote["intact"] and remote["checksums_sha256"] == sha256_file(local_root / CHECKSUMS))
    if unchanged:
        return {"unchanged": True, "sent_files": 0, "sent_bytes": 0, "reused_files": len(remote["verified"]),
                "swap": None}
    send, reuse = plan_transfer(local_root, remote)
    needed = sum((local_root / name).stat().st_size for name in send) + SPACE_MARGIN_BYTES
    if needed > remote["free_bytes"]:
        raise EnvironmentMissing(f"no space on {connection.target.host}: the bundle needs {needed / 1e6:.1f} MB, "
                                 f"{remote['free_bytes'] / 1e6:.1f} MB free", hint="free space on the device")
    feed, sent = tar_feeder(local_root, send)
    result = connection.script("receive", target_path, json.dumps(reuse), feed=feed)
    return {"unchanged": False, "sent_files": len(send), "sent_bytes": sent["bytes"],
            "reused_files": result["reused"], "swap": result["swap"]}


def deploy(request: DeployRequest) -> dict:
    target = parse_target(request.target)
    bundle = open_bundle(request.bundle)  # refuses a damaged local bundle (exit 2) before connecting
    name = Path(request.bundle).name.removesuffix(".zip")
    target_path = remote_path(target.directory, name)
    timings, started = {}, time.perf_counter()
    work = tempfile.TemporaryDirectory(prefix="tfedge-deploy-")
    wheel = None
    if request.install:
        from .device_wheel import device_wheel

        wheel = device_wheel(request.wheel, Path(work.name))
    connection = Connection(target, request.port, request.identity, request.ssh_options, request.python)
    try:
        remote = connection.script("probe", target_path, request.venv)
        target_path = remote["target"]  # absolute, ~ expanded by the device
        timings["probe_s"] = time.perf_counter() - started
        log.info("%s: Python %s on %s, %.0f MB free", target.host, remote["python"], remote["machine"],
                 remote["free_bytes"] / 1e6)
        result = {"bundle": str(request.bundle), "target": f"{target.destination}:{target_path}",
                  "device": {k: remote[k] for k in ("python", "machine", "free_bytes")}, "install": None}
        if wheel is not None:
            result["install"] = install_device_package(connection, remote, wheel, request.venv)
            remote["tfedge_run"] = result["install"]["tfedge_run"]
            timings["install_s"] = time.perf_counter() - started - sum(timings.values())
        mark = time.perf_counter()
        result["transfer"] = sync_bundle(connection, bundle.root, target_path, remote)
        timings["transfer_s"] = time.perf_counter() - mark
        stream = sys.stderr if request.stream_to_stderr else None
        result["verified"] = False
        if request.verify or request.run_input:
            tfedge_run = remote["tfedge_run"] or _missing_runtime(target, target_path)
            if not remote["python_ok"]:
                raise EnvironmentMissing(f"{target.host} has Python {remote['python']}; tfedge-run needs 3.10+")
        if request.verify:
            mark = time.perf_counter()
            _check_exit(connection.run([tfedge_run, "verify", target_path], stream), "verify", target)
            result["verified"] = True
            timings["verify_s"] = time.perf_counter() - mark
        if request.run_input:
            mark = time.perf_counter()
            result["run"] = run_input(connection, tfedge_run, bundle.data.get("task"), target_path,
                                      request.run_input, stream)
            timings["run_s"] = time.perf_counter() - mark
    finally:
        connection.close()
        work.cleanup()
    result["timings"] = {k: round(v, 3) for k, v in timings.items()}
    return result


def _missing_runtime(target: Target, target_path: str):
    raise EnvironmentMissing(f"the bundle is on {target.host}:{target_path}, but tfedge-run is not installed "
                             "there (looked in the venv and on PATH)",
                             hint="re-run with --install, or pip install tfedge-device on the device")


def _check_exit(outcome: tuple[int, str], what: str, target: Target) -> None:
    """A failed remote tfedge-run becomes one line here, with its own message and exit code."""
    code, stderr = outcome
    if code == 0:
        return
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = next((line.split("error:", 1)[1].strip() for line in reversed(lines) if "error:" in line),
                lines[-1] if lines else "no message")
    kinds = {BAD_INPUT: BadInput, ENVIRONMENT: EnvironmentMissing, BUDGET: BudgetNotMet}
    raise kinds.get(code, EnvironmentMissing)(f"tfedge-run {what} failed on {target.host} (exit {code}): {said}")


def run_input(connection: Connection, tfedge_run: str, task: str | None, target_path: str, value: str,
              stream) -> dict:
    """One inference on the device: upload INPUT (a file) beside the bundle, run, remove it."""
    command, option = RUN_COMMANDS.get(task or "", RUN_COMMANDS["default"])
    if option == "--text":
        text = Path(value).read_text(encoding="utf-8").strip() if Path(value).is_file() else value
        _check_exit(connection.run([tfedge_run, command, target_path, option, text], stream), command,
                    connection.target)
        return {"command": command}
    path = Path(value)
    if not path.is_file():
        raise BadInput(f"--run input not found: {path}")
    remote_input = remote_path(target_path.rsplit("/", 1)[0], f".tfedge-input-{os.getpid()}{path.suffix}")
    connection.script("put", remote_input, feed=file_feeder(path))
    try:
        outcome = connection.run([tfedge_run, command, target_path, option, remote_input], stream)
    finally:
        connection.run(["rm", "-f", remote_input], subprocess.DEVNULL)
    _check_exit(outcome, command, connection.target)
    return {"command": command, "input": path.name}


def install_device_package(connection: Connection, remote: dict, wheel: dict, venv: str) -> dict:
    """The device package from a wheel built here, into `venv` on the device (skipped when already there)."""
    if not remote["python_ok"]:
        raise EnvironmentMissing(f"{connection.target.host} has Python {remote['python']}; the device package "
                                 "needs 3.10+", hint="use Raspberry Pi OS bookworm (Python 3.11) or newer")
    if remote["wheel_id"] == wheel["id"] and remote["tfedge_run"]:
        return {"wheel": wheel["path"].name, "installed": False, "tfedge_run": remote["tfedge_run"]}
    log.warning("installing %s into %s on %s (pip; minutes on a Pi when LiteRT must be downloaded)",
                wheel["path"].name, venv, connection.target.host)
    remote_wheel = f"{venv.rstrip('/')}-wheels/{wheel['path'].name}"
    connection.script("put", remote_wheel, feed=file_feeder(wheel["path"]))
    installed = connection.script("install", venv, remote_wheel, wheel["id"], echo=True)
    return {"wheel": wheel["path"].name, "installed": True, "tfedge_run": installed["tfedge_run"]}
