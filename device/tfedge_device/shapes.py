"""Input shapes for models with dynamic dimensions (-1 in an input's shape signature).

Where a shape comes from, first match wins (`resolve_input_shapes`):
  1. `--input-shape NAME:1,1280` (benchmark_model's `--input_layer_shape` meaning; NAME is the input's
     signature name or tensor name; a bare `1,1280` when the model has one input);
  2. the data given (`tfedge-run run`: the input file's shape, fitted by `run.fit`);
  3. the manifest beside the model: an input entry's `default_shape`, or its `shape` when that is fully
     static; a text model's `text.seq_len` (`tfedge convert hf:DIR` makes [1, seq_len] its default);
  4. a dynamic batch alone (a leading -1, every other dimension fixed) is 1, as `tfedge convert` fixes it.
Anything still dynamic is refused (exit 2) naming the input, its signature and the flag: the shape a
converter leaves in the file for a -1 is a placeholder (usually 1) that the runtime may not even prepare.
"""

from __future__ import annotations

import logging

from .errors import BadInput

log = logging.getLogger(__name__)


def parse_input_shape(text: str) -> tuple[str | None, tuple]:
    """'NAME:1,1280' -> ('NAME', (1, 1280)); '1,1280' -> (None, (1, 1280)). A tensor name may itself hold
    colons (serving_default_x:0): the dimensions are what follows the last one."""
    name, _, dims = text.rpartition(":")
    try:
        shape = tuple(int(d) for d in dims.replace(" ", "").split(","))
    except ValueError:
        raise BadInput(f"--input-shape {text!r} is not NAME:DIMS with DIMS like 1,1280") from None
    if not shape or any(d < 1 for d in shape):
        raise BadInput(f"--input-shape {text!r} must list positive dimensions")
    return name or None, shape


def fits(shape, signature) -> bool:
    """Does a concrete shape fit a shape signature (same rank, equal where the signature is fixed)?"""
    return len(shape) == len(signature) and all(s < 0 or s == d for d, s in zip(shape, signature))


def flag_example(spec) -> str:
    """`--input-shape NAME:1,N` for a spec, a leading dynamic batch shown as 1 and other -1s as N."""
    dims = ["1" if d < 0 and i == 0 else ("N" if d < 0 else str(d)) for i, d in enumerate(spec.shape)]
    return f"--input-shape {spec.key}:{','.join(dims)}"


def batch_default(spec) -> tuple | None:
    """A dynamic batch alone (leading -1, the rest fixed) -> the shape with batch 1; else None."""
    if spec.shape and spec.shape[0] < 0 and all(d >= 0 for d in spec.shape[1:]):
        return (1, *spec.shape[1:])
    return None


def manifest_defaults(model, manifest: dict | None) -> dict[int, tuple]:
    """{input position: default shape} that the manifest gives for the model's dynamic inputs."""
    if not manifest:
        return {}
    entries = manifest.get("inputs") or []
    by_name = {entry.get("name"): entry for entry in entries if isinstance(entry, dict)}
    seq_len = (manifest.get("text") or {}).get("seq_len") if (manifest.get("text") or {}).get("dynamic_length") \
        else None
    defaults = {}
    for position, spec in enumerate(model.inputs):
        if not spec.dynamic:
            continue
        entry = by_name.get(spec.name) or (entries[position] if len(entries) == len(model.inputs) else {})
        candidates = [entry.get("default_shape"), entry.get("shape")]
        if seq_len:
            candidates.append((1, int(seq_len)))
        for shape in candidates:
            if shape and all(int(d) > 0 for d in shape) and fits(shape, spec.shape):
                defaults[position] = tuple(int(d) for d in shape)
                break
    return defaults


def flag_shapes(model, flags=()) -> dict[int, tuple]:
    """{input position: shape} from `--input-shape` texts, each checked against the input's signature."""
    given: dict[int, tuple] = {}
    for text in flags:
        name, shape = parse_input_shape(text)
        if name is None:
            if len(model.inputs) != 1:
                raise BadInput(f"--input-shape {text!r} has no input name and {model.path.name} has "
                               f"{len(model.inputs)} inputs ({', '.join(model.input_names())})",
                               hint="name the input: --input-shape NAME:DIMS")
            position = 0
        else:
            position = model.input_position(name)
        spec = model.inputs[position]
        if not fits(shape, spec.shape):
            raise BadInput(f"--input-shape {text!r} does not fit input {spec.key!r} of {model.path.name}, "
                           f"whose shape signature is {list(spec.shape)}")
        given[position] = shape
    return given


def resolve_input_shapes(model, flags=(), manifest: dict | None = None, data_shapes: dict | None = None,
                         origin: str = "") -> list[tuple]:
    """The shape of every input of `model` (a Model, allocated or not), in input order.

    flags: `--input-shape` texts; data_shapes: {position: shape} of the data to be fed (already fitted);
    manifest: the model's manifest, for defaults. Raises BadInput for a flag naming no input, a shape that
    does not fit the input's signature, and a dynamic input nothing gives a shape to.
    """
    given = flag_shapes(model, flags)
    defaults = manifest_defaults(model, manifest)
    shapes = []
    for position, spec in enumerate(model.inputs):
        if position in given:
            shapes.append(given[position])
        elif data_shapes and position in data_shapes:
            shapes.append(tuple(data_shapes[position]))
        elif not spec.dynamic:
            shapes.append(tuple(spec.shape))
        elif position in defaults:
            log.info("input %r: shape %s from the manifest", spec.key, list(defaults[position]))
            shapes.append(defaults[position])
        elif batch_default(spec):
            log.info("input %r: dynamic batch set to 1", spec.key)
            shapes.append(batch_default(spec))
        else:
            tensor = f", tensor {spec.name}" if spec.signature_name and spec.signature_name != spec.name else ""
            raise BadInput(f"input {spec.key!r} of {model.path.name} has dynamic dimensions (shape signature "
                           f"{list(spec.shape)}{tensor}) and no shape was given{origin}",
                           hint=f"give one, e.g. {flag_example(spec)}")
    return shapes
