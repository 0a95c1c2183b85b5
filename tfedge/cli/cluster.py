"""`tfedge cluster MODEL --data DATA --clusters 16 -o OUT`."""

from __future__ import annotations

import click

from .options import emit
from .train_options import make_request, print_result, training_options


@click.command()
@click.argument("model")
@click.option("--clusters", type=int, default=16, show_default=True, help="Distinct weight values per layer.")
@training_options(epochs=5, learning_rate=1e-4)
def cluster(model, clusters, **kw):
    """Cluster MODEL's weights (parameter sharing), fine-tuning on DATA; reports unique weights per layer."""
    from ..optimize.cluster import cluster as run

    result = run(make_request(model, kw, {"clusters": clusters}))
    emit(result, kw["as_json"], lambda r: print_result(r, [
        ("unique weights", ", ".join(f"{k} {v}" for k, v in r["cluster"]["unique_weights"].items())),
    ]))
