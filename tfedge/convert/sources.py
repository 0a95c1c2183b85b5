"""SOURCE -> one SourceModel: SavedModel dirs, Keras 3 `.keras`, tf_keras `.h5`, `keras-app:NAME`, `hf:DIR`.

Whatever the source, a SourceModel exposes fixed-shape named inputs, named outputs (`output_names`: a SavedModel
signature's output keys, sorted; a Keras model's output names, or its dict outputs' keys, in the model's
order), a TensorFlow concrete function (what the converter converts: the .tflite's SignatureDef carries the
same names, so tfedge.convert.pairing pairs tensors by name) and `predict` (what verification compares
against). Kinds are a registry, not if-chains.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput, EnvironmentMissing
from ..tf_loader import quiet_native, tensorflow
from .pairing import tf_name
from .safe_loading import UNSAFE_HINT, refuse_code_layers


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple  # fixed: no None
    dtype: str  # numpy dtype name


@dataclass
class LoadOptions:
    """What the user said about the source (CLI flags), shared by every loader."""

    signature: str | None = None
    input_shapes: list[tuple] = field(default_factory=list)  # in input order; -1/None = keep
    weights: str | None = None  # keras-app: a weights file or "none"
    unsafe: bool = False  # allow Lambda layers / arbitrary code in Keras files
    task: str | None = None  # hf: sentence-embedding | sequence-classification
    seq_len: int | None = None  # hf: sequence length
    num_labels: int | None = None  # hf sequence-classification head size
    rewrites: bool = True  # hf: export rewrites of attention and dense layers (tfedge.convert.rewrites)


class SourceModel:
    """A loaded source. Subclasses provide `_call(*tensors) -> tensor, list of tensors (named by
    `_output_hint()`) or dict {output name: tensor}`."""

    kind = "source"

    def __init__(self, location: str, sha256: str, raw_inputs: list[tuple], options: LoadOptions):
        self.location = location
        self.sha256 = sha256
        self.notes: list[str] = []
        self.preprocess: str | None = None  # default normalisation preset for image inputs
        self.labels: list[str] | None = None
        self.task = "generic"
        self.extra_files: dict[str, Path] = {}  # e.g. tokenizer files copied beside the model
        self.extra_manifest: dict = {}
        self.inputs = [self._fix(name, shape, dtype, i, options) for i, (name, shape, dtype) in enumerate(raw_inputs)]
        self._concrete = None
        self._output_names: list[str] | None = None

    def _fix(self, name, shape, dtype, position, options) -> InputSpec:
        shape = [None if d is None or d < 0 else int(d) for d in shape]
        wanted = options.input_shapes[position] if position < len(options.input_shapes) else None
        if wanted is not None:
            if len(wanted) != len(shape) or any(d is not None and w != d for d, w in zip(shape, wanted)):
                raise BadInput(f"--input-shape {list(wanted)} does not fit input {name!r} of shape {shape}")
            fixed = list(wanted)
        else:
            fixed = list(shape)
            if fixed and fixed[0] is None:
                fixed[0] = 1
            if None in fixed:
                shown = ", ".join("None" if d is None else str(d) for d in shape)
                raise BadInput(
                    f"input {name!r} has dynamic dimensions [{shown}]",
                    hint="fix them with --input-shape, e.g. --input-shape " + ",".join(
                        "1" if d is None else str(d) for d in shape
                    ),
                )
        if fixed != shape:
            shown = ", ".join("None" if d is None else str(d) for d in shape)
            self.notes.append(f"fixed input {name!r} shape [{shown}] -> {list(fixed)}")
        return InputSpec(name, tuple(fixed), np.dtype(dtype).name)

    # -- TensorFlow side -------------------------------------------------------------------------
    def _call(self, *tensors):
        raise NotImplementedError

    def _trackable(self):
        """The object owning the variables (passed to the converter with the concrete function)."""
        return

    def _output_hint(self) -> list[str] | None:
        """Names for outputs `_call` returns as a tensor or a list (None: output_0, output_1, ...)."""
        return None

    def _named(self, result) -> tuple:
        """`_call`'s result -> its tensors in output order, recording their names in `_output_names`."""
        tf = tensorflow()
        if isinstance(result, dict):
            names, tensors = [str(key) for key in result], [result[key] for key in result]
        else:
            tensors = tf.nest.flatten(result)
            hint = self._output_hint()
            names = list(hint) if hint and len(hint) == len(tensors) else [f"output_{i}" for i in range(len(tensors))]
        if len(set(names)) != len(names) or any(tf.nest.is_nested(t) for t in tensors):
            names, tensors = [f"output_{i}" for i in range(len(tf.nest.flatten(tensors)))], tf.nest.flatten(tensors)
        self._output_names = names
        return tuple(tensors)

    @property
    def output_names(self) -> list[str]:
        """The source's output names, in the order `predict` returns them."""
        if self._output_names is None:
            self.concrete_function()
        if self._output_names is None:  # a source that traces its own function (hf:)
            self._output_names = [f"output_{i}" for i in range(len(self.concrete_function().outputs))]
        return self._output_names

    def concrete_function(self):
        if self._concrete is None:
            self._concrete = self.trace()
        return self._concrete

    def trace(self):
        """A new concrete function of `_call` on the fixed input shapes."""
        tf = tensorflow()
        signature = [tf.TensorSpec(spec.shape, tf.as_dtype(spec.dtype), name=tf_name(spec.name))
                     for spec in self.inputs]

        def serve(*tensors):
            return self._named(self._call(*tensors))

        with quiet_native():
            return tf.function(serve, input_signature=signature).get_concrete_function()

    def image_spec(self, preset: str):
        """How an image file becomes this model's input under `preset` (calibration, verification, manifest)."""
        from tfedge_device.preprocess import ImageSpec

        return ImageSpec.from_shape(self.inputs[0].shape, preset)

    def export_function(self):
        """The concrete function the converter converts: `concrete_function` unless a source rewrites it
        for export (verification always compares against `concrete_function`, the model as loaded)."""
        return self.concrete_function()

    def converter(self):
        """A TFLiteConverter on the frozen export function (variables folded into constants: the
        converter's calibrator cannot read Keras 3 resource variables otherwise), its outputs returned as
        {output name: tensor}: freezing flattens them to a list, and the .tflite's SignatureDef would call
        them output_0, output_1, ... in an order of its own."""
        tf = tensorflow()
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        export = self.export_function()
        names = self.output_names
        with quiet_native():
            frozen = convert_variables_to_constants_v2(export)

            def named(*tensors):
                return dict(zip(names, tf.nest.flatten(frozen(*tensors))))

            specs = list(export.structured_input_signature[0])
            function = tf.function(named, input_signature=specs).get_concrete_function()
        return tf.lite.TFLiteConverter.from_concrete_functions([function], self._trackable() or tf.Module())

    def predict(self, values: list[np.ndarray]) -> list[np.ndarray]:
        """Run the source model in TensorFlow on one sample (inputs with batch dim, in input order) -> numpy
        outputs in `output_names` order."""
        tf = tensorflow()
        tensors = [tf.constant(np.asarray(v, dtype=spec.dtype)) for v, spec in zip(values, self.inputs)]
        return [np.asarray(out) for out in self.concrete_function()(*tensors)]

    def describe(self) -> dict:
        return {"kind": self.kind, "location": self.location, "sha256": self.sha256,
                "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in self.inputs],
                "outputs": list(self.output_names)}

    @property
    def is_image(self) -> bool:
        return len(self.inputs) == 1 and len(self.inputs[0].shape) == 4 and self.inputs[0].shape[3] in (1, 3) \
            and self.inputs[0].dtype.startswith("float")


