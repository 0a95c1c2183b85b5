"""Atomic file output: write to a temp file in the target directory, then rename into place.

An interrupted or failed write leaves no partial file, and an existing output is replaced only by a
complete new one (os.replace is atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .errors import BadInput, EnvironmentMissing

_CHUNK = 1 << 20


def _check_target_dir(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInput(f"output directory does not exist: {parent}")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"output directory is not writable: {parent}")


def _os_error(err: OSError, path: Path) -> Exception:
    if err.errno == errno.ENOSPC:
        return EnvironmentMissing(f"no space left on device while writing {path}")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return BadInput(f"cannot write {path}: {err.strerror}")
    return err


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ""):
    """Yield a temp path beside `path`; on success rename it to `path`, on any failure remove it.

    Works for files and directories (a directory replaces an existing one only once it is complete).
    """
    path = Path(path)
    _check_target_dir(path)
    _sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent or ".")
    os.close(fd)
    os.unlink(tmp)
    tmp = Path(tmp)
    try:
        yield tmp
        if _INTERRUPTED.is_set():  # the KeyboardInterrupt itself was lost (see _INTERRUPTED)
            raise KeyboardInterrupt
        if tmp.is_dir() and path.is_dir():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise _os_error(err, path) from err
    except BaseException:
        _remove(tmp)
        raise


# Temp files of this target older than this were left by a process that could not clean up (SIGKILL, power
# loss): removed before the next write, so an unattended device does not fill up with them. No write of
# tfedge holds its temp file this long.
STALE_TEMP_S = 3600


def _sweep_stale(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    now = time.time()
    for leftover in parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        try:
            if now - leftover.lstat().st_mtime > STALE_TEMP_S:
                _remove(leftover)
        except OSError:  # another process removed it first, or it is not ours to remove
            continue


def _remove(tmp: Path) -> None:
    if tmp.is_dir() and not tmp.is_symlink():
        shutil.rmtree(tmp, ignore_errors=True)
    elif tmp.exists() or tmp.is_symlink():
        tmp.unlink()


# Set by the handlers `interrupt_on_signals` installs. Python can lose the KeyboardInterrupt a handler raises:
# raised inside a __del__ or a callback from native code it is printed as "Exception ignored" and dropped (seen
# here: a Ctrl-C 8 s into a MobileNetV2 int8 conversion that `tfedge convert` survived, writing its output, about
# once in ten runs). So the interrupt is also recorded, and atomic_path refuses to commit after it.
_INTERRUPTED = threading.Event()


def interrupt_on_signals() -> None:
    """Make Ctrl-C and SIGTERM (systemd stopping a service, `timeout`, `kill`) raise KeyboardInterrupt and
    record it, so atomic writes remove their temp files and the CLI ends with one "interrupted" line (exit 130)
    instead of dying mid-write or finishing after the user asked it to stop. Only from the main thread, and only
    where the signal still has its default action (a SIGINT ignored by `nohup ... &` stays ignored)."""
    import signal

    def interrupt(signum, frame):
        _INTERRUPTED.set()
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        return
    for signum, default in ((signal.SIGTERM, signal.SIG_DFL), (signal.SIGINT, signal.default_int_handler)):
        if signal.getsignal(signum) == default:
            signal.signal(signum, interrupt)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (fsync before the rename)."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()
