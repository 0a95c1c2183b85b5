"""The one call into the TFLite converter: its native chatter silenced, its errors one BadInput line."""

from __future__ import annotations

from tfedge_device.guard import trust

from ..errors import BadInput
from ..tf_loader import quiet_native, tensorflow
from .modes import ConvertContext


def run_converter(converter, model_name: str, context: ConvertContext | None = None) -> bytes:
    """converter.convert() with its native chatter silenced; its errors become one BadInput line."""
    tensorflow()
    from tensorflow.lite.python.convert_phase import ConverterError

    captured: list[str] = []
    try:
        with quiet_native(captured) as terminal:
            if context is not None:
                context.terminal = terminal  # calibration progress stays visible
            model_bytes = converter.convert()
    except (ConverterError, ValueError, RuntimeError, TypeError) as err:
        reason = _first_error_line(str(err)) or _first_error_line("".join(captured)) or type(err).__name__
        raise BadInput(f"the TFLite converter cannot convert {model_name}: {reason}") from None
    trust(model_bytes)  # made by the converter in this process: loaded without the crash probe
    return model_bytes


def _first_error_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if "error:" in line.lower():
            return line[line.lower().index("error:") + 6:].strip()[:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else ""
