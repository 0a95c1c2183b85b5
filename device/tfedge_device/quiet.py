"""Silence native output: runtimes and converters write to file descriptors 1 and 2 directly."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


@contextlib.contextmanager
def quiet_native(log: list | None = None):
    """Send file descriptors 1 and 2 to a temp file for the duration (native code writes there directly).

    When `log` is a list, the captured text is appended to it, for error messages. Yields a text stream
    on the real stderr, for progress bars that must stay visible meanwhile.
    """
    if os.environ.get("TFEDGE_DEBUG"):
        yield sys.stderr
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        terminal = os.fdopen(os.dup(saved[1]), "w", buffering=1)
        try:
            yield terminal
        finally:
            terminal.close()
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if log is not None:
                sink.seek(0)
                log.append(sink.read().decode("utf-8", "replace"))