# -- Keras models (Keras 3 and tf_keras share the calling convention) ------------------------------
class KerasSource(SourceModel):
    kind = "keras"

    def __init__(self, model, location, sha256, options):
        self.model = model
        raw = [(t.name.split(":")[0], tuple(t.shape), _dtype_name(t.dtype)) for t in _model_inputs(model)]
        super().__init__(location, sha256, raw, options)
        self.task = "image-classification" if self.is_image and _looks_like_classifier(model) else "generic"

    def _call(self, *tensors):
        return self.model(tensors[0] if len(tensors) == 1 else list(tensors), training=False)

    def _trackable(self):
        return self.model

    def _output_hint(self) -> list[str] | None:
        return list(getattr(self.model, "output_names", None) or []) or None


def _model_inputs(model):
    inputs = model.inputs
    if not inputs:
        raise BadInput("the Keras model has no defined inputs (a subclassed model that was never built)")
    return inputs


def _dtype_name(dtype) -> str:
    return getattr(dtype, "name", None) or str(dtype)


def _looks_like_classifier(model) -> bool:
    shape = tuple(model.outputs[0].shape) if len(model.outputs) == 1 else ()
    return len(shape) == 2 and (shape[1] or 0) > 1


def load_keras3(path: Path, options: LoadOptions) -> SourceModel:
    refuse_code_layers(path, options.unsafe)  # read as data before Keras sees the file
    tensorflow()
    import keras

    try:
        with quiet_native():
            model = keras.saving.load_model(path, compile=False, safe_mode=not options.unsafe)
    except ValueError as err:
        text = " ".join(str(err).split())
        if "safe_mode" in text or "Lambda" in text:
            raise BadInput(
                f"{path.name} contains a Lambda layer (arbitrary Python code); refused in safe mode",
                hint=UNSAFE_HINT,
            ) from None
        raise BadInput(f"cannot load Keras model {path.name}: {text[:300]}") from None
    except (OSError, KeyError, TypeError, EOFError) as err:
        raise BadInput(f"cannot load Keras model {path.name}: {' '.join(str(err).split())[:300]}") from None
    return KerasSource(model, str(path), file_sha256(path), options)


