"""tfedge deploy against a real OpenSSH server (Debian's sshd) started here on 127.0.0.1.

The "device" is this machine: the bundle lands in a temp dir, `python3` is the system one (as on a Pi), and
tfedge-run is the session's device-only venv (`pip install ./device`, nothing of the host: a host-only import on
the device fails these tests) unless a test installs the device package itself with --install. sshd is a real
component, installed by tools/setup: a test that cannot start it fails with the reason, it does not skip.
"""

from __future__ import annotations

import getpass
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_clean_error

SSHD = "/usr/sbin/sshd"
SSHD_CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
PidFile {root}/sshd.pid
AuthorizedKeysFile {root}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
# the test's key files live in a pytest temp dir, not in a home directory sshd would vet
StrictModes no
UsePAM no
# a known PATH in the sessions: tfedge-run is found only where a test puts it (the venv it names)
SetEnv PATH=/usr/bin:/bin
MaxStartups 50
MaxSessions 50
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "tfedge-test", "-f", str(path)],
                   check=True, capture_output=True)
    return path


@dataclass
class SshServer:
    port: int
    user: str
    client_key: Path
    other_key: Path  # a valid key the server does not accept
    known_hosts: Path

    def options(self) -> list[str]:
        """tfedge deploy options that reach this server: its port, the key, and its host key as known."""
        return ["--port", str(self.port), "--identity", str(self.client_key),
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]

    def target(self, directory: Path) -> str:
        return f"{self.user}@127.0.0.1:{directory}"


