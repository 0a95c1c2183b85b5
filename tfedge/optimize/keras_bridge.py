"""Keras 3 -> tf_keras (Keras 2): rebuild a model of standard layers with the same weights, so tfmot can use it.

tfmot 0.8.1 wraps only tf_keras layers. A Keras 3 Sequential or Functional model is rebuilt layer by layer
from its graph (same names, same connections), each layer's config translated (dtype policies -> names,
initializers -> class names, renamed arguments) and its weights copied; then both models run on the same
inputs and the largest absolute output difference is reported (and must stay under a tolerance).

Layers outside BRIDGEABLE (custom layers, nested models, raw `keras.ops` calls in a Functional graph,
layers whose Keras 3 options have no tf_keras equivalent) cannot be bridged: BadInput names them all.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput, EnvironmentMissing
from ..tf_loader import quiet_native, tensorflow

log = logging.getLogger(__name__)

# Keras 3 class name -> {Keras 3 argument: tf_keras argument}. Each was checked to keep the weight order.
BRIDGEABLE = {
    "InputLayer": {}, "Dense": {}, "Conv1D": {}, "Conv2D": {}, "Conv2DTranspose": {}, "DepthwiseConv2D": {},
    "SeparableConv2D": {}, "BatchNormalization": {}, "LayerNormalization": {}, "Activation": {}, "ReLU": {},
    "LeakyReLU": {"negative_slope": "alpha"}, "Softmax": {}, "MaxPooling1D": {}, "MaxPooling2D": {},
    "AveragePooling2D": {}, "GlobalAveragePooling1D": {}, "GlobalAveragePooling2D": {},
    "GlobalMaxPooling2D": {}, "Flatten": {}, "Reshape": {}, "Permute": {}, "Dropout": {}, "SpatialDropout2D": {},
    "ZeroPadding2D": {}, "UpSampling2D": {}, "Cropping2D": {}, "Add": {}, "Subtract": {}, "Multiply": {},
    "Average": {}, "Maximum": {}, "Concatenate": {}, "Rescaling": {}, "Embedding": {},
}
# Keras 3 config keys that never matter to tf_keras (weights are copied, not re-initialised).
IGNORED_KEYS = {"quantization_config", "lora_rank", "lora_alpha", "build_config", "compile_config"}
OUTPUT_TOLERANCE = 1e-4  # float32 kernels differ in summation order only


@dataclass
class Bridged:
    """A tf_keras model built from a Keras 3 one (or loaded as tf_keras), with how it was checked."""

    model: object  # tf_keras.Model
    origin: str  # "keras3-bridge" | "tf_keras"
    max_abs_diff: float | None = None  # bridged vs original on the check inputs
    layers: int = 0
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {"origin": self.origin, "max_abs_diff": self.max_abs_diff, "layers": self.layers,
                "notes": self.notes}


def tf_keras_module():
    tensorflow()
    try:
        import tf_keras
    except ImportError:
        raise EnvironmentMissing("tf-keras is not installed (tfmot needs it)", hint="pip install tf-keras") from None
    return tf_keras


def unbridgeable_layers(model) -> list[str]:
    """'name (Class: reason)' for every layer of a Keras 3 model that cannot be rebuilt as tf_keras."""
    tf_keras = tf_keras_module()
    problems = []
    for layer in _operations(model):
        name = type(layer).__name__
        if hasattr(layer, "layers") and name not in BRIDGEABLE:
            problems.append(f"{layer.name} ({name}: nested model)")
        elif name not in BRIDGEABLE:
            kind = "a keras.ops call" if not hasattr(layer, "get_weights") else "not a standard layer"
            problems.append(f"{layer.name} ({name}: {kind})")
        else:
            try:
                _tf_keras_config(layer, tf_keras)
            except ValueError as err:
                problems.append(f"{layer.name} ({name}: {err})")
    return problems


def _operations(model) -> list:
    operations = getattr(model, "_operations", None)
    return list(operations) if operations is not None else list(model.layers)


def _translate_value(key: str, value):
    """Keras 3 serialized sub-objects -> what tf_keras' from_config accepts."""
    if isinstance(value, dict) and value.get("class_name") == "DTypePolicy":
        return value["config"]["name"]
    if key.endswith("_initializer") and isinstance(value, dict):
        return value["class_name"]  # weights are copied: the initializer never runs
    if isinstance(value, dict) and "class_name" in value and "module" in value:
        return {"class_name": value["class_name"], "config": value.get("config", {})}
    return value


def _tf_keras_config(layer, tf_keras) -> tuple:
    """(tf_keras class, config) for one Keras 3 layer; ValueError says why it cannot be bridged."""
    name = type(layer).__name__
    target = getattr(tf_keras.layers, name, None)
    if target is None:
        raise ValueError("no tf_keras layer of that name")
    accepted = _accepted_arguments(target)
    renames = BRIDGEABLE[name]
    config = {}
    if name == "InputLayer":
        return target, {"name": layer.name, "batch_input_shape": tuple(layer.batch_shape),
                        "dtype": _translate_value("dtype", layer.get_config().get("dtype")) or "float32"}
    for key, value in layer.get_config().items():
        key = renames.get(key, key)
        if key in accepted:
            config[key] = _translate_value(key, value)
        elif key in IGNORED_KEYS or value in (None, False, 0, 0.0, {}, []):
            continue
        else:
            raise ValueError(f"option {key}={value!r} has no tf_keras equivalent")
    return target, config


