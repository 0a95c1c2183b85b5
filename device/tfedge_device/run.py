"""Run any tensor-in/tensor-out model: named inputs from files -> named outputs, through `Model`.

The library behind `tfedge-run run`, callable from the host too:

    model, manifest = open_model("m.tflite")
    steps = gather_steps(model, ["a.npy", "b.npy"], manifest=manifest)    # or steps_from_arrays(model, {...})
    result = run_steps(model, steps)                                        # result.outputs[t][name]

Inputs are matched to the model by name: an .npz key, a JSON object key or `NAME=FILE` is an input's
signature name or tensor name; one unnamed array is the input of a single-input model. A sequence of
steps (`--input a.npy --input b.npy`, or arrays split along a leading time axis with `stream=True`) runs
through ONE interpreter, so a stateful model (resource variables, streaming keyword spotters) carries its
state from step to step; `reset_state=True` starts every step from the initial state (Model.reset_state).

Values: float data are real values, quantized here with the input's scale/zero-point; data already in a
quantized input's own dtype (e.g. int8 for an int8 input) are taken as raw quantized values. Outputs are
dequantized to float32 (the raw quantized values are kept in `RunResult.raw`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput
from .manifest import find_manifest
from .model import Model, TensorSpec, dequantize
from .shapes import fits, flag_shapes
from .tensors import InputFile, read_input_file

log = logging.getLogger(__name__)


def open_model(path, threads: int | None = None, edgetpu: bool = False) -> tuple[Model, dict | None]:
    """(Model, its manifest or None), checked against each other, not yet allocated: `gather_steps` or
    `steps_from_arrays` allocate it at the shapes of the data."""
    manifest, origin = find_manifest(path)
    model = Model(path, threads=threads, edgetpu=edgetpu, allocate=False)
    model.check_manifest(manifest, origin or "the manifest")
    return model, manifest


def manifest_sample_rate(manifest: dict | None) -> int | None:
    """The audio sample rate a manifest states: `preprocess.audio.sample_rate`."""
    audio = ((manifest or {}).get("preprocess") or {}).get("audio") or {}
    rate = audio.get("sample_rate")
    return int(rate) if rate else None


def parse_item(model: Model, item: str) -> tuple[int | None, str]:
    """'NAME=FILE' -> (input position, FILE); 'FILE' -> (None, FILE). A path that exists is a file even
    when it holds '='."""
    if "=" in item and not Path(item).exists():
        name, _, path = item.partition("=")
        return model.input_position(name), path
    return None, item


def _named(model: Model, loaded: InputFile, position: int | None) -> dict[int, np.ndarray]:
    """The arrays of one file, keyed by input position."""
    if position is not None:
        if set(loaded.arrays) != {None}:
            raise BadInput(f"{loaded.path.name} holds named arrays ({', '.join(map(str, loaded.arrays))}); "
                           f"give it without NAME=")
        return {position: loaded.arrays[None]}
    if None in loaded.arrays:
        if len(model.inputs) != 1:
            raise BadInput(f"{loaded.path.name} holds one unnamed array but {model.path.name} has "
                           f"{len(model.inputs)} inputs ({', '.join(model.input_names())})",
                           hint="name it: --input NAME=FILE, or give an .npz keyed by input name")
        return {0: loaded.arrays[None]}
    named = {}
    for key, array in loaded.arrays.items():
        try:
            named[model.input_position(key)] = array
        except BadInput:
            raise BadInput(f"{loaded.path.name} has an array {key!r} that is no input of {model.path.name} "
                           f"(inputs: {', '.join(model.input_names())})") from None
    return named


def fit(value: np.ndarray, spec: TensorSpec, target, origin: str) -> np.ndarray:
    """`value` shaped for an input: as it is, with leading 1s added (a [N] wave for [1, N]) or removed, or
    with one trailing 1 added too (a [N] wave for [1, N, 1]), to match `target` (a settled shape) or else
    the input's shape signature. BadInput when nothing fits."""
    value = np.asarray(value)
    if value.dtype.kind not in "biuf":
        raise BadInput(f"{origin}: {value.dtype.name} values cannot feed input {spec.key!r} ({spec.dtype.name})")
    if spec.dtype.kind in "iu" and not spec.quantized and value.dtype.kind == "f":
        raise BadInput(f"{origin}: input {spec.key!r} takes integers ({spec.dtype.name}), got {value.dtype.name}")
    if spec.quantized and value.dtype == spec.dtype:  # raw quantized values: Model re-quantizes them exactly
        value = dequantize(value, spec)
    candidates = [value.shape]
    shape = value.shape
    while len(shape) < len(spec.shape):
        shape = (1, *shape)
        candidates.append(shape)
    shape = value.shape
    while shape and shape[0] == 1 and len(shape) > len(spec.shape):
        shape = shape[1:]
        candidates.append(shape)
    shape = (*value.shape, 1)  # a channel axis
    while len(shape) <= len(spec.shape):
        candidates.append(shape)
        shape = (1, *shape)
    for candidate in candidates:
        if (tuple(candidate) == tuple(target)) if target is not None else fits(candidate, spec.shape):
            return value.reshape(candidate)
    wanted = list(target) if target is not None else list(spec.shape)
    raise BadInput(f"{origin}: input {spec.key!r} takes shape {wanted} {spec.dtype.name}"
                   f"{' (-1: any size)' if target is None and spec.dynamic else ''}, got {list(value.shape)}")


