"""The Hugging Face families `hf:DIR` reads, by config.json's `model_type`: a table, not if-chains.

Each row names the keras-hub backbone that reads the checkpoint (keras-hub's own reader,
`keras_hub/src/utils/transformers/convert_<family>.py`, ports the weights), the tokenizer kind its
tokenizer.json carries, how the backbone is called, and which fixes tfedge applies after keras-hub read it:

  activation      keras-hub builds BERT's feed-forward layers with tanh-approximated GELU whatever config.json
                  says; `hidden_act: gelu` (BERT's) is exact GELU in PyTorch (6e-4 relative error otherwise).
                  The built layers get the activation config.json names.
  token types     keras-hub's RoBERTa reader drops `token_type_embeddings` (PyTorch adds row 0 to every token:
                  token_type_ids are all 0), which moves logits by up to 7.6 on a real checkpoint. Folded into
                  the position embeddings, as keras-hub's XLM-RoBERTa reader already does.

The task heads (the checkpoint's own classifier) are in tfedge.convert.hf_heads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import BadInput, EnvironmentMissing
from ..tf_loader import quiet_native, tensorflow


@dataclass(frozen=True)
class Family:
    model_type: str
    backbone: str  # keras_hub.models.<backbone>
    modality: str  # "text" | "image"
    tokenizer: str = ""  # the tokenizer.json model kind the checkpoints of this family ship
    segment_ids: bool = False  # the backbone takes segment_ids (all 0 here, as PyTorch's default)
    fixes: tuple = field(default_factory=tuple)  # names in FIXES, applied in order after keras-hub read it
    rewrites: tuple = ("attention", "dense")  # tfedge.convert.rewrites applied at export
    rewrites_skipped: dict = field(default_factory=dict)  # rewrite name -> why not (said in the notes)
    # The model takes the processor's crop size, not config.json's image_size (DINOv2: a 518-px position grid,
    # 224-px images): the backbone is built at the crop size and its position embeddings resized.
    image_size_from_processor: bool = False


def _set_activation(backbone, config: dict, tensors) -> str | None:
    """The feed-forward activation config.json names, set on every built TransformerEncoder."""
    name = config.get("hidden_act") or config.get("activation") or "gelu"
    wanted = ACTIVATIONS.get(name)
    if wanted is None:
        raise BadInput(f"config.json's activation {name!r} is not one tfedge maps to Keras",
                       hint=f"known: {', '.join(sorted(ACTIVATIONS))}")
    probe = np.linspace(-3, 3, 13, dtype=np.float32)  # where the GELU variants differ (up to ~1e-3)
    changed = 0
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        dense = getattr(layer, "_feedforward_intermediate_dense", None)
        if dense is None:
            continue
        before = np.asarray(dense.activation(probe))
        dense.activation = wanted()
        layer.activation = dense.activation
        changed += not np.allclose(before, np.asarray(dense.activation(probe)), rtol=0, atol=1e-7)
    if changed:
        return f"feed-forward activation set to {name!r} as config.json says (keras-hub built another)"
    return None


def _gelu_exact():
    import keras

    return lambda x: keras.activations.gelu(x, approximate=False)


def _gelu_tanh():
    import keras

    return lambda x: keras.activations.gelu(x, approximate=True)


def _relu():
    import keras

    return keras.activations.relu


for _fn, _name in ((_gelu_exact, "gelu"), (_gelu_tanh, "gelu_approximate"), (_relu, "relu")):
    _fn.__name__ = _name
# config.json's hidden_act -> the activation PyTorch computes (transformers/activations.py ACT2FN)
ACTIVATIONS: dict[str, Callable] = {"gelu": _gelu_exact, "gelu_new": _gelu_tanh, "gelu_pytorch_tanh": _gelu_tanh,
                                    "gelu_fast": _gelu_tanh, "relu": _relu}


def _fold_token_type(backbone, config: dict, tensors) -> str | None:
    """PyTorch RoBERTa adds token_type_embeddings[0] to every token; keras-hub's reader drops it."""
    table = tensors.get("embeddings.token_type_embeddings.weight")
    if table is None:
        return None
    positions = backbone.embeddings.position_embedding.position_embeddings
    positions.assign(positions + table[0][None, :])
    return "token_type_embeddings[0] folded into the position embeddings (keras-hub's RoBERTa reader drops it)"


def _layer_norm_epsilon(backbone, config: dict, tensors) -> str | None:
    """config.json's layer_norm_eps on every LayerNormalization (keras-hub hard-codes its family default)."""
    import keras

    eps = config.get("layer_norm_eps")
    if eps is None:
        return None
    changed = 0
    for layer in backbone._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, keras.layers.LayerNormalization) and layer.epsilon != eps:
            layer.epsilon, changed = float(eps), changed + 1
    return f"layer_norm_eps {eps:g} set on {changed} LayerNorm layers, as config.json says" if changed else None