def load_tf_keras(path: Path, options: LoadOptions) -> SourceModel:
    refuse_code_layers(path, options.unsafe)  # tf_keras loads .h5 Lambda layers even in safe_mode
    tensorflow()
    try:
        import tf_keras
    except ImportError:
        raise EnvironmentMissing("tf-keras is not installed", hint="pip install tf-keras") from None
    try:
        with quiet_native():
            model = tf_keras.models.load_model(path, compile=False, safe_mode=not options.unsafe)
    except ValueError as err:
        raise BadInput(f"cannot load tf_keras model {path.name}: {' '.join(str(err).split())[:300]}") from None
    except (OSError, KeyError, TypeError, EOFError) as err:
        raise BadInput(f"cannot load tf_keras model {path.name}: {' '.join(str(err).split())[:300]}") from None
    return KerasSource(model, str(path), file_sha256(path), options)


# -- SavedModel --------------------------------------------------------------------------------------
class SavedModelSource(SourceModel):
    kind = "savedmodel"

    def __init__(self, loaded, signature_name, location, sha256, options):
        self.loaded = loaded
        self.signature_name = signature_name
        self.signature = loaded.signatures[signature_name]
        specs = self.signature.structured_input_signature[1]
        self.input_keys = sorted(specs)
        raw = [(key, tuple(specs[key].shape), specs[key].dtype.name) for key in self.input_keys]
        super().__init__(location, sha256, raw, options)
        self._output_names = sorted(self.signature.structured_outputs)  # _call's dict order, known untraced
        from tfedge_device.detect import TASK

        from .detection import detection_attributes

        self.detection = detection_attributes(self)  # an SSD with the TFLite_Detection_PostProcess composite
        if self.detection is not None:
            self.task = TASK
            self.extra_manifest["detection"] = self.detection
        elif self.is_image:
            outputs = self.signature.structured_outputs
            if len(outputs) == 1 and len(next(iter(outputs.values())).shape) == 2:
                self.task = "image-classification"

    def _call(self, *tensors):
        outputs = self.signature(**dict(zip(self.input_keys, tensors)))
        return {key: outputs[key] for key in sorted(outputs)}

    def _trackable(self):
        return self.loaded

    def converter(self):
        if self.detection is None:
            return super().converter()
        from .detection import saved_model_converter

        return saved_model_converter(self)

    def adjust_converter(self, converter, mode) -> None:
        if self.detection is not None:
            from .detection import keep_float_outputs

            keep_float_outputs(converter, mode)

    def finalize_model(self, model_bytes: bytes) -> bytes:
        if self.detection is None:
            return model_bytes
        from .detection import finalize_detector

        return finalize_detector(self, model_bytes)


def load_saved_model(path: Path, options: LoadOptions) -> SourceModel:
    """Loading a SavedModel runs its graph's restore ops: only load SavedModels you trust
    (docs/reliability.md); there is no safe mode for them."""
    if not any((path / name).exists() for name in ("saved_model.pb", "saved_model.pbtxt")):
        raise BadInput(f"{path} is a directory but not a SavedModel (no saved_model.pb)")
    tf = tensorflow()
    try:
        with quiet_native():
            loaded = tf.saved_model.load(str(path))
    except (OSError, ValueError, tf.errors.OpError) as err:
        raise BadInput(f"cannot load SavedModel {path}: {' '.join(str(err).split())[:300]}") from None
    names = sorted(loaded.signatures.keys())
    if not names:
        raise BadInput(f"SavedModel {path} has no serving signatures")
    wanted = options.signature or ("serving_default" if "serving_default" in names else None)
    if wanted is None and len(names) == 1:
        wanted = names[0]
    if wanted not in names:
        raise BadInput(
            f"SavedModel {path} has no signature {wanted!r}" if wanted else
            f"SavedModel {path} has several signatures",
            hint=f"choose one with --signature: {', '.join(names)}",
        )
    return SavedModelSource(loaded, wanted, str(path), tree_sha256(path), options)


