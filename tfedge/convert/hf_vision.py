"""`hf:DIR` vision Transformers (ViT, DeiT, DINOv2): keras-hub's backbone + the checkpoint's own classifier, on one
image [1, H, W, 3] normalised as DIR's `preprocessor_config.json` says.

The preprocessing is Hugging Face's image processor (resize with its PIL resample filter, optional centre
crop, rescale, normalise) written as an ImageSpec in pixel units: (x * rescale - mean) / std is
(x - mean / rescale) / (std / rescale). It goes into the manifest, so `tfedge-run classify IMAGE` feeds the
model what PyTorch's processor would.
"""

from __future__ import annotations

from pathlib import Path

from tfedge_device.preprocess import RESAMPLE, ImageSpec

from ..errors import BadInput
from .sources import LoadOptions, SourceModel, tree_sha256

CHECKPOINT_PRESET = "preprocessor_config"  # the ImageSpec preset name of a checkpoint's own normalisation
PIL_RESAMPLE = {code: name for name, code in RESAMPLE.items()}  # preprocessor_config's `resample` is PIL's code
DEFAULT_PROCESSOR = {"image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2}  # ViT's


def _size(value, what: str) -> tuple[int, int]:
    if isinstance(value, dict) and "height" in value and "width" in value:
        return int(value["height"]), int(value["width"])
    if isinstance(value, int):
        return value, value
    raise BadInput(f"preprocessor_config.json's {what} {value!r} is not a fixed height x width",
                   hint="tfedge reads {'height': H, 'width': W} and {'shortest_edge': N} sizes")


def _shortest_edge(value) -> int | None:
    """{'shortest_edge': N} (DINOv2's, ConvNeXt's processors): the shorter side resized to N, aspect kept."""
    if isinstance(value, dict) and set(value) == {"shortest_edge"}:
        return int(value["shortest_edge"])
    return None


def processed_size(processor: dict) -> tuple[int, int]:
    """(h, w) of the images the processor makes: its centre crop, else its fixed resize size."""
    if processor.get("do_center_crop"):
        return _size(processor["crop_size"], "crop_size")
    return _size(processor["size"], "size")


def image_spec_from_processor(processor: dict, image_size: int) -> ImageSpec:
    """Hugging Face's ViT/DeiT/DINOv2 image processor config -> an ImageSpec at the model's image_size."""
    resample = processor.get("resample", 2)
    if resample not in PIL_RESAMPLE:
        raise BadInput(f"preprocessor_config.json's resample {resample} is not one tfedge runs "
                       f"({', '.join(f'{c} {n}' for c, n in PIL_RESAMPLE.items())})")
    shortest = _shortest_edge(processor.get("size"))
    if shortest is None:
        resized = _size(processor["size"], "size") if "size" in processor else (image_size, image_size)
    elif processor.get("do_center_crop"):
        resized = None  # depends on each image's aspect: the ImageSpec's resize_shortest
    else:
        raise BadInput(f"preprocessor_config.json resizes the shortest edge to {shortest} without a centre "
                       "crop: the images' sizes would vary, the model takes one size")
    crop = (_size(processor["crop_size"], "crop_size") if processor.get("do_center_crop") else resized)
    if crop != (image_size, image_size):
        raise BadInput(f"preprocessor_config.json makes {crop[0]}x{crop[1]} images but the model takes "
                       f"{image_size}x{image_size}")
    scale = float(processor.get("rescale_factor", 1 / 255)) if processor.get("do_rescale", True) else 1.0
    if processor.get("do_normalize", True):
        mean = [float(m) / scale for m in processor.get("image_mean", DEFAULT_PROCESSOR["image_mean"])]
        std = [float(s) / scale for s in processor.get("image_std", DEFAULT_PROCESSOR["image_std"])]
    else:
        mean, std = [0.0, 0.0, 0.0], [1.0 / scale] * 3
    return ImageSpec(height=image_size, width=image_size, channels=3, preset=CHECKPOINT_PRESET,
                     resize=PIL_RESAMPLE[resample], mean=tuple(round(m, 6) for m in mean),
                     std=tuple(round(s, 6) for s in std), resize_to=resized if resized not in (crop, None) else None,
                     resize_shortest=shortest)


class VisionSource(SourceModel):
    """Backbone [1, H, W, 3] -> sequence [1, 1 (+1) + patches, hidden] -> head logits (or the [CLS] vector)."""

    kind = "hf"

    def __init__(self, backbone, root: Path, head, spec: ImageSpec, options: LoadOptions):
        self.backbone = backbone
        self.head = head
        self.spec = spec
        super().__init__(f"hf:{root}", tree_sha256(root), [("images", (1, spec.height, spec.width, 3), "float32")],
                         options)
        self.task = "image-classification" if head is not None else "generic"
        self.preprocess = CHECKPOINT_PRESET
        self._rewrite = options.rewrites
        self._export = None

    def image_spec(self, preset: str) -> ImageSpec:
        return self.spec if preset == CHECKPOINT_PRESET else super().image_spec(preset)

    def _call(self, images):
        sequence = self.backbone(images, training=False)
        if self.head is not None:
            return self.head.call(sequence, None)
        return sequence[:, 0]

    def _trackable(self):
        return self.backbone

    def export_function(self):
        """The same model traced with tfedge.convert.rewrites (unless --no-rewrites)."""
        if not self._rewrite:
            return self.concrete_function()
        if self._export is None:
            from .hf_families import rewritten_export

            self._export = rewritten_export(self, self.trace)
        return self._export


def load_vision_source(root: Path, config: dict, options: LoadOptions) -> SourceModel:
    from .hf_families import family_of, load_family, read_json
    from .hf_heads import checkpoint_head, external_head, head_kind, head_manifest

    if options.task not in (None, "image-classification"):
        raise BadInput(f"--task {options.task!r} is not a vision task", hint="leave --task out for ViT/DeiT/DINOv2")
    if options.seq_len:
        raise BadInput("--seq-len is for text models; this is a vision model")
    processor_file = root / "preprocessor_config.json"
    processor = read_json(processor_file) if processor_file.exists() else DEFAULT_PROCESSOR
    overrides = {}
    if "model_type" in config and family_of(config, root).image_size_from_processor:  # DINOv2: the crop's size
        height, width = processed_size(processor)
        if height != width:
            raise BadInput(f"preprocessor_config.json makes {height}x{width} images; this family takes squares")
        overrides["image_shape"] = (height, width, 3)
    family, backbone, tensors, notes = load_family(root, config, **overrides)
    spec = image_spec_from_processor(processor, int(backbone.input_shape[1]))
    if not processor_file.exists():
        notes.append("no preprocessor_config.json: images normalised as ViT's processor does (mean 0.5, std 0.5)")
    head = checkpoint_head(family.model_type, config, tensors)
    if head is None and (options.task == "image-classification" or options.num_labels or head_kind(config)):
        head = external_head(root, int(backbone.hidden_dim), options.num_labels or
                             len(config.get("id2label") or {}) or 2)
    if head is not None and options.num_labels and options.num_labels != head.labels:
        raise BadInput(f"--num-labels {options.num_labels} does not match the checkpoint's head "
                       f"({head.labels} labels)", hint="leave --num-labels out")
    source = VisionSource(backbone, root, head, spec, options)
    source.notes.extend(notes)
    source.extra_manifest["hf"] = {"model_type": family.model_type, "backbone": family.backbone,
                                   "architecture": (config.get("architectures") or [None])[0]}
    if head is not None:
        head_manifest(source, head, config)
    else:
        source.notes.append("no classification head in the checkpoint: the output is the [CLS] embedding")
    return source
