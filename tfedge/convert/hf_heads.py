"""The checkpoint's own task heads, read from model.safetensors, as the reference implementation computes them.

keras-hub reads backbones only; the head of a `*ForSequenceClassification` / `*ForImageClassification`
checkpoint is rebuilt here from its tensors (PyTorch Linear weights are [out, in]: transposed). Each head maps
(sequence [B, T, H], pooled [B, H] or None) -> logits [B, labels], exactly as transformers' modeling code:

  bert, albert          classifier(pooler(sequence[:, 0]))  (the backbone's pooled output: dense + tanh)
  distilbert            classifier(relu(pre_classifier(sequence[:, 0])))
  roberta, xlm-roberta  out_proj(tanh(dense(sequence[:, 0])))      (RobertaClassificationHead)
  vit, deit             classifier(sequence[:, 0])                 (after the final LayerNorm)
  deit with teacher     (cls_classifier(sequence[:, 0]) + distillation_classifier(sequence[:, 1])) / 2
  dinov2                classifier(concat(sequence[:, 0], mean(sequence[:, 1:])))  (Dinov2ForImageClassification)
  dinov2 with registers the same, the mean over the patches after the R register tokens: sequence[:, 1 + R:]

The outputs are logits, as PyTorch's; the manifest says so (`scores: logits`) and the device applies softmax.
A checkpoint without a head (e.g. `BertModel`) gets a head trained elsewhere (classifier.weights.h5) or a
random one, which says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BadInput


@dataclass(frozen=True)
class Head:
    """A built head: call(sequence, pooled) -> logits; `origin` says where its weights came from."""

    call: Callable
    labels: int
    origin: str  # "checkpoint: <architecture>" | "classifier.weights.h5" | "random"
    layers: tuple = ()

    @property
    def trained(self) -> bool:
        return self.origin != "random"


def _dense(tensors: dict, prefix: str, activation=None, name=None):
    import keras

    weight, bias = tensors.get(f"{prefix}.weight"), tensors.get(f"{prefix}.bias")
    if weight is None or bias is None:
        raise BadInput(f"model.safetensors has no {prefix}.weight/.bias: not the head config.json's "
                       "architecture names")
    layer = keras.layers.Dense(weight.shape[0], activation=activation, name=name or prefix.replace(".", "_"))
    layer.build((None, weight.shape[1]))
    layer.set_weights([np.ascontiguousarray(weight.T, np.float32), bias.astype(np.float32)])
    return layer


def _pooled_classifier(tensors, config):
    classifier = _dense(tensors, "classifier")
    return (lambda sequence, pooled: classifier(pooled)), (classifier,)


def _first_token_classifier(tensors, config):
    classifier = _dense(tensors, "classifier")
    return (lambda sequence, pooled: classifier(sequence[:, 0])), (classifier,)


def _distilbert(tensors, config):
    pre = _dense(tensors, "pre_classifier", activation="relu")
    classifier = _dense(tensors, "classifier")
    return (lambda sequence, pooled: classifier(pre(sequence[:, 0]))), (pre, classifier)


def _roberta(tensors, config):
    dense = _dense(tensors, "classifier.dense", activation="tanh")
    out = _dense(tensors, "classifier.out_proj")
    return (lambda sequence, pooled: out(dense(sequence[:, 0]))), (dense, out)


def _deit_with_teacher(tensors, config):
    cls = _dense(tensors, "cls_classifier")
    distillation = _dense(tensors, "distillation_classifier")
    return (lambda sequence, pooled: (cls(sequence[:, 0]) + distillation(sequence[:, 1])) / 2.0), (cls, distillation)


def _cls_and_mean_patch(tensors, config):
    classifier = _dense(tensors, "classifier")
    first_patch = 1 + int(config.get("num_register_tokens", 0))  # register tokens sit between [CLS] and patches

    def call(sequence, pooled):
        import keras

        patches = keras.ops.mean(sequence[:, first_patch:], axis=1)
        return classifier(keras.ops.concatenate([sequence[:, 0], patches], axis=-1))

    return call, (classifier,)


# (model_type, architecture suffix) -> head builder
HEADS: dict[tuple[str, str], Callable] = {
    ("bert", "ForSequenceClassification"): _pooled_classifier,
    ("albert", "ForSequenceClassification"): _pooled_classifier,
    ("distilbert", "ForSequenceClassification"): _distilbert,
    ("roberta", "ForSequenceClassification"): _roberta,
    ("xlm-roberta", "ForSequenceClassification"): _roberta,
    ("vit", "ForImageClassification"): _first_token_classifier,
    ("deit", "ForImageClassification"): _first_token_classifier,
    ("deit", "ForImageClassificationWithTeacher"): _deit_with_teacher,
    ("dinov2", "ForImageClassification"): _cls_and_mean_patch,
    ("dinov2_with_registers", "ForImageClassification"): _cls_and_mean_patch,
}
HEAD_SUFFIXES = ("ForImageClassificationWithTeacher", "ForSequenceClassification", "ForImageClassification")


def architecture(config: dict) -> str:
    names = config.get("architectures") or [""]
    return names[0] or ""


def head_kind(config: dict) -> str | None:
    """The head suffix of config.json's architecture ("ForSequenceClassification", ...) or None."""
    name = architecture(config)
    return next((suffix for suffix in HEAD_SUFFIXES if name.endswith(suffix)), None)


def checkpoint_head(model_type: str, config: dict, tensors: dict) -> Head | None:
    """The checkpoint's own head, or None when config.json's architecture has none tfedge knows."""
    kind = head_kind(config)
    builder = HEADS.get((model_type, kind)) if kind else None
    if builder is None:
        return None
    call, layers = builder(tensors, config)
    return Head(call, int(layers[-1].units), f"checkpoint: {architecture(config)}", layers)


def external_head(root: Path, hidden: int, count: int) -> Head:
    """A Dense head on the pooled / first-token vector: DIR/classifier.weights.h5 (a head trained elsewhere)
    when present, else random (the caller says so in a note and the manifest)."""
    import keras

    layer = keras.layers.Dense(count, name="classifier")
    layer.build((None, hidden))
    weights = root / "classifier.weights.h5"
    if weights.exists():
        layer.load_weights(str(weights))
    origin = "classifier.weights.h5" if weights.exists() else "random"
    return Head(lambda sequence, pooled: layer(sequence[:, 0] if pooled is None else pooled), count, origin,
                (layer,))


def id2label(config: dict, count: int) -> list[str] | None:
    labels = config.get("id2label") or {}
    names = [labels.get(str(i), labels.get(i)) for i in range(count)]
    return names if all(isinstance(n, str) for n in names) else None


def head_manifest(source, head: Head, config: dict) -> None:
    """Labels from id2label, the head's origin in the manifest, and a note when it is random."""
    source.labels = id2label(config, head.labels)
    source.extra_manifest["head"] = {"weights": head.origin, "trained": head.trained, "outputs": "logits"}
    if not head.trained:
        source.notes.append("classification head has random weights (no head in model.safetensors and no "
                            "classifier.weights.h5 in the directory): speed and size are real, its outputs are not")