def gather_steps(model: Model, items: list[str], stream: bool = False, manifest: dict | None = None,
                 input_shapes=()) -> list:
    """Read `items` (FILE or NAME=FILE) into steps, a list of [array per input], and allocate the model at
    the first step's shapes. Each input's arrays, in the order given, are its steps; with `stream` every
    array is first split along its leading (time) axis. input_shapes: `--input-shape` texts."""
    if not items:
        raise BadInput("no input given", hint="--input FILE (.npy, .npz, .json, .wav), or --input NAME=FILE")
    per_input: dict[int, list] = {position: [] for position in range(len(model.inputs))}
    origins: dict[int, list] = {position: [] for position in range(len(model.inputs))}
    rate = manifest_sample_rate(manifest)
    for item in items:
        position, path = parse_item(model, item)
        loaded = read_input_file(path)
        if loaded.sample_rate and rate and loaded.sample_rate != rate:
            raise BadInput(f"{loaded.path.name} is sampled at {loaded.sample_rate} Hz but {model.path.name} "
                           f"takes {rate} Hz (its manifest)", hint="resample the recording")
        for index, array in _named(model, loaded, position).items():
            if stream:
                if array.ndim == 0 or array.shape[0] == 0:
                    raise BadInput(f"{loaded.describe()}: --stream needs a leading time axis, got shape "
                                   f"{list(array.shape)}")
                per_input[index] += list(array)
                origins[index] += [f"{loaded.describe()} step {t}" for t in range(array.shape[0])]
            else:
                per_input[index].append(array)
                origins[index].append(loaded.describe())
    return steps_from_arrays(model, per_input, origins, input_shapes)


def steps_from_arrays(model: Model, per_input: dict, origins: dict | None = None, input_shapes=()) -> list:
    """{input position or name: [array per step]} -> steps [[array per input]], each array fitted to its
    input: to the `--input-shape` given for it, else the input's fixed shape, else (a dynamic input) to its
    shape signature. The model is allocated at the first step's shapes."""
    per_input = {key if isinstance(key, int) else model.input_position(key): list(arrays)
                 for key, arrays in per_input.items()}
    origins = origins or {p: [f"input {model.inputs[p].key!r}"] * len(a) for p, a in per_input.items()}
    missing = [model.inputs[p].key for p in range(len(model.inputs)) if not per_input.get(p)]
    if missing:
        raise BadInput(f"no data for input {', '.join(repr(m) for m in missing)} of {model.path.name} "
                       f"(inputs: {', '.join(model.input_names())})",
                       hint="--input NAME=FILE, or an .npz keyed by input name")
    counts = {model.inputs[p].key: len(per_input[p]) for p in range(len(model.inputs))}
    if len(set(counts.values())) != 1:
        raise BadInput("inputs have different numbers of steps: "
                       + ", ".join(f"{key} {count}" for key, count in counts.items()))
    given = flag_shapes(model, input_shapes)
    targets = [given.get(p, None if spec.dynamic else spec.shape) for p, spec in enumerate(model.inputs)]
    steps = [[fit(per_input[p][t], spec, targets[p], origins[p][t]) for p, spec in enumerate(model.inputs)]
             for t in range(len(per_input[0]))]
    model.allocate([tuple(value.shape) for value in steps[0]])
    return steps


@dataclass
class RunResult:
    """Named outputs of every step (the last repetition's), and the time of every inference."""

    names: list
    outputs: list = field(default_factory=list)  # per step: {name: float32 or integer array}
    raw: list = field(default_factory=list)  # per step: {name: raw quantized array}, quantized outputs only
    inference_ms: list = field(default_factory=list)

    def stacked(self) -> dict:
        """{name: array} for one step; several steps stacked along a new leading axis when their shapes
        agree, else one key per step (`name@t`). Raw quantized outputs as `name.raw`."""
        arrays = {}
        for suffix, per_step in (("", self.outputs), (".raw", self.raw)):
            for name in (per_step[0] if per_step else {}):
                values = [step[name] for step in per_step]
                if len(values) == 1:
                    arrays[name + suffix] = values[0]
                elif len({v.shape for v in values}) == 1:
                    arrays[name + suffix] = np.stack(values)
                else:
                    arrays.update({f"{name}{suffix}@{t}": v for t, v in enumerate(values)})
        return arrays


def output_names(model: Model) -> list[str]:
    """Each output's signature name, else its tensor name."""
    return [spec.key for spec in model.outputs]


def run_steps(model: Model, steps: list, reset_state: bool = False, count: int = 1) -> RunResult:
    """Run the steps in order through `model`'s one interpreter, `count` times (the state is reset before
    each repetition of a stateful model, so every repetition computes the same; the outputs are the last
    one's). `reset_state` also resets it before every step. Each inference is timed: setting (and
    quantizing) the inputs, invoke, reading (and dequantizing) the outputs."""
    names = output_names(model)
    result = RunResult(names)
    for repetition in range(count):
        if repetition and model.stateful:
            model.reset_state()
        result.outputs, result.raw = [], []
        for t, step in enumerate(steps):
            if t and reset_state:
                model.reset_state()
            shapes = [tuple(v.shape) for v in step]
            if shapes != model.input_shapes or not model.allocated:
                model.allocate(shapes)
            started = time.perf_counter()
            model.set_inputs(step)
            model.invoke()
            outputs = model.get_outputs()
            result.inference_ms.append((time.perf_counter() - started) * 1e3)
            result.outputs.append(dict(zip(names, outputs)))
            quantized = [(name, spec) for name, spec in zip(names, model.outputs) if spec.quantized]
            if quantized:
                raw = model.get_outputs(raw=True)
                result.raw.append({name: raw[model.outputs.index(spec)] for name, spec in quantized})
    return result
