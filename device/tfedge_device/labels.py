"""Read label files in the formats pycoral accepts: `0 cat`, `0: cat`, or one label a line."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import BadInput

_NUMBERED = re.compile(r"^\s*(\d+)\s*[:\s]\s*(.+?)\s*$")


def parse_labels(lines: list[str]) -> list[str]:
    """Labels indexed by class id. Numbered files may leave gaps (filled with the id as text)."""
    lines = [line.rstrip("\r\n") for line in lines if line.strip()]
    numbered = [_NUMBERED.match(line) for line in lines]
    if lines and all(numbered):
        by_id = {int(m.group(1)): m.group(2) for m in numbered}
        return [by_id.get(i, str(i)) for i in range(max(by_id) + 1)]
    return [line.strip() for line in lines]


def read_labels(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"labels file not found: {path}") from None
    except (UnicodeDecodeError, IsADirectoryError):
        raise BadInput(f"labels file is not a UTF-8 text file: {path}") from None
    labels = parse_labels(text.splitlines())
    if not labels:
        raise BadInput(f"labels file is empty: {path}")
    return labels


def check_labels(labels: list[str], num_classes: int, source: str = "labels") -> None:
    """Refuse a label list that cannot name every class the model outputs."""
    if len(labels) < num_classes:
        raise BadInput(f"{source} has {len(labels)} labels but the model outputs {num_classes} classes")