def _accepted_arguments(target) -> set:
    """Constructor arguments of a tf_keras layer class, following **kwargs up its base classes."""
    accepted = {"name", "trainable", "dtype"}
    for cls in target.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters
        accepted |= {k for k, p in parameters.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()) or cls.__name__ == "Layer":
            break
    return accepted


def bridge(model, check_inputs: list[np.ndarray] | None = None):
    """Rebuild a Keras 3 Sequential/Functional `model` as tf_keras with the same weights -> Bridged.

    check_inputs: a batch per model input to compare the two models on (random values when None).
    """
    tf_keras = tf_keras_module()
    problems = unbridgeable_layers(model)
    if problems:
        raise BadInput(f"{len(problems)} layer(s) cannot be bridged to tf_keras for tfmot: "
                       + "; ".join(problems[:8]) + (" ..." if len(problems) > 8 else ""),
                       hint="tfmot needs standard layers; see docs/optimize.md for the bridgeable list")
    built: dict[int, object] = {}  # id(Keras 3 KerasTensor) -> tf_keras tensor
    rebuilt: dict[int, object] = {}  # id(Keras 3 layer) -> tf_keras layer (shared layers stay shared)

    for tensor in model.inputs:
        layer = tensor._keras_history.operation
        built[id(tensor)] = tf_keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype,
                                           name=layer.name)

    def rebuild(tensor):
        if id(tensor) in built:
            return built[id(tensor)]
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        args = tensorflow().nest.map_structure(_mapper(rebuild), node.arguments.args)
        kwargs = {k: v for k, v in node.arguments.kwargs.items() if v is not None}
        kwargs = tensorflow().nest.map_structure(_mapper(rebuild), kwargs)
        if id(layer) not in rebuilt:
            target, config = _tf_keras_config(layer, tf_keras)
            rebuilt[id(layer)] = target.from_config(config)
        outputs = rebuilt[id(layer)](*args, **kwargs)
        for original, new in zip(tensorflow().nest.flatten(node.output_tensors), tensorflow().nest.flatten(outputs)):
            built[id(original)] = new
        return built[id(tensor)]

    with quiet_native():
        outputs = [rebuild(t) for t in model.outputs]
        result = tf_keras.Model(inputs=[built[id(t)] for t in model.inputs],
                                outputs=outputs[0] if len(outputs) == 1 else outputs, name=model.name)
        originals = {id(layer): layer for layer in _operations(model)}
        for key, new_layer in rebuilt.items():
            old_weights = originals[key].get_weights()
            try:
                new_layer.set_weights(old_weights)
            except ValueError as err:
                raise BadInput(f"layer {new_layer.name}: weights do not fit the tf_keras layer ({err})") from None
    diff = max_abs_difference(model, result, check_inputs)
    if diff > OUTPUT_TOLERANCE:
        raise BadInput(f"the tf_keras rebuild of {model.name} differs from it by {diff:.3g} "
                       f"(> {OUTPUT_TOLERANCE}); it cannot be optimized safely")
    log.info("bridged %s to tf_keras: %d layers, max abs output difference %.3g", model.name, len(rebuilt), diff)
    return Bridged(result, "keras3-bridge", diff, len(rebuilt),
                   [f"rebuilt the Keras 3 model as tf_keras for tfmot (outputs match within {diff:.2g})"])


def _mapper(rebuild):
    def convert(value):
        return rebuild(value) if hasattr(value, "_keras_history") else value
    return convert


def max_abs_difference(original, rebuilt, check_inputs=None) -> float:
    """Largest absolute output difference of two models on the same batch (inference mode)."""
    if check_inputs is None:
        rng = np.random.default_rng(0)
        check_inputs = [rng.uniform(0, 1, (4, *tuple(t.shape)[1:])).astype(np.float32) for t in original.inputs]
    feed = check_inputs[0] if len(check_inputs) == 1 else list(check_inputs)
    with quiet_native():
        first = original(feed, training=False)
        second = rebuilt(feed, training=False)
    nest = tensorflow().nest
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(nest.flatten(first), nest.flatten(second)))


def load_trainable(path: str | Path, check_inputs=None) -> Bridged:
    """MODEL path -> a tf_keras model tfmot can wrap: `.keras` (Keras 3, bridged), `.h5` or a tf_keras
    SavedModel directory (loaded as is)."""
    path = Path(path)
    if not path.exists():
        raise BadInput(f"model not found: {path}")
    if path.suffix == ".keras":
        tensorflow()
        import keras

        try:
            with quiet_native():
                model = keras.saving.load_model(path, compile=False)
        except (ValueError, OSError, KeyError, TypeError) as err:
            raise BadInput(f"cannot load Keras model {path.name}: {' '.join(str(err).split())[:300]}") from None
        return bridge(model, check_inputs)
    if path.suffix in (".h5", ".hdf5") or path.is_dir():
        tf_keras = tf_keras_module()
        try:
            with quiet_native():
                model = tf_keras.models.load_model(path, compile=False)
        except (ValueError, OSError, KeyError, TypeError, ImportError) as err:
            raise BadInput(f"cannot load {path.name} as a tf_keras model: "
                           f"{' '.join(str(err).split())[:300]}") from None
        return Bridged(model, "tf_keras", None, len(model.layers))
    raise BadInput(f"unsupported model {path.name}: give a Keras 3 .keras file, a tf_keras .h5 or a tf_keras "
                   "SavedModel directory")
