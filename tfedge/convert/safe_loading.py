"""Refuse Keras files that would run arbitrary Python code when loaded, unless the user says `--unsafe`.

A `Lambda` layer stores Python code (marshalled bytecode, or a function to import). Keras 3's
`safe_mode=True` refuses marshalled lambdas in `.keras` files, but tf_keras 2.x loads a Lambda layer from a
legacy `.h5` file even with `safe_mode=True` (measured here with tf_keras 2.21: the model loaded). So the
model's config is read as data first (the `.keras` zip's `config.json`, the `.h5` file's `model_config`
attribute, with h5py) and any Lambda layer is refused before a Keras loader sees the file.

A SavedModel is different: loading one runs its TensorFlow graph (ops, not Python), which can read and write
files through TF ops; tfedge loads SavedModels only from sources the user trusts (docs/reliability.md).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ..errors import BadInput

# Layers whose config carries code. Keras 3: keras/src/layers/core/lambda_layer.py; tf_keras: layers/core.
CODE_LAYERS = ("Lambda",)
UNSAFE_HINT = "pass --unsafe only if you trust where the file comes from (loading it runs its code)"


def keras_config(path: Path) -> dict | None:
    """The model config stored in a .keras (zip) or .h5 file, or None when it has none (weights only)."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                if "config.json" not in archive.namelist():
                    return None
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as h5:
            raw = h5.attrs.get("model_config")
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise BadInput(f"cannot read Keras model {path.name}: {' '.join(str(err).split())[:200]}") from None
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput(f"cannot read Keras model {path.name}: its model_config is not JSON") from None


def code_layers(config) -> list[str]:
    """Names of Lambda-like layers anywhere in a (nested) Keras config: models, wrappers, sub-layers."""
    found = []
    if isinstance(config, dict):
        if config.get("class_name") in CODE_LAYERS:
            inner = config.get("config") or {}
            found.append(str(inner.get("name") or config.get("name") or config["class_name"]))
        for value in config.values():
            found += code_layers(value)
    elif isinstance(config, list):
        for value in config:
            found += code_layers(value)
    return found


def refuse_code_layers(path: Path, unsafe: bool) -> None:
    """BadInput (exit 2) when the Keras file at `path` has a Lambda layer and `unsafe` is not set."""
    if unsafe:
        return
    names = code_layers(keras_config(path))
    if names:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise BadInput(f"{path.name} contains a Lambda layer ({shown}) that runs arbitrary Python code when "
                       f"loaded; refused", hint=UNSAFE_HINT)
