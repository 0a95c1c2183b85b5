"""`tfedge prune MODEL --data DATA --sparsity 0.8 -o OUT`."""

from __future__ import annotations

import click

from .options import emit
from .train_options import make_request, print_result, training_options


@click.command()
@click.argument("model")
@click.option("--sparsity", type=float, default=0.8, show_default=True, help="Target fraction of zero weights.")
@click.option("--schedule", type=click.Choice(["polynomial", "constant"]), default="polynomial",
              show_default=True, help="Ramp sparsity up over 2/3 of training, or prune to the target at once.")
@click.option("--exclude", multiple=True, metavar="PATTERN",
              help="Keep these layers dense: a layer class (DepthwiseConv2D) or a glob over layer names. Repeatable.")
@training_options(epochs=10, learning_rate=5e-4)
def prune(model, sparsity, schedule, exclude, **kw):
    """Prune MODEL (.keras, .h5 or SavedModel) to a sparsity by weight magnitude, fine-tuning on DATA.

    Reports per-layer and global sparsity, accuracy before/after and the gzip size of the converted model:
    pruning pays off in compressed size unless the runtime exploits sparsity.
    """
    from ..optimize.prune import prune as run

    options = {"sparsity": sparsity, "schedule": schedule, "exclude": list(exclude)}
    result = run(make_request(model, kw, options))
    emit(result, kw["as_json"], lambda r: print_result(r, [
        ("global sparsity", f"{r['prune']['global'] * 100:.1f} %"),
        ("per layer", ", ".join(f"{k} {v * 100:.0f} %" for k, v in r["prune"]["layers"].items())),
    ]))