def start_sshd(root: Path, wrapper: tuple = ()):
    """-> (SshServer, process). `wrapper` runs sshd inside another command (e.g. a mount namespace).
    Fails the test, with the reason, when sshd cannot run here (tools/setup installs it)."""
    if not Path(SSHD).is_file() or shutil.which("ssh") is None:
        pytest.fail("OpenSSH is not installed: run tools/setup (as root it apt-get installs openssh-server "
                    "openssh-client)")
    if not Path("/run/sshd").is_dir():
        try:
            Path("/run/sshd").mkdir(mode=0o755)  # sshd's privilege separation directory
        except OSError as err:
            pytest.fail(f"sshd needs /run/sshd and it cannot be created here: {err}")
    port = free_port()
    host_key = keygen(root / "host_key")
    client_key, other_key = keygen(root / "client_key"), keygen(root / "other_key")
    (root / "authorized_keys").write_text(Path(f"{client_key}.pub").read_text())
    (root / "known_hosts").write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text()}")
    (root / "sshd_config").write_text(SSHD_CONFIG.format(port=port, root=root))
    with open(root / "sshd.log", "wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen([*wrapper, SSHD, "-D", "-e", "-f", str(root / "sshd_config")],
                                   stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd could not start: {(root / 'sshd.log').read_text()[-300:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail("sshd did not listen within 10 s")
    server = SshServer(port, getpass.getuser(), client_key, other_key, root / "known_hosts")
    return server, process


def stop_sshd(process) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def device_venv(device_only_venv) -> Path:
    """The device's venv: the session's device-only venv (conftest) and its tfedge-run."""
    return device_only_venv.path


@pytest.fixture(scope="module")
def ssh_server(tmp_path_factory):
    server, process = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    stop_sshd(process)


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """(server, dir): an sshd whose sessions see `dir` as a 32 KiB tmpfs (its own mount namespace)."""
    small = tmp_path_factory.mktemp("small_disk")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=32k tmpfs {small}"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:  # CI runs as root: the no-space test is not optional there
        pytest.fail(f"cannot mount a small tmpfs in a mount namespace here: {probe.stderr.strip()[:200]}")
    wrapper = ("unshare", "-m", "sh", "-c", 'mount -t tmpfs -o size=32k tmpfs "$0" && exec "$@"', str(small))
    server, process = start_sshd(tmp_path_factory.mktemp("sshd_small"), wrapper)
    yield server, small
    stop_sshd(process)


def make_bundle(model: Path, out_dir: Path, labels: list[str] | None = None) -> Path:
    from tfedge.ship.bundle import BundleRequest, bundle

    out_dir.mkdir(parents=True, exist_ok=True)
    labels_path = None
    if labels is not None:
        labels_path = out_dir / "labels.txt"
        labels_path.write_text("".join(f"{label}\n" for label in labels))
    output = out_dir / "digits.tfedge"
    bundle(BundleRequest(models=[model], output=output, labels=labels_path))
    return output


@pytest.fixture(scope="module")
def digits_bundle(digits_int8, tmp_path_factory) -> Path:
    return make_bundle(digits_int8, tmp_path_factory.mktemp("bundle_a"))


@pytest.fixture(scope="module")
def relabelled_bundle(digits_int8, tmp_path_factory) -> Path:
    """The same model with other labels: only labels.txt, bundle.json and SHA256SUMS differ."""
    return make_bundle(digits_int8, tmp_path_factory.mktemp("bundle_b"), [f"digit {i}" for i in range(10)])


@pytest.fixture
def deploy(tfedge, ssh_server, device_venv):
    def run(bundle, device_dir, *args):
        return tfedge("deploy", bundle, ssh_server.target(device_dir), *ssh_server.options(),
                      "--venv", device_venv, *args, timeout=300)

    return run


def deployed_json(result) -> dict:
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def incoming_leftovers(device_dir: Path) -> list[str]:
    return [p.name for p in device_dir.iterdir() if p.name.endswith((".incoming", ".tmp")) or ".old-" in p.name]


# ---------------------------------------------------------------- deploy, re-deploy, replace

def test_deploy_copies_and_verifies_then_unchanged_redeploy_sends_nothing(deploy, digits_bundle, tmp_path):
    device_dir = tmp_path / "models"
    first = deployed_json(deploy(digits_bundle, device_dir, "--json"))
    deployed = device_dir / "digits.tfedge"
    assert first["verified"] is True and not first["transfer"]["unchanged"]
    assert first["transfer"]["sent_files"] == len((digits_bundle / "SHA256SUMS").read_text().splitlines()) + 1
    assert (deployed / "SHA256SUMS").read_bytes() == (digits_bundle / "SHA256SUMS").read_bytes()
    listed = {line.split(maxsplit=1)[1] for line in (digits_bundle / "SHA256SUMS").read_text().splitlines()}
    on_device = {p.relative_to(deployed).as_posix() for p in deployed.rglob("*") if p.is_file()}
    assert on_device == listed | {"SHA256SUMS"}, (on_device, listed)  # every file, nothing else

    again = deployed_json(deploy(digits_bundle, device_dir, "--json"))
    assert again["transfer"] == {"unchanged": True, "sent_files": 0, "sent_bytes": 0,
                                 "reused_files": first["transfer"]["sent_files"] - 1, "swap": None}
    assert again["verified"] is True
    assert incoming_leftovers(device_dir) == []


def test_changed_bundle_sends_only_changed_files_and_swaps_atomically(deploy, digits_bundle, relabelled_bundle,
                                                                      tmp_path):
    device_dir = tmp_path / "models"
    deployed_json(deploy(digits_bundle, device_dir, "--json"))
    deployed = device_dir / "digits.tfedge"
    model_name = next(p.name for p in deployed.glob("*.tflite"))
    old_dir_inode = deployed.stat().st_ino

    changed = deployed_json(deploy(relabelled_bundle, device_dir, "--json"))
    transfer = changed["transfer"]
    assert not transfer["unchanged"] and transfer["swap"] in ("exchange", "rename-aside")
    assert transfer["sent_files"] == 3  # labels.txt, bundle.json (its labels and date), SHA256SUMS
    assert transfer["reused_files"] >= 4  # the model, its manifest, the sample input and expected output
    assert transfer["sent_bytes"] < (relabelled_bundle / model_name).stat().st_size
    assert deployed.stat().st_ino != old_dir_inode  # a new directory took the old one's place
    assert (deployed / "labels.txt").read_text().startswith("digit 0\n")
    assert (deployed / "SHA256SUMS").read_bytes() == (relabelled_bundle / "SHA256SUMS").read_bytes()
    assert incoming_leftovers(device_dir) == []


def test_damaged_copy_on_the_device_is_repaired(deploy, digits_bundle, tmp_path):
    device_dir = tmp_path / "models"
    deployed_json(deploy(digits_bundle, device_dir, "--json"))
    (device_dir / "digits.tfedge" / "labels.txt").write_text("tampered\n")
    repaired = deployed_json(deploy(digits_bundle, device_dir, "--json"))
    assert not repaired["transfer"]["unchanged"] and repaired["transfer"]["sent_files"] == 2  # + SHA256SUMS
    assert (device_dir / "digits.tfedge" / "labels.txt").read_bytes() == (digits_bundle / "labels.txt").read_bytes()


def test_a_transfer_that_does_not_match_its_checksums_leaves_the_old_bundle(ssh_server, digits_bundle,
                                                                            relabelled_bundle, tmp_path):
    """The device checks the assembled copy before the swap: a damaged transfer never replaces a good bundle."""
    from tfedge_device.bundle import verify_checksums

    from tfedge.errors import BadInput
    from tfedge.ship.deploy import Connection, parse_target, sync_bundle

    device_dir = tmp_path / "models"
    device_dir.mkdir()
    shutil.copytree(digits_bundle, device_dir / "digits.tfedge")
    damaged = tmp_path / "damaged.tfedge"
    shutil.copytree(relabelled_bundle, damaged)
    (damaged / "labels.txt").write_text("not what SHA256SUMS says\n")
    target = parse_target(ssh_server.target(device_dir))
    options = [f"UserKnownHostsFile={ssh_server.known_hosts}", "StrictHostKeyChecking=yes"]
    connection = Connection(target, ssh_server.port, ssh_server.client_key, options)
    try:
        remote = connection.script("probe", str(device_dir / "digits.tfedge"), "~/.tfedge/venv")
        with pytest.raises(BadInput, match="transfer damaged"):
            sync_bundle(connection, damaged, str(device_dir / "digits.tfedge"), remote)
    finally:
        connection.close()
    listed = (digits_bundle / "SHA256SUMS").read_text().splitlines()
    assert verify_checksums(device_dir / "digits.tfedge") == len(listed)  # every file of the old bundle intact
    assert (device_dir / "digits.tfedge" / "SHA256SUMS").read_bytes() == (digits_bundle / "SHA256SUMS").read_bytes()
    assert incoming_leftovers(device_dir) == []


def test_verify_failure_on_the_device_fails_the_deploy(deploy, digits_bundle, tmp_path):
    """A bundle whose stored expected output is wrong (checksums re-made) fails `tfedge-run verify` there."""
    from tfedge_device.bundle import CHECKSUMS, SAMPLE_EXPECTED, checksum_lines, load_arrays, save_arrays
    from tfedge_device.fileio import sha256_file

    wrong = tmp_path / "local" / "digits.tfedge"
    shutil.copytree(digits_bundle, wrong)
    expected = load_arrays(wrong / SAMPLE_EXPECTED)
    save_arrays(wrong / SAMPLE_EXPECTED, [np.roll(expected[0], 1, axis=-1)], "output")
    sums = {p.relative_to(wrong).as_posix(): sha256_file(p) for p in wrong.rglob("*")
            if p.is_file() and p.name != CHECKSUMS}
    (wrong / CHECKSUMS).write_text(checksum_lines(sums))
    result = deploy(wrong, tmp_path / "models")
    assert_clean_error(result, 4, "verify failed", "127.0.0.1")
    assert "differs from the expected" in result.stderr


# ---------------------------------------------------------------- failures: one line, exit 3 (or 2)

def test_refused_key_exits_3(tfedge, ssh_server, digits_bundle, tmp_path):
    options = ssh_server.options()
    options[options.index("--identity") + 1] = str(ssh_server.other_key)
    result = tfedge("deploy", digits_bundle, ssh_server.target(tmp_path), *options)
    assert_clean_error(result, 3, "authentication refused")


def test_unreachable_port_exits_3(tfedge, ssh_server, digits_bundle, tmp_path):
    options = ssh_server.options()
    options[options.index("--port") + 1] = str(free_port())
    result = tfedge("deploy", digits_bundle, ssh_server.target(tmp_path), *options)
    assert_clean_error(result, 3, "refused the connection", "--port")


def test_unknown_host_key_exits_3(tfedge, ssh_server, digits_bundle, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    options = ssh_server.options()
    options[options.index(f"UserKnownHostsFile={ssh_server.known_hosts}")] = f"UserKnownHostsFile={empty}"
    result = tfedge("deploy", digits_bundle, ssh_server.target(tmp_path), *options)
    assert_clean_error(result, 3, "host key")


def test_no_python_on_the_device_exits_3(deploy, digits_bundle, tmp_path):
    result = deploy(digits_bundle, tmp_path / "models", "--python", "/nonexistent/python3")
    assert_clean_error(result, 3, "no /nonexistent/python3 on 127.0.0.1")


def test_no_tfedge_run_on_the_device_exits_3(tfedge, ssh_server, digits_bundle, tmp_path):
    """No venv there and none on the session's PATH (the test server sets PATH=/usr/bin:/bin; a login script
    that adds a directory holding tfedge-run makes this test fail, visibly)."""
    result = tfedge("deploy", digits_bundle, ssh_server.target(tmp_path / "models"), *ssh_server.options(),
                    "--venv", tmp_path / "no-venv")
    assert_clean_error(result, 3, "tfedge-run is not installed", "--install")
    assert (tmp_path / "models" / "digits.tfedge" / "SHA256SUMS").is_file()  # the copy itself happened


def test_no_space_on_the_device_exits_3(tfedge, small_disk, digits_bundle):
    server, small = small_disk
    result = tfedge("deploy", digits_bundle, server.target(small / "models"), *server.options(), "--no-verify")
    assert_clean_error(result, 3, "no space on 127.0.0.1", "MB free")


def test_damaged_local_bundle_exits_2_before_connecting(tfedge, digits_bundle, tmp_path):
    damaged = tmp_path / "digits.tfedge"
    shutil.copytree(digits_bundle, damaged)
    (damaged / "labels.txt").write_text("x\n")
    result = tfedge("deploy", damaged, "nobody@203.0.113.1:models")
    assert_clean_error(result, 2, "checksum of labels.txt")


@pytest.mark.parametrize("target", ["no-directory-here", "user@:models", "@host:models", "host:"])
def test_bad_target_exits_2(tfedge, digits_bundle, target):
    assert_clean_error(tfedge("deploy", digits_bundle, target), 2, "user@host:DIR")


# ---------------------------------------------------------------- --install and --run

@pytest.mark.slow  # ~25 s idle, over 60 s on the shared machine (venv + pip)
def test_install_builds_the_device_package_into_a_venv_there(tfedge, ssh_server, digits_bundle, tmp_path):
    """--install: a wheel of device/ built here, a venv made there by the system python3, pip from its
    index/cache for LiteRT, numpy and pillow; a second deploy finds it installed and skips pip."""
    venv = tmp_path / "device-venv"
    args = ("deploy", digits_bundle, ssh_server.target(tmp_path / "models"), *ssh_server.options(),
            "--venv", venv, "--install", "--json")
    result = deployed_json(tfedge(*args, timeout=600))
    assert result["install"]["installed"] and result["install"]["tfedge_run"] == str(venv / "bin" / "tfedge-run")
    assert result["verified"] is True  # by the tfedge-run just installed
    check = subprocess.run([venv / "bin" / "python", "-c", ("import tfedge_device.bundle, ai_edge_litert, sys; "
                            "sys.exit('tensorflow' in sys.modules)")], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stderr
    # the same wheel again (the copy the device received: device/ may change under a shared checkout)
    uploaded = next(Path(f"{venv}-wheels").glob("tfedge_device-*.whl"))
    again = deployed_json(tfedge(*args, "--wheel", uploaded, timeout=600))
    assert not again["install"]["installed"] and again["transfer"]["unchanged"]


def results_block(stdout: str) -> list[str]:
    """The lines of pycoral's -------RESULTS-------- block (the top-k classes), without the timings."""
    lines = stdout.splitlines()
    start = lines.index("-------RESULTS--------") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start:end]


def test_run_streams_one_inference_from_the_device(deploy, device_only_venv, digits_bundle, digits_dir, tmp_path):
    image = digits_dir / "images" / "digit_3.png"
    result = deploy(digits_bundle, tmp_path / "models", "--run", image)
    assert result.returncode == 0, result
    here = device_only_venv.run("tfedge-run", "classify", digits_bundle, "--input", image)
    assert here.returncode == 0, here.stderr
    expected = results_block(here.stdout)
    assert expected and expected[0].startswith("3: "), here.stdout  # the image shows a 3
    assert results_block(result.stdout)[:len(expected)] == expected  # the device's classes and scores
    assert "verify" in result.stdout  # tfedge-run verify's report came first
    assert not list((tmp_path / "models").glob(".tfedge-input-*"))  # the uploaded input is removed


def test_install_with_a_wheel_that_is_not_one_exits_2(tfedge, digits_bundle, tmp_path):
    fake = tmp_path / "tfedge_device.txt"
    fake.write_text("not a wheel")
    result = tfedge("deploy", digits_bundle, "nobody@203.0.113.1:models", "--install", "--wheel", fake)
    assert_clean_error(result, 2, "--wheel is not a .whl file")
