"""`tfedge distill --teacher T --student S --data DATA -o OUT`."""

from __future__ import annotations

import click

from .options import emit, sequence_length_option
from .train_options import make_request, percent, print_result, training_options


@click.command()
@click.option("--teacher", required=True, help="The trained model to learn from (.keras, .h5, SavedModel).")
@click.option("--student", required=True,
              help="The smaller model to train (.keras, .h5, SavedModel); for a text teacher (hf:DIR) and a "
                   ".txt of sentences: bert:LAYERS,HIDDEN[,HEADS], a keras-hub BERT built here.")
@click.option("--temperature", type=float, default=4.0, show_default=True, help="Softmax temperature.")
@click.option("--alpha", type=float, default=0.1, show_default=True,
              help="Weight of the hard-label loss (1 - alpha on the teacher's soft targets).")
@sequence_length_option("Text distillation: sequence length of teacher and student.", default=64)
@training_options(epochs=60, learning_rate=2e-3, patience=8)  # from scratch: noisier val_loss
def distill(teacher, student, temperature, alpha, seq_len, **kw):
    """Train STUDENT to imitate TEACHER on DATA (soft targets at a temperature + hard labels)."""
    from ..optimize.distill import DistillOptions
    from ..optimize.distill import distill as run

    result = run(make_request(student, kw), DistillOptions(teacher, temperature, alpha, {"seq_len": seq_len}))
    emit(result, kw["as_json"], lambda r: print_result(r, [
        ("teacher params", f"{r['distill']['teacher_params']:,}"),
        ("student params", f"{r['distill']['student_params']:,} ({r['distill']['param_ratio']:.2f}x)"),
    ] + ([("teacher/student", f"{percent(r['accuracy_before'])} / {percent(r['accuracy_after'])}")]
         if r["accuracy_after"] is not None else [("cosine to teacher", f"{r['cosine_to_teacher']:.4f}")])))
