"""Quantization-aware training (tfmot `quantize_model`): fine-tune with fake int8 quantization in the graph.

The QAT model carries the int8 ranges it learned; converting it with `--quant int8` (tfedge.convert) gives
a real full-integer model whose accuracy is close to the QAT model's. tfmot's default 8-bit scheme matches
TFLite's int8 spec (per-channel weights, per-tensor activations).
"""

from __future__ import annotations

from .common import OptimizeRequest, Technique, optimize


def wrap(model, request: OptimizeRequest, steps_per_epoch: int):
    import tensorflow_model_optimization as tfmot  # lazily: sets TF_USE_LEGACY_KERAS=1

    from ..errors import BadInput

    try:
        return tfmot.quantization.keras.quantize_model(model), [], 0
    except (ValueError, RuntimeError) as err:  # layers without a QuantizeConfig
        raise BadInput(f"tfmot cannot quantize this model: {' '.join(str(err).split())[:300]}",
                       hint="quantize_model supports standard Conv/Dense/BatchNorm/pooling layers") from None


def strip(model):
    return model  # the fake-quant wrappers ARE the result: the converter reads their ranges


def inspect(model) -> dict:
    quantized = [layer.name for layer in model.layers if type(layer).__name__ == "QuantizeWrapperV2"]
    return {"quantized_layers": len(quantized)}


TECHNIQUE = Technique("qat", wrap, strip, inspect, h5_ok=False, float_variant=False)


def qat(request: OptimizeRequest) -> dict:
    from ..errors import BadInput
    from ..modes import get_mode

    if get_mode(request.quant).name not in ("int8",):
        raise BadInput(f"qat produces int8 models; --quant {request.quant} is not supported")
    return optimize(request, TECHNIQUE)
