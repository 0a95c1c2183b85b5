"""`tfedge qat MODEL --data DATA -o OUT.tflite`."""

from __future__ import annotations

import click

from .options import emit
from .train_options import make_request, print_result, training_options


@click.command()
@click.argument("model")
@training_options(epochs=5, learning_rate=1e-5, quant_help="int8 only")
def qat(model, **kw):
    """Quantization-aware training: fine-tune MODEL with fake int8 quantization, then convert to int8.

    OUT.tflite is a real full-integer model (tfedge convert --quant int8, calibrated on DATA) with its manifest.
    """
    from ..optimize.qat import qat as run

    result = run(make_request(model, kw))
    emit(result, kw["as_json"], lambda r: print_result(r, [("quantized layers", r["qat"]["quantized_layers"])]))
