"""Quantization modes as data: name -> how to configure the TFLite converter.

Optimum's names (`int8-dynamic`, `fp16`, `int8x16`, ...) are accepted as aliases. The modes that search or
check (`selective-int8`, `auto`, `edgetpu`) are defined in their own modules; `registry` looks names up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import BadInput
from ..tf_loader import tensorflow


@dataclass
class ConvertContext:
    """What a mode's configure step may use."""

    samples: object = None  # calibration.Samples when the mode needs calibration
    io_type: str | None = None
    terminal: object = None  # a stream on the real stderr for progress while native output is silenced
    show_progress: bool = True
    options: dict = field(default_factory=dict)  # mode-specific extras (e.g. float ops kept by auto)


@dataclass(frozen=True)
class Mode:
    name: str
    description: str
    configure: Callable  # (converter, ConvertContext) -> None
    aliases: tuple = ()
    needs_calibration: bool = False
    io_types: tuple = ("float32",)  # allowed I/O types; the first is the default
    quantized_io_ok: bool = False


def _representative_dataset(context: ConvertContext):
    from .calibration import progress

    samples = context.samples

    def generate():
        for arrays in progress(samples.arrays, len(samples), "calibrating", context.show_progress,
                               context.terminal):
            yield list(arrays)

    return generate


def _io_dtype(io_type: str):
    tf = tensorflow()
    return {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8, "int16": tf.int16}[io_type]


def configure_float32(converter, context: ConvertContext) -> None:
    pass


def configure_dynamic(converter, context: ConvertContext) -> None:
    tf = tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def configure_float16(converter, context: ConvertContext) -> None:
    tf = tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def configure_int8(converter, context: ConvertContext) -> None:
    """Full integer: every op int8, no float fallback; I/O int8 by default (no Quantize/Dequantize ops)."""
    tf = tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(context)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = _io_dtype(context.io_type)
    converter.inference_output_type = _io_dtype(context.io_type)


def configure_int16x8(converter, context: ConvertContext) -> None:
    """16-bit activations, 8-bit weights: near-float accuracy where int8 collapses; reference kernels."""
    tf = tensorflow()
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative_dataset(context)
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
    ]
    converter.inference_input_type = _io_dtype(context.io_type)
    converter.inference_output_type = _io_dtype(context.io_type)


# The plain modes: one converter configuration each. Modes that search or check (selective-int8, auto,
# edgetpu) live in their own modules; tfedge.convert.registry names them all.
BUILTIN_MODES = (
    Mode("float32", "no quantization", configure_float32, aliases=("fp32", "none")),
    Mode("dynamic", "int8 weights, float activations (dynamic-range)", configure_dynamic,
         aliases=("int8-dynamic", "dynamic-range", "drq")),
    Mode("float16", "float16 weights", configure_float16, aliases=("fp16",)),
    Mode("int8", "full integer int8 with calibration", configure_int8, aliases=("full-int8", "int8-full"),
         needs_calibration=True, io_types=("int8", "uint8", "float32")),
    Mode("int16x8", "int16 activations, int8 weights, with calibration", configure_int16x8,
         aliases=("int8x16", "a16w8"), needs_calibration=True, io_types=("int16", "float32")),
)
BUILTIN = {mode.name: mode for mode in BUILTIN_MODES}


def resolve_io_type(mode: Mode, io_type: str | None) -> str:
    if io_type is None:
        return mode.io_types[0]
    if io_type not in mode.io_types:
        raise BadInput(f"--io-type {io_type} is not valid with --quant {mode.name}",
                       hint=f"choose one of {', '.join(mode.io_types)}")
    return io_type