def torch_bicubic_matrix(source: int, target: int) -> np.ndarray:
    """[target, source] weights of PyTorch's F.interpolate(mode="bicubic", align_corners=False, antialias=False)
    along one axis: Keys' cubic with A = -0.75, source index (i + 0.5) * source / target - 0.5 (not clamped),
    neighbours clamped to the edge (aten/src/ATen/native/UpSample.h). TensorFlow's bicubic (keras.ops.image.resize)
    uses A = -0.5, so its result differs."""
    a = -0.75

    def cubic(x):
        x = abs(x)
        if x <= 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a if x < 2 else 0.0

    matrix = np.zeros((target, source), np.float64)
    for i in range(target):
        position = (i + 0.5) * source / target - 0.5
        base = int(np.floor(position))
        t = position - base
        for offset, weight in zip((-1, 0, 1, 2), (cubic(1 + t), cubic(t), cubic(1 - t), cubic(2 - t))):
            matrix[i, min(max(base + offset, 0), source - 1)] += weight
    return matrix


def _interpolate_positions(backbone, config: dict, tensors) -> str | None:
    """DINOv2 on images smaller than its position grid (the real checkpoints: 37x37 patches, images 224 px): the
    position embeddings resized to the image's grid as PyTorch does; keras-hub resizes with TensorFlow's bicubic."""
    table = tensors.get("embeddings.position_embeddings")  # [1, 1 + grid^2, hidden]
    if table is None:  # a keras-hub preset: keras-hub saved the embeddings it uses
        return None
    table = np.asarray(table, np.float64)
    grid = round((table.shape[1] - 1) ** 0.5)
    target = int(backbone.image_shape[0]) // int(backbone.patch_size)
    if grid == target:
        return None
    resize = torch_bicubic_matrix(grid, target)
    patches = table[0, 1:].reshape(grid, grid, -1)
    patches = np.einsum("ih,jw,hwc->ijc", resize, resize, patches).reshape(1, target * target, -1)
    backbone.embeddings.interpolated_position_embeddings.assign(
        np.concatenate([table[:, :1], patches], axis=1).astype(np.float32))
    return (f"position embeddings resized {grid}x{grid} -> {target}x{target} patches with PyTorch's bicubic "
            "(A = -0.75), as transformers does (keras-hub's TensorFlow bicubic differs)")


FIXES: dict[str, Callable] = {"activation": _set_activation, "token_type": _fold_token_type,
                              "layer_norm_eps": _layer_norm_epsilon, "positions": _interpolate_positions}

# Both rewrites are valid on ViT/DeiT (tests/test_hf_families.py) but gain nothing there: the image input has
# fixed shapes (no dynamic tensordot to flatten) and no padding mask (no SELECT_V2 to remove). Measured at 224 px,
# LiteRT 1 thread, rewritten vs plain: ViT-Tiny float32 14.31 vs 14.23 ms, dynamic 7.27 vs 7.08 ms; DeiT-Tiny
# 14.30 vs 14.17, 7.42 vs 7.35 ms (tools/bench_families.py --retime, 2026-12-02, docs/transformers.md); DINOv2-small
# 56.20 vs 56.24, 23.01 vs 23.11 ms (2026-12-02 17:55). The text families gain: dynamic-range MiniLM 1.27x,
# ALBERT-base 1.16x, DistilBERT and BERT-base 1.07x.
VISION_SKIPPED = {name: "measured no faster on ViT-Tiny/DeiT-Tiny/DINOv2-small (fixed image shapes, no padding mask)"
                  for name in ("attention", "dense")}

FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("bert", "BertBackbone", "text", "WordPiece", segment_ids=True, fixes=("activation", "layer_norm_eps")),
    Family("distilbert", "DistilBertBackbone", "text", "WordPiece", fixes=("activation",)),
    Family("albert", "AlbertBackbone", "text", "Unigram", segment_ids=True,
           fixes=("activation", "layer_norm_eps")),
    Family("roberta", "RobertaBackbone", "text", "BPE", fixes=("activation", "token_type", "layer_norm_eps")),
    Family("xlm-roberta", "XLMRobertaBackbone", "text", "Unigram", fixes=("activation", "layer_norm_eps")),
    Family("vit", "ViTBackbone", "image", rewrites=(), rewrites_skipped=VISION_SKIPPED),
    Family("deit", "DeiTBackbone", "image", rewrites=(), rewrites_skipped=VISION_SKIPPED),
    Family("dinov2", "DINOV2Backbone", "image", fixes=("positions",), rewrites=(), rewrites_skipped=VISION_SKIPPED,
           image_size_from_processor=True),
    # With registers PyTorch resizes the positions with antialiasing, which keras-hub's TensorFlow resize matches
    # (2.2e-7 on the fixture): no "positions" fix.
    Family("dinov2_with_registers", "DINOV2Backbone", "image", rewrites=(), rewrites_skipped=VISION_SKIPPED,
           image_size_from_processor=True),
)}
# Encoders people ask for that keras-hub (0.32) cannot read from a Hugging Face directory, and why.
UNREADABLE = {
    "electra": "keras-hub has an ElectraBackbone but no reader for Hugging Face checkpoints",
    "mobilebert": "keras-hub has no MobileBERT model",
    "deberta-v2": "keras-hub's DeBERTa-v3 has no reader for Hugging Face checkpoints",
}


