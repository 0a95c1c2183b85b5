"""The host a benchmark ran on, as its JSON and the docs quote it: lscpu's model name (else what Python knows)."""

from __future__ import annotations

import platform
import subprocess


def cpu_model() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()
