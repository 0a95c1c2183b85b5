"""Pair tensors by NAME, never by position: a source's inputs/outputs with a .tflite's SignatureDef names
(which the converter writes: `SourceModel.converter` names the outputs), or one model's with another's.

The converter orders a .tflite's input and output tensors as its graph comes out, not as the source listed
them (a real 3-output SavedModel came out [1, N, 4] boxes first where the source's first output was the
scores), so position says nothing. One tensor on each side pairs trivially, whatever the names.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BadInput


def tf_name(name: str) -> str:
    """A name as a TensorFlow signature can carry it (what the converter writes for a source's input)."""
    cleaned = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in name)
    return cleaned if cleaned and cleaned[0].isalpha() else f"input_{cleaned}"


def bare(name: str) -> str:
    """A name without what the converter adds to tensor names: 'serving_default_x:0' -> 'x'."""
    return tf_name(name.split(":")[0].removeprefix("serving_default_"))


def match_name(name: str, candidates) -> str | None:
    """The candidate that names the same tensor as `name`: the same text, else the same bare name."""
    candidates = list(candidates)
    if name in candidates:
        return name
    found = [c for c in candidates if bare(c) == bare(name)]
    return found[0] if len(found) == 1 else None


def pair_names(what: str, wanted: list[str], have: list[str], wanted_from: str, have_from: str) -> list[int]:
    """For each name in `wanted`, the position of the same-named tensor in `have`.

    BadInput (exit 2) naming both lists when the counts differ or a name has no partner."""
    wanted, have = list(wanted), list(have)
    if len(wanted) == 1 and len(have) == 1:
        return [0]
    if len(wanted) == len(have):
        picks = [match_name(name, have) for name in wanted]
        if None not in picks and len(set(picks)) == len(picks):
            return [have.index(pick) for pick in picks]
    raise BadInput(f"cannot pair the {what} by name: {wanted_from} has {wanted}, {have_from} has {have}",
                   hint="tensors are matched by their signature names, never by position; convert the "
                        "source again with tfedge (it names the .tflite's outputs after the source's)")


@dataclass(frozen=True)
class Pairing:
    """inputs[i] / outputs[i]: the position, in the other model, of this side's input / output i."""

    inputs: list
    outputs: list

    def their_inputs(self, arrays: list) -> list:
        """Arrays in this side's input order -> the other model's input order."""
        ordered = [None] * len(arrays)
        for mine, theirs in enumerate(self.inputs):
            ordered[theirs] = arrays[mine]
        return ordered

    def our_outputs(self, outputs: list) -> list:
        """The other model's outputs -> this side's output order."""
        return [outputs[theirs] for theirs in self.outputs]


def pair(inputs: list[str], outputs: list[str], other_inputs: list[str], other_outputs: list[str],
         name: str, other_name: str) -> Pairing:
    return Pairing(pair_names("inputs", inputs, other_inputs, name, other_name),
                   pair_names("outputs", outputs, other_outputs, name, other_name))


def pair_with_model(source, model) -> Pairing:
    """A SourceModel (tfedge.convert.sources) with a tfedge_device Model, through the model's signature."""
    return pair([spec.name for spec in source.inputs], source.output_names,
                [spec.key for spec in model.inputs], [spec.key for spec in model.outputs],
                f"source {source.location}", model.path.name)