# -- keras.applications ------------------------------------------------------------------------------
# Default preprocessing per architecture family: what keras.applications.<family>.preprocess_input does.
KERAS_APP_PREPROCESS = (
    ("MobileNetV3", "raw"),  # includes its own Rescaling layer
    ("MobileNet", "mobilenet"),
    ("EfficientNet", "raw"),
    ("ConvNeXt", "raw"),
    ("RegNet", "raw"),
    ("ResNetRS", "raw"),
    ("ResNet", "caffe"),  # ResNet50/101/152 (v1); V2 overridden below
    ("VGG", "caffe"),
    ("DenseNet", "torch"),
    ("Inception", "mobilenet"),
    ("Xception", "mobilenet"),
    ("NASNet", "mobilenet"),
)
KERAS_APP_PREPROCESS_EXACT = {"ResNet50V2": "mobilenet", "ResNet101V2": "mobilenet", "ResNet152V2": "mobilenet"}


def keras_app_preprocess(name: str) -> str:
    if name in KERAS_APP_PREPROCESS_EXACT:
        return KERAS_APP_PREPROCESS_EXACT[name]
    return next((preset for prefix, preset in KERAS_APP_PREPROCESS if name.startswith(prefix)), "raw")


def load_keras_app(spec: str, options: LoadOptions) -> SourceModel:
    name = spec.split(":", 1)[1]
    tensorflow()
    import keras

    architectures = sorted(n for n in dir(keras.applications) if n[:1].isupper())
    if name not in architectures:
        close = difflib.get_close_matches(name, architectures, n=3)
        raise BadInput(f"unknown keras.applications architecture {name!r}",
                       hint=f"did you mean {', '.join(close)}?" if close else "see keras.applications")
    if options.weights is None:
        raise BadInput(
            f"keras-app:{name} needs --weights PATH (a weights file) or --weights none (random weights)",
            hint="pretrained weights cannot be downloaded by tfedge; download them elsewhere and pass the file",
        )
    weights = None if options.weights.lower() == "none" else options.weights
    if weights is not None and not Path(weights).is_file():
        raise BadInput(f"weights file not found: {weights}")
    kwargs = {"weights": weights}
    if options.input_shapes and options.input_shapes[0] is not None:
        kwargs["input_shape"] = tuple(options.input_shapes[0][1:])
    try:
        with quiet_native():
            model = getattr(keras.applications, name)(**kwargs)
    except (ValueError, OSError) as err:
        raise BadInput(f"cannot build keras-app:{name}: {' '.join(str(err).split())[:300]}") from None
    source = KerasSource(model, spec, file_sha256(weights) if weights else "random-weights", options)
    source.kind = "keras-app"
    source.preprocess = keras_app_preprocess(name)
    if weights is None:
        source.notes.append(f"keras-app:{name} has random weights: speed and size are real, accuracy is not")
    return source


# -- hashing -----------------------------------------------------------------------------------------
def file_sha256(path) -> str:
    from tfedge_device.fileio import sha256_file

    return sha256_file(path)


def tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()


# -- registry ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceKind:
    name: str
    matches: Callable[[str], bool]
    loader: str  # "module:function", imported only when used
    description: str


SOURCE_KINDS = (
    SourceKind("keras-app", lambda s: s.startswith("keras-app:"), "tfedge.convert.sources:load_keras_app",
               "keras-app:NAME, a keras.applications architecture (--weights PATH|none)"),
    SourceKind("hf", lambda s: s.startswith("hf:"), "tfedge.convert.hf_source:load_hf_source",
               "hf:DIR, a Hugging Face directory: BERT, DistilBERT, ALBERT, RoBERTa, XLM-R (--task, --seq-len), "
               "ViT, DeiT"),
    SourceKind("savedmodel", lambda s: Path(s).is_dir(), "tfedge.convert.sources:load_saved_model",
               "a SavedModel directory (--signature)"),
    SourceKind("keras", lambda s: s.endswith(".keras"), "tfedge.convert.sources:load_keras3", "a Keras 3 .keras file"),
    SourceKind("h5", lambda s: s.endswith((".h5", ".hdf5")), "tfedge.convert.sources:load_tf_keras",
               "a tf_keras .h5 file"),
)


def load_source(spec: str, options: LoadOptions | None = None) -> SourceModel:
    """Load SOURCE (see SOURCE_KINDS) with the user's options."""
    options = options or LoadOptions()
    kind = next((k for k in SOURCE_KINDS if k.matches(spec)), None)
    if kind is None:
        if not Path(spec).exists():
            raise BadInput(f"source not found: {spec}")
        raise BadInput(f"unknown source type: {spec}",
                       hint="give a SavedModel directory, a .keras or .h5 file, keras-app:NAME or hf:DIR")
    is_path = kind.name in ("savedmodel", "keras", "h5")
    if is_path and not Path(spec).exists():
        raise BadInput(f"source not found: {spec}")
    module_name, function = kind.loader.split(":")
    loader = getattr(importlib.import_module(module_name), function)
    return loader(Path(spec) if is_path else spec, options)
