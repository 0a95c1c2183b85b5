"""Images -> model input values, with normalisation presets as data.

A preset maps pixel values x (0..255, in the channel order named) to (x - mean) / std. The host uses the
same table for calibration, so the device feeds the model exactly what it was calibrated and verified on.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import BadInput

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Normalization:
    mean: tuple
    std: tuple
    channel_order: str = "RGB"  # or "BGR"
    description: str = ""


PRESETS = {
    # keras.applications.mobilenet(_v2/_v3 without built-in rescaling), inception, xception: [-1, 1]
    "mobilenet": Normalization((127.5,), (127.5,), description="x/127.5 - 1, range [-1, 1]"),
    "unit": Normalization((0.0,), (255.0,), description="x/255, range [0, 1]"),
    # keras.applications resnet50/vgg: BGR, ImageNet mean subtracted, no scaling
    "caffe": Normalization((103.939, 116.779, 123.68), (1.0,), "BGR", "BGR minus ImageNet mean"),
    # keras.applications densenet and torch-style models
    "torch": Normalization((123.675, 116.28, 103.53), (58.395, 57.12, 57.375), description="ImageNet mean/std"),
    # the model normalises itself (EfficientNet, ConvNeXt, Rescaling layers)
    "raw": Normalization((0.0,), (1.0,), description="pixel values 0..255 as they are"),
}

# Pillow's own bomb limit is a warning at 89 Mpx; an edge device should refuse far earlier.
MAX_IMAGE_PIXELS = 64_000_000
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
RESAMPLE = {"bilinear": 2, "nearest": 0, "bicubic": 3}  # PIL.Image.Resampling values
# PIL modes whose values are not 0..255: converting them to L/RGB clips silently, so they are refused.
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_noted: set = set()  # (image mode, target mode) pairs already announced, so a folder warns once


def get_preset(name: str) -> Normalization:
    if name not in PRESETS:
        raise BadInput(f"unknown preprocessing preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


@dataclass(frozen=True)
class ImageSpec:
    """How to turn an image file into one input tensor (without the batch dimension)."""

    height: int
    width: int
    channels: int
    preset: str = "unit"
    resize: str = "bilinear"
    # A checkpoint's own preprocessing (Hugging Face preprocessor_config.json), in pixel units 0..255: when
    # set, mean/std replace the preset's; resize_to [h, w] is resized to first, then centre-cropped.
    mean: tuple | None = None
    std: tuple | None = None
    resize_to: tuple | None = None

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None or k not in ("mean", "std", "resize_to")}

    @classmethod
    def from_dict(cls, data: dict) -> ImageSpec:
        known = ("height", "width", "channels", "preset", "resize", "mean", "std", "resize_to")
        return cls(**{k: tuple(data[k]) if isinstance(data[k], list) else data[k] for k in known if k in data})

    def normalization(self) -> Normalization:
        if self.mean is not None and self.std is not None:
            return Normalization(tuple(self.mean), tuple(self.std), description="the checkpoint's own mean/std")
        return get_preset(self.preset)

    @classmethod
    def from_shape(cls, shape, preset: str = "unit") -> ImageSpec:
        """From an NHWC input shape [1, H, W, C] (C 1 or 3)."""
        shape = list(shape)
        if len(shape) == 3:
            shape = shape + [1]
        if len(shape) != 4 or shape[3] not in (1, 3) or min(shape[1:3]) < 1:
            raise BadInput(f"input shape {shape} is not an image (expected [1, H, W, 1|3])")
        return cls(height=int(shape[1]), width=int(shape[2]), channels=int(shape[3]), preset=preset)


def list_images(paths) -> list[Path]:
    """Files given, and image files found recursively in directories given, sorted."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.exists():
            found.append(path)
        else:
            raise BadInput(f"input not found: {path}")
    return found


def colour_note(mode: str, has_transparency: bool, target: str) -> str | None:
    """What converting an image of PIL `mode` to `target` ("L" or "RGB") changes, or None when nothing."""
    if mode in _ALPHA_MODES or has_transparency:
        return f"{mode} images lose their alpha channel (converted to {target})"
    if target == "L" and mode not in ("L", "1"):
        return f"{mode} images are converted to grayscale: the model takes one channel"
    if target == "RGB" and mode in ("L", "1"):
        return f"{mode} (grayscale) images are converted to RGB: the model takes three channels"
    return None


def _convert(image, path: Path, target: str):
    """Convert to the model's colour mode; refuse high bit depths; say once per kind what changed."""
    if image.mode in HIGH_DEPTH_MODES:
        raise BadInput(f"image {path.name} has {image.mode} pixels (16-bit or float); tfedge reads 8-bit images",
                       hint="save it as 8-bit PNG/JPEG")
    note = colour_note(image.mode, "transparency" in image.info, target)
    if note and (image.mode, target) not in _noted:
        _noted.add((image.mode, target))
        log.warning("%s (first: %s)", note, path.name)
    return image.convert(target)


def _pil_warning_filters(image_module) -> None:
    """PIL's decompression-bomb warning (> 89 Mpx) becomes an error and its palette-transparency advice is
    dropped (colour_note says what matters). Installed when missing (pytest and catch_warnings reset them)
    rather than per image in a catch_warnings block, which costs more than a small model's inference.
    Both filters are narrow: PIL's own warning class, PIL's own message."""
    bomb = ("error", None, image_module.DecompressionBombWarning, None, 0)
    if bomb not in warnings.filters:
        warnings.filterwarnings("error", category=image_module.DecompressionBombWarning)
        warnings.filterwarnings("ignore", message="Palette images with Transparency", category=UserWarning)


def load_image(path: str | Path, spec: ImageSpec) -> np.ndarray:
    """Decode, convert colour, resize and normalise one image -> float32 [H, W, C]."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    norm = spec.normalization()
    _pil_warning_filters(Image)
    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise BadInput(
                    f"image {path.name} is {image.width}x{image.height}, larger than "
                    f"{MAX_IMAGE_PIXELS // 1_000_000} Mpx (refused as a possible decompression bomb)"
                )
            image = _convert(image, path, "L" if spec.channels == 1 else "RGB")
            height, width = spec.resize_to or (spec.height, spec.width)
            if image.size != (width, height):
                image = image.resize((width, height), RESAMPLE[spec.resize])
            if (height, width) != (spec.height, spec.width):  # centre crop, as Hugging Face's processors
                top, left = (height - spec.height) // 2, (width - spec.width) // 2
                image = image.crop((left, top, left + spec.width, top + spec.height))
            pixels = np.asarray(image, dtype=np.float32)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadInput(f"cannot read image {path.name}: {str(err).splitlines()[0]}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadInput(f"cannot read image {path.name}: corrupt or truncated ({err})") from None
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if norm.channel_order == "BGR":
        pixels = np.ascontiguousarray(pixels[..., ::-1])
    pixels -= np.asarray(norm.mean, np.float32)  # pixels is a new float32 array: normalised in place
    pixels /= np.asarray(norm.std, np.float32)
    return pixels
