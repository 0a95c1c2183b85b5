"""Magnitude pruning (tfmot `prune_low_magnitude`): zero the smallest weights while fine-tuning.

Schedules (tfmot.sparsity.keras): `polynomial` ramps sparsity from 0 to the target over the first two
thirds of training (tfmot's recommended PolynomialDecay), `constant` prunes to the target from step 0.
`UpdatePruningStep` advances the masks each step; `strip_pruning` removes the wrappers before export.
`exclude` keeps layers dense (tfmot's pattern of pruning chosen layers through `clone_model`): a pattern
is a layer class (`DepthwiseConv2D`) or a glob over layer names (`Conv1`, `block_1_*`).
"""

from __future__ import annotations

import fnmatch

from .common import PRUNING_NOTE, OptimizeRequest, Technique, optimize

SCHEDULES = ("polynomial", "constant")


def _schedule(name: str, sparsity: float, end_step: int, frequency: int):
    import tensorflow_model_optimization as tfmot  # lazily: sets TF_USE_LEGACY_KERAS=1

    if name == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0, frequency=frequency)
    return tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0,
                                                end_step=end_step, frequency=frequency)


def wrap(model, request: OptimizeRequest, data, steps_per_epoch: int):
    import tensorflow_model_optimization as tfmot

    sparsity, schedule = request.options["sparsity"], request.options.get("schedule", "polynomial")
    ramp_epochs = max(1, (2 * request.fit.epochs) // 3) if schedule == "polynomial" else 0
    end_step = max(1, ramp_epochs * steps_per_epoch)
    frequency = max(1, min(100, steps_per_epoch // 2))
    pruning_schedule = _schedule(schedule, sparsity, end_step, frequency)
    kept = excluded_layers(model, request.options.get("exclude") or ())
    if kept:
        from .keras_bridge import tf_keras_module

        def wrap_layer(layer):
            if layer.name in kept or not layer.weights:
                return layer
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=pruning_schedule)

        pruned = tf_keras_module().models.clone_model(model, clone_function=wrap_layer)
    else:
        pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=pruning_schedule)
    # early stopping only once the target sparsity is reached (earlier "best" weights are less sparse)
    return pruned, [tfmot.sparsity.keras.UpdatePruningStep()], ramp_epochs + 1


def excluded_layers(model, patterns) -> set:
    """Names of the layers with weights that `patterns` keep dense; BadInput for a pattern that matches none."""
    from ..errors import BadInput

    weighted = [layer for layer in model.layers if layer.weights]
    kept = set()
    for pattern in patterns:
        matched = {layer.name for layer in weighted
                   if type(layer).__name__ == pattern or fnmatch.fnmatchcase(layer.name, pattern)}
        if not matched:
            raise BadInput(f"--exclude {pattern!r} matches no layer with weights (give a layer class such as "
                           f"DepthwiseConv2D, or a glob over layer names)")
        kept |= matched
    return kept


def strip(model):
    import tensorflow_model_optimization as tfmot

    return tfmot.sparsity.keras.strip_pruning(model)


def inspect(model) -> dict:
    from .measure import weight_sparsity

    return weight_sparsity(model)


TECHNIQUE = Technique("prune", wrap, strip, inspect, note=PRUNING_NOTE)


def prune(request: OptimizeRequest) -> dict:
    """Prune request.model to request.options["sparsity"] (0 < s < 1) with the named schedule."""
    from ..errors import BadInput

    sparsity = request.options.get("sparsity")
    if sparsity is None or not 0.0 < sparsity < 1.0:
        raise BadInput(f"--sparsity must be between 0 and 1 (exclusive), got {sparsity}")
    if request.options.get("schedule", "polynomial") not in SCHEDULES:
        raise BadInput(f"unknown --schedule {request.options['schedule']!r}: {', '.join(SCHEDULES)}")
    return optimize(request, TECHNIQUE)
