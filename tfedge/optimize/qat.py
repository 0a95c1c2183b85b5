"""Quantization-aware training (tfmot `quantize_model`): fine-tune with fake int8 quantization in the graph.

The QAT model carries the int8 ranges it learned; converting it with `--quant int8` (tfedge.convert) gives
a real full-integer model whose accuracy is close to the QAT model's.

The scheme is tfmot's default 8-bit one with one change: Dense kernels are fake-quantized per output channel,
like Conv kernels and like the converter's own post-training int8 (tfmot's default quantizes them per tensor,
which cost the digits CNN test images before any training). The TF 2.21 converter refuses a per-channel
fake-quantized Dense kernel ("'tfl.transpose' op has mismatched quantized axes": FULLY_CONNECTED stores the
kernel transposed), so the graph traced for export (`exporting()`) carries the float kernel and the converter
quantizes it per channel itself, with the same symmetric max-abs/127 scale the QAT graph simulated: the int8
weights are those the model was trained with.
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np

from .common import OptimizeRequest, Technique, optimize


def wrap(model, request: OptimizeRequest, data, steps_per_epoch: int):
    import tensorflow_model_optimization as tfmot  # lazily: sets TF_USE_LEGACY_KERAS=1

    from ..errors import BadInput

    keras = tfmot.quantization.keras
    try:  # quantize_model() is annotate + apply with the default scheme; apply takes ours
        quantized = keras.quantize_apply(keras.quantize_annotate_model(model), _channel_dense_scheme())
    except (ValueError, RuntimeError) as err:  # layers without a QuantizeConfig
        raise BadInput(f"tfmot cannot quantize this model: {' '.join(str(err).split())[:300]}",
                       hint="quantize_model supports standard Conv/Dense/BatchNorm/pooling layers") from None
    calibrate_ranges(quantized, data.x)
    return quantized, [], 0


_EXPORT = threading.local()


@contextlib.contextmanager
def exporting():
    """Trace Dense kernels unquantized (the converter quantizes them per channel, see the module docstring)."""
    _EXPORT.on = True
    try:
        yield
    finally:
        _EXPORT.on = False


def _channel_dense_scheme():
    """tfmot's Default8BitQuantizeScheme with per-channel Dense kernels (built lazily: tfmot is heavy)."""
    from tensorflow_model_optimization.python.core.quantization.keras import quantizers
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_registry as registry,
    )
    from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
        default_8bit_quantize_scheme as scheme,
    )

    from .keras_bridge import tf_keras_module

    class ChannelKernelQuantizer(quantizers.LastValueQuantizer):
        def __call__(self, inputs, training, weights, **kwargs):
            if getattr(_EXPORT, "on", False):
                return inputs
            return super().__call__(inputs, training, weights, **kwargs)

    dense = tf_keras_module().layers.Dense

    class Registry(registry.Default8BitQuantizeRegistry):
        def get_quantize_config(self, layer):
            config = super().get_quantize_config(layer)
            if isinstance(layer, dense) and hasattr(config, "weight_quantizer"):
                config.weight_quantizer = ChannelKernelQuantizer(num_bits=8, per_axis=True, symmetric=True,
                                                                 narrow_range=True)
            return config

    class Scheme(scheme.Default8BitQuantizeScheme):
        def get_quantize_registry(self):
            return Registry()

    return Scheme()


def calibrate_ranges(model, x, count: int = 512) -> None:
    """Start the activation ranges at the data's min/max instead of tfmot's [-6, 6].

    tfmot's MovingAverageQuantizer begins at [-6, 6] and follows the batch ranges with an EMA of decay
    0.999 (quant_ops.MovingAvgQuantize): a fine-tune of a few hundred steps leaves the ranges mostly at
    their initial values, clipping larger activations (measured on digits: QAT int8 97.1 % vs PTQ int8
    98.7 %). One training-mode pass over `count` samples with the decay at 0 sets them to the observed
    ranges first (like PTQ calibration); Dropout is switched off for that pass so it does not widen them.
    """
    from tensorflow_model_optimization.python.core.quantization.keras import quant_ops

    moving_average = quant_ops.MovingAvgQuantize

    def without_ema(*args, **kwargs):
        kwargs["ema_decay"] = 0.0
        return moving_average(*args, **kwargs)

    dropouts = [(layer, layer.rate) for layer in _all_layers(model) if type(layer).__name__.endswith("Dropout")]
    quant_ops.MovingAvgQuantize = without_ema  # quantizers.py looks it up on the module at call time
    try:
        for layer, _ in dropouts:
            layer.rate = 0.0
        picks = np.linspace(0, len(x) - 1, min(count, len(x))).astype(int)
        model(x[picks], training=True)
    finally:
        quant_ops.MovingAvgQuantize = moving_average
        for layer, rate in dropouts:
            layer.rate = rate


def _all_layers(model) -> list:
    found = []
    for layer in model.layers:
        found.append(layer)
        inner = getattr(layer, "layer", None)  # QuantizeWrapper
        if inner is not None:
            found.append(inner)
    return found


def strip(model):
    return model  # the fake-quant wrappers ARE the result: the converter reads their ranges


def inspect(model) -> dict:
    quantized = [layer.name for layer in model.layers if type(layer).__name__ == "QuantizeWrapperV2"]
    return {"quantized_layers": len(quantized)}


TECHNIQUE = Technique("qat", wrap, strip, inspect, h5_ok=False, float_variant=False, exporting=exporting)


def qat(request: OptimizeRequest) -> dict:
    from ..convert.registry import get_mode
    from ..errors import BadInput

    if get_mode(request.quant).name not in ("int8",):
        raise BadInput(f"qat produces int8 models; --quant {request.quant} is not supported")
    return optimize(request, TECHNIQUE)