def family_of(config: dict, root: Path) -> Family:
    """By config.json's model_type (a Hugging Face directory) or class_name (a keras-hub preset directory)."""
    model_type = config.get("model_type")
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    by_backbone = {family.backbone: family for family in FAMILIES.values()}
    if model_type is None and config.get("class_name") in by_backbone:
        return by_backbone[config["class_name"]]
    why = UNREADABLE.get(model_type, "keras-hub has no reader tfedge uses for it")
    raise BadInput(f"{root}: model_type {model_type!r} cannot be read ({why}); hf:DIR reads "
                   f"{', '.join(FAMILIES)}", hint="export the model to a SavedModel or .keras file instead")


def safetensor_tensors(root: Path) -> dict:
    """Every tensor of DIR's model.safetensors (or its shards), as numpy arrays, keys as saved."""
    try:
        from safetensors.numpy import load_file
    except ImportError:
        raise EnvironmentMissing("safetensors is not installed", hint="pip install safetensors") from None
    index = root / "model.safetensors.index.json"
    files = (sorted({root / name for name in json.loads(index.read_text())["weight_map"].values()})
             if index.exists() else [root / "model.safetensors"])
    tensors = {}
    for path in files:
        if not path.exists():
            raise BadInput(f"{root} has no {path.name}: hf:DIR reads safetensors weights",
                           hint="save with save_pretrained(safe_serialization=True)")
        tensors.update(load_file(str(path)))
    return tensors


class Tensors:
    """Checkpoint tensors looked up by suffix (keys carry the family prefix, e.g. `bert.` or `roberta.`)."""

    def __init__(self, tensors: dict):
        self.tensors = tensors

    def get(self, key: str):
        if key in self.tensors:
            return self.tensors[key]
        matches = [k for k in self.tensors if k.endswith("." + key)]
        return self.tensors[matches[0]] if len(matches) == 1 else None


def load_backbone(family: Family, root: Path, config: dict, tensors: Tensors, **kwargs):
    """keras-hub's backbone for `family` read from DIR (kwargs override its config), with tfedge's fixes ->
    (backbone, notes)."""
    tensorflow()
    try:
        import keras_hub
    except ImportError:
        raise EnvironmentMissing("keras-hub is not installed", hint="pip install keras-hub safetensors") from None
    try:
        with quiet_native():
            backbone = getattr(keras_hub.models, family.backbone).from_preset(str(root), **kwargs)
    except (ValueError, KeyError, OSError, TypeError) as err:
        raise BadInput(f"keras-hub cannot build a {family.backbone} from {root}: "
                       f"{' '.join(str(err).split())[:300]}",
                       hint="hf:DIR needs a Hugging Face directory (config.json, model.safetensors)") from None
    notes = [note for name in family.fixes if (note := FIXES[name](backbone, config, tensors))]
    return backbone, notes


def load_family(root: Path, config: dict, **kwargs):
    """(family, backbone, checkpoint tensors, notes) for a Hugging Face directory or a keras-hub preset; kwargs
    override the backbone's config (e.g. image_shape)."""
    family = family_of(config, root)
    if "model_type" not in config:  # a keras-hub preset: keras-hub wrote it, nothing to fix, no task head
        backbone, _ = load_backbone(family, root, {}, Tensors({}), **kwargs)
        return family, backbone, {}, []
    tensors = safetensor_tensors(root)
    backbone, notes = load_backbone(family, root, config, Tensors(tensors), **kwargs)
    return family, backbone, tensors, notes


def rewritten_export(source, trace):
    """`trace()` with tfedge.convert.rewrites applied to the source's backbone, as far as its family allows
    (hf_families.Family.rewrites); the manifest and notes say what was rewritten and what was skipped, why."""
    from .rewrites import REWRITES, rewritten

    family = FAMILIES.get((source.extra_manifest.get("hf") or {}).get("model_type"))
    allowed = family.rewrites if family else tuple(r.name for r in REWRITES)
    with rewritten(source.backbone, allowed) as applied:
        function = trace()
    source.extra_manifest["export_rewrites"] = applied
    if applied:
        counts = ", ".join(f"{name} x{count}" for name, count in applied.items())
        source.notes.append(f"traced with export rewrites ({counts} layers): same function, faster graph; "
                            "--no-rewrites turns them off")
    for name, why in (family.rewrites_skipped if family else {}).items():
        source.notes.append(f"export rewrite {name!r} skipped for {family.model_type}: {why}")
    return function


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInput(f"cannot read {path}: {' '.join(str(err).split())[:200]}") from None
