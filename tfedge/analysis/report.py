"""Write a `tfedge compare` result as Markdown, a self-contained HTML page (plots embedded as base64 PNG,
made with matplotlib) and JSON — each file atomically. A missing figure is shown as "n/a" with its reason
as a footnote, never as a blank.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from tfedge_device.fileio import write_text

from ..errors import BadInput
from .compare import COLUMNS

SUFFIXES = (".md", ".html", ".json")


def report_paths(out: str | Path) -> dict[str, Path]:
    """OUT (a path prefix; a .md/.html/.json suffix is dropped) -> the three report files."""
    out = Path(out)
    if out.suffix in SUFFIXES:
        out = out.with_suffix("")
    if out.name in ("", ".", ".."):
        raise BadInput(f"--report {out} must name a file prefix, e.g. reports/digits")
    if not out.parent.is_dir():
        raise BadInput(f"report directory does not exist: {out.parent}")
    return {suffix[1:]: out.with_name(out.name + suffix) for suffix in SUFFIXES}


def format_value(key: str, kind: str, row: dict, metric: str | None) -> str:
    value = row.get(key)
    if value is None:
        return "n/a"
    if kind == "count":
        return f"{value / 1e6:.2f} M" if value >= 1e6 else f"{value / 1e3:.1f} k" if value >= 1e4 else str(value)
    if kind == "metric":
        return f"{value:.5f}" if row["details"].get("metric") == "cosine" else f"{value * 100:.2f} %"
    if kind == "drop":
        if row["details"].get("metric") == "cosine":
            return f"{value:.5f}"
        return f"{value * 100:.2f} pt"
    return kind.format(value)


METRIC_HEADINGS = {"top-1": "Top-1", "cosine": "Cosine", "mAP@0.5": "mAP@0.5"}


def table_cells(result: dict) -> tuple[list[str], list[list[str]], list[str]]:
    """(headings, rows of cells, footnotes) shared by the Markdown and HTML writers."""
    metric = result.get("metric")
    headings = ["Variant", "Mode"] + [
        f"{METRIC_HEADINGS.get(metric, heading)}"
        if key == "accuracy" else heading for key, heading, _ in COLUMNS]
    notes: list[str] = []
    rows = []
    for row in result["rows"]:
        cells = [row["name"], row["mode"]]
        for key, _, kind in COLUMNS:
            text = format_value(key, kind, row, metric)
            if row.get(key) is None:
                reason = row["why"].get(key, "not measured")
                if reason not in notes:
                    notes.append(reason)
                text += f" [{notes.index(reason) + 1}]"
            cells.append(text)
        rows.append(cells)
    return headings, rows, notes


def to_markdown(result: dict) -> str:
    headings, rows, notes = table_cells(result)
    lines = ["| " + " | ".join(headings) + " |", "|" + "|".join(["---"] * 2 + ["---:"] * (len(headings) - 2)) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |" for cells in rows]
    lines.append("")
    lines += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    lines.append("")
    lines += context_lines(result)
    return "\n".join(lines) + "\n"


def context_lines(result: dict) -> list[str]:
    runtime = result.get("runtime") or {}
    bench = result.get("bench") or {}
    baselines = result.get("baselines") or {}
    measured = (f"Measured with {runtime.get('runtime')} {runtime.get('version')} on {runtime.get('machine')} "
                f"(Python {runtime.get('python')}); latency: median of {bench.get('runs')} runs after "
                f"{bench.get('warmup')} warm-up, threads {bench.get('threads') or 'default'}.")
    against = (f"Data: {result.get('data') or 'none'}. Speed-up against {baselines.get('speed_baseline') or 'n/a'}; "
               f"drop against {baselines.get('accuracy_baseline') or 'n/a'}.")
    return [measured, against]


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plots(result: dict) -> dict[str, str]:
    """{'latency_vs_accuracy': base64 PNG, 'size': base64 PNG}; a plot with no data says so in its title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    rows = result["rows"]
    images = {}
    figure, axes = plt.subplots(figsize=(6, 4))
    points = [r for r in rows if r.get("latency_p50_ms") is not None and r.get("accuracy") is not None]
    percent = result.get("metric") in ("top-1", "mAP@0.5")
    for row in points:  # a legend, not annotations: close points would overlap their labels
        axes.scatter(row["latency_p50_ms"], row["accuracy"] * (100 if percent else 1), s=60, label=row["name"])
    metric = result.get("metric") or "accuracy"
    axes.set_xlabel("p50 latency (ms)")
    axes.set_ylabel(f"{metric} (%)" if percent else metric)
    axes.xaxis.set_major_locator(MaxNLocator(5))
    axes.set_title("Latency vs " + metric if points else "Latency vs accuracy: no variant has both figures")
    if points:
        axes.legend(fontsize=8, loc="best")
    axes.grid(alpha=0.3)
    images["latency_vs_accuracy"] = _png(figure)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(6, 0.5 + 0.45 * max(len(rows), 1)))
    sized = [r for r in rows if r.get("size_mb") is not None]
    axes.barh([r["name"] for r in sized], [r["size_mb"] for r in sized], color="#4c78a8")
    for index, row in enumerate(sized):
        axes.text(row["size_mb"], index, f" {row['size_mb']:.3f} MB", va="center", fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("size (MB)")
    axes.set_title("Model size")
    images["size"] = _png(figure)
    plt.close(figure)
    return images


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
        "td:nth-child(n+3){text-align:right}th{background:#f3f3f3}.notes{color:#555;font-size:90%}")


def to_html(result: dict, images: dict[str, str]) -> str:
    headings, rows, notes = table_cells(result)
    escape = html.escape
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><title>tfedge compare</title>',
        f"<style>{_CSS}</style></head><body>", "<h1>tfedge compare</h1>",
        "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headings) + "</tr>",
        *["<tr>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>" for cells in rows],
        "</table>", '<ol class="notes">', *[f"<li>{escape(n)}</li>" for n in notes], "</ol>",
        *[f"<p>{escape(line)}</p>" for line in context_lines(result)],
    ]
    for name, title in (("latency_vs_accuracy", "Latency vs accuracy"), ("size", "Size")):
        parts.append(f'<h2>{title}</h2><img alt="{title}" src="data:image/png;base64,{images[name]}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_reports(result: dict, out: str | Path) -> dict[str, str]:
    """Write OUT.md, OUT.html and OUT.json (each atomically). Returns the paths by format."""
    paths = report_paths(out)
    write_text(paths["json"], json.dumps(result, indent=2, default=str) + "\n")
    write_text(paths["md"], to_markdown(result))
    write_text(paths["html"], to_html(result, plots(result)))
    return {kind: str(path) for kind, path in paths.items()}
