"""The device half of `tfedge deploy`, sent over SSH and run as `python3 -c SOURCE COMMAND ARGS...`.

Standard library only and Python 3.7+ syntax: it runs before the device package is installed, and must be
able to say that the device's Python is too old. Prints one JSON object on stdout; on failure
{"error": ..., "kind": ...} and exit 3 (kinds: space, os, venv, pip, input).

Commands:
  probe TARGET VENV           what is there: Python, free space, the bundle's verified checksums, tfedge-run
  receive TARGET REUSE_JSON   stdin: a tar of the changed files; unchanged ones are hard-linked from the old
                              bundle; the new directory is checked, then swapped in atomically
  put PATH                    stdin -> PATH (written to a temp file, then renamed)
  install VENV WHEEL WHEEL_ID create the venv if needed and pip-install the wheel (pip's output on stderr)
"""

import ctypes
import errno
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

CHECKSUMS = "SHA256SUMS"
WHEEL_ID = ".tfedge-device-wheel-id"
STALE_SECONDS = 3600  # incoming dirs older than this are leftovers of an interrupted deploy
RENAME_EXCHANGE, AT_FDCWD = 2, -100  # linux/fs.h, fcntl.h


class Failure(Exception):
    def __init__(self, message, kind="os"):
        Exception.__init__(self, message)
        self.kind = kind


def full(path):
    return os.path.abspath(os.path.expanduser(path))


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(root):
    sums = {}
    try:
        with open(os.path.join(root, CHECKSUMS), encoding="utf-8") as fh:
            for line in fh:
                digest, _, name = line.rstrip("\n").partition("  ")
                if name:
                    sums[name] = digest
    except (OSError, UnicodeDecodeError):
        return None
    return sums


def verified(root):
    """{path: sha256} of the files whose content matches SHA256SUMS, and whether all of them do."""
    sums = read_sums(root)
    if sums is None:
        return {}, False
    good = {}
    for name, digest in sums.items():
        path = os.path.join(root, name)
        if os.path.isfile(path) and sha256(path) == digest:
            good[name] = digest
    return good, len(good) == len(sums)


def free_bytes(path):
    while not os.path.exists(path):
        path = os.path.dirname(path) or "."
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def find_tfedge_run(venv):
    candidates = [os.path.join(venv, "bin", "tfedge-run"), shutil.which("tfedge-run"),
                  os.path.expanduser("~/.local/bin/tfedge-run")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def probe(target, venv):
    target, venv = full(target), full(venv)
    good, intact = verified(target) if os.path.isdir(target) else ({}, False)
    sums_path = os.path.join(target, CHECKSUMS)
    wheel_id_path = os.path.join(venv, WHEEL_ID)
    wheel_id = None
    if os.path.isfile(wheel_id_path):
        with open(wheel_id_path) as fh:
            wheel_id = fh.read().strip()
    return {"python": platform.python_version(), "python_ok": sys.version_info >= (3, 10),
            "machine": platform.machine(), "target": target, "free_bytes": free_bytes(os.path.dirname(target)),
            "verified": good, "intact": intact,
            "checksums_sha256": sha256(sums_path) if os.path.isfile(sums_path) else None,
            "tfedge_run": find_tfedge_run(venv), "venv": venv, "wheel_id": wheel_id}


def safe_name(name):
    parts = name.split("/")
    return bool(name) and not name.startswith("/") and ".." not in parts and "\\" not in name


def extract(stream, root):
    """Regular files and directories only, with names inside root (no links, devices or '..')."""
    count = 0
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            if not safe_name(member.name) or not (member.isfile() or member.isdir()):
                raise Failure(f"refused tar member {member.name!r}", "input")
            path = os.path.join(root, member.name)
            if member.isdir():
                os.makedirs(path, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(path), exist_ok=True)
            source = archive.extractfile(member)
            with open(path, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            count += 1
    return count


def exchange(new, target):
    """Swap two directories in one step (Linux renameat2 RENAME_EXCHANGE); False when not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(AT_FDCWD, new.encode(), AT_FDCWD, target.encode(), RENAME_EXCHANGE)
    return result == 0


def swap(new, target):
    """Put `new` at `target`: a device sees the old bundle or the new one, never a mix."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return "rename"
    if exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old bundle
        return "exchange"
    old = f"{target}.old-{os.getpid()}"
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)
    return "rename-aside"


def remove_stale(parent, name):
    now = time.time()
    for entry in os.listdir(parent):
        if entry.startswith("." + name + ".") and entry.endswith(".incoming"):
            path = os.path.join(parent, entry)
            if now - os.path.getmtime(path) > STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)


def receive(target, reuse_json):
    target, reuse = full(target), json.loads(reuse_json)
    parent, name = os.path.dirname(target), os.path.basename(target)
    os.makedirs(parent, exist_ok=True)
    remove_stale(parent, name)
    incoming = tempfile.mkdtemp(prefix="." + name + ".", suffix=".incoming", dir=parent)
    try:
        for relative in reuse:
            source, copy = os.path.join(target, relative), os.path.join(incoming, relative)
            os.makedirs(os.path.dirname(copy), exist_ok=True)
            try:
                os.link(source, copy)  # files are never modified in place, so sharing the inode is safe
            except OSError:
                shutil.copy2(source, copy)
        received = extract(sys.stdin.buffer, incoming)
        good, intact = verified(incoming)
        if not intact:
            raise Failure("the received bundle does not match its SHA256SUMS (transfer damaged)", "input")
        os.chmod(incoming, 0o755)
        how = swap(incoming, target)
    except BaseException:
        shutil.rmtree(incoming, ignore_errors=True)
        raise
    return {"target": target, "received": received, "reused": len(reuse), "files": len(good), "swap": how}


def put(path):
    path = full(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return {"path": path, "size_bytes": os.path.getsize(path)}


def pip(venv, *args):
    command = [os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run(command + list(args), stdout=sys.stderr, stderr=subprocess.PIPE,
                          text=True, check=False)
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise Failure(f"pip could not install the device package: {lines[-1] if lines else 'failed'}", "pip")


def install(venv, wheel, wheel_id):
    venv, wheel = full(venv), full(wheel)
    if not os.path.isfile(os.path.join(venv, "bin", "python")):
        done = subprocess.run([sys.executable, "-m", "venv", venv], stdout=sys.stderr, stderr=subprocess.PIPE,
                              text=True, check=False)
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            raise Failure(f"cannot create a virtual environment at {venv}: {lines[-1] if lines else ''}", "venv")
    pip(venv, wheel)  # its dependencies (LiteRT, numpy, pillow) from pip's index or cache
    pip(venv, "--no-deps", "--force-reinstall", wheel)  # same version number, new code
    with open(os.path.join(venv, WHEEL_ID), "w") as fh:
        fh.write(wheel_id + "\n")
    return {"venv": venv, "tfedge_run": find_tfedge_run(venv), "wheel_id": wheel_id}


COMMANDS = {"probe": probe, "receive": receive, "put": put, "install": install}


def main(argv):
    try:
        result = COMMANDS[argv[0]](*argv[1:])
    except Failure as err:
        result = {"error": str(err), "kind": err.kind}
    except OSError as err:
        kind = "space" if err.errno in (errno.ENOSPC, errno.EDQUOT) else "os"
        where = f": {err.filename}" if err.filename else ""
        result = {"error": f"{err.strerror or err}{where}", "kind": kind}
    sys.stdout.write(json.dumps(result) + "\n")
    return 3 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
