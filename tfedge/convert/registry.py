"""Every quantization mode by name: the plain ones (modes.BUILTIN_MODES) and those in their own modules,
imported only when named (their search and check code is heavy)."""

from __future__ import annotations

from ..errors import BadInput
from .modes import BUILTIN_MODES, Mode


def _selective() -> Mode:
    from .selective import MODE

    return MODE


def _auto() -> Mode:
    from .auto import MODE

    return MODE


def _edgetpu() -> Mode:
    from ..edgetpu.mode import MODE

    return MODE


# name -> loader of the Mode defined in its own module
PLUGINS = {"selective-int8": _selective, "auto": _auto, "edgetpu": _edgetpu}
# their aliases, known without importing them (`tfedge convert --help` stays instant)
PLUGIN_ALIASES = {"selective": "selective-int8", "mixed-int8": "selective-int8", "coral": "edgetpu",
                  "edge-tpu": "edgetpu"}


def mode_names() -> list[str]:
    return sorted({mode.name for mode in BUILTIN_MODES} | set(PLUGINS))


def get_mode(name: str) -> Mode:
    key = name.strip().lower()
    for mode in BUILTIN_MODES:
        if key == mode.name or key in mode.aliases:
            return mode
    key = PLUGIN_ALIASES.get(key, key)
    if key in PLUGINS:
        return PLUGINS[key]()
    aliases = sorted([a for m in BUILTIN_MODES for a in m.aliases] + list(PLUGIN_ALIASES))
    raise BadInput(f"unknown quantization mode {name!r}",
                   hint=f"choose one of {', '.join(mode_names())} (aliases: {', '.join(aliases)})")
