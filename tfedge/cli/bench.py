"""`tfedge bench`: latency (and approximate memory) of models on the device runtime, benchmark_model style.

The measurement is tfedge_device.bench.benchmark (shared with `tfedge-run bench`); this module only
loops over models and thread counts and prints the table.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import BadInput
from .options import emit, json_option, quiet_option, runs_option, warmup_option


def parse_threads(text: str | None) -> list[int | None]:
    """'1,2,4' -> [1, 2, 4]; None -> [None] (the runtime's default)."""
    if text is None:
        return [None]
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadInput(f"--threads {text!r} is not a list of integers like 1,2,4") from None
    if not counts or any(count < 1 or count > 256 for count in counts):
        raise BadInput(f"--threads {text!r}: thread counts must be 1..256")
    return list(dict.fromkeys(counts))


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--threads", "threads_text", help="Interpreter thread counts to measure, e.g. 1,2,4 (default: runtime's).")
@runs_option("Timed runs.")
@warmup_option("Warm-up runs (not timed).")
@json_option
@quiet_option
def bench(models, threads_text, runs, warmup, as_json, quiet):
    """Latency of MODELS on the device runtime, benchmark_model style.

    Per model and thread count: Init, first inference, warm-up, then timed runs (count, first, min, max,
    avg, std, p50/p90/p99) and approximate peak memory.
    """
    from tfedge_device.bench import benchmark

    threads = parse_threads(threads_text)
    results = []
    for path in models:
        for count in threads:  # a path, so benchmark() loads it and times Init too
            result = benchmark(path, runs=runs, warmup=warmup, threads=count)
            results.append({"model": str(path), "threads": count, **result})
    emit({"runs": runs, "warmup": warmup, "results": results}, as_json, print_results)


def print_results(result: dict) -> None:
    """benchmark_model's block per model and thread count, then one side-by-side table in milliseconds."""
    from tfedge_device.bench import format_result

    from .options import table

    for item in result["results"]:
        click.echo(f"{item['model']} (threads {item['threads'] or 'default'})")
        click.echo(format_result(item))
    if len(result["results"]) > 1:
        rows = [(Path(i["model"]).name, i["threads"] or "default",
                 *(f"{i['inference'][key] / 1e3:.3f}" for key in ("p50", "p90", "p99", "avg")),
                 f"{i['peak_rss_mb']:.0f}") for i in result["results"]]
        click.echo("\n" + table(rows, ("model", "threads", "p50 ms", "p90 ms", "p99 ms", "avg ms", "peak MB")))
