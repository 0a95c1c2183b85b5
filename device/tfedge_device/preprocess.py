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
# How an image is fitted to the input size: "stretch" resizes to H x W (aspect not kept; classifiers, SSD);
# "letterbox" scales to fit, keeping the aspect, and pads the rest with grey 114 centred, as Ultralytics'
# LetterBox does (ultralytics/data/augment.py) for YOLO models.
FITS = ("stretch", "letterbox")
LETTERBOX_GREY = 114
# PIL modes whose values are not 0..255: converting them to L/RGB clips silently, so they are refused.
HIGH_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_noted: set = set()  # (image mode, target mode) pairs already announced, so a folder warns once


def get_preset(name: str) -> Normalization:
    if name not in PRESETS:
        raise BadInput(f"unknown preprocessing preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


OPTIONAL_KEYS = ("mean", "std", "resize_to", "resize_shortest")  # ImageSpec keys a manifest may leave out


def shortest_edge_size(width: int, height: int, shortest: int) -> tuple[int, int]:
    """(h, w) with the shorter side `shortest` and the aspect kept, the longer side truncated, as Hugging Face's
    get_resize_output_image_size(default_to_square=False) computes it."""
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = shortest, int(shortest * long / short)
    return (new_long, new_short) if width <= height else (new_short, new_long)


@dataclass(frozen=True)
class ImageSpec:
    """How to turn an image file into one input tensor (without the batch dimension)."""

    height: int
    width: int
    channels: int
    preset: str = "unit"
    resize: str = "bilinear"
    fit: str = "stretch"  # one of FITS
    # A checkpoint's own preprocessing (Hugging Face preprocessor_config.json), in pixel units 0..255: when
    # set, mean/std replace the preset's; resize_to [h, w] is resized to first, then centre-cropped;
    # resize_shortest N resizes the shorter side to N keeping the aspect (HF's `shortest_edge`, torchvision's
    # Resize(N)), then centre-crops.
    mean: tuple | None = None
    std: tuple | None = None
    resize_to: tuple | None = None
    resize_shortest: int | None = None

    def __post_init__(self):
        if self.fit not in FITS:
            raise BadInput(f"unknown image fit {self.fit!r}; choose one of {', '.join(FITS)}")

    def to_dict(self) -> dict:
        data = asdict(self)
        return {k: v for k, v in data.items() if v is not None or k not in OPTIONAL_KEYS}

    @classmethod
    def from_dict(cls, data: dict) -> ImageSpec:
        known = ("height", "width", "channels", "preset", "resize", "fit", *OPTIONAL_KEYS)
        return cls(**{k: tuple(data[k]) if isinstance(data[k], list) else data[k] for k in known if k in data})

    def normalization(self) -> Normalization:
        if self.mean is not None and self.std is not None:
            return Normalization(tuple(self.mean), tuple(self.std), description="the checkpoint's own mean/std")
        return get_preset(self.preset)

    @classmethod
    def from_shape(cls, shape, preset: str = "unit", fit: str = "stretch") -> ImageSpec:
        """From an NHWC input shape [1, H, W, C] (C 1 or 3)."""
        shape = list(shape)
        if len(shape) == 3:
            shape = shape + [1]
        if len(shape) != 4 or shape[3] not in (1, 3) or min(shape[1:3]) < 1:
            raise BadInput(f"input shape {shape} is not an image (expected [1, H, W, 1|3])")
        return cls(height=int(shape[1]), width=int(shape[2]), channels=int(shape[3]), preset=preset, fit=fit)


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


@dataclass(frozen=True)
class Placement:
    """Where an original image of `width` x `height` pixels landed in the model's input: input pixel
    coordinate = original * scale + pad, per axis (stretch: pads 0, scales H/h and W/w; letterbox: one scale,
    centred pads). Coordinates are continuous (a pixel spans [i, i + 1)), as Pillow's resize maps them."""

    width: int
    height: int
    scale_x: float = 1.0
    scale_y: float = 1.0
    pad_x: float = 0.0
    pad_y: float = 0.0

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """[N, 4] (xmin, ymin, xmax, ymax) in input pixels -> the original image's pixels, clipped to it."""
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        out = np.empty_like(boxes)
        out[:, 0::2] = np.clip((boxes[:, 0::2] - self.pad_x) / self.scale_x, 0, self.width)
        out[:, 1::2] = np.clip((boxes[:, 1::2] - self.pad_y) / self.scale_y, 0, self.height)
        return out


def fit_image(image, spec: ImageSpec):
    """A PIL image -> (the image at the input size, its Placement), by spec.fit."""
    from PIL import Image

    width, height = image.size
    if spec.fit == "stretch":
        if spec.resize_shortest:
            resized_h, resized_w = shortest_edge_size(width, height, spec.resize_shortest)
        else:
            resized_h, resized_w = spec.resize_to or (spec.height, spec.width)
        if image.size != (resized_w, resized_h):
            image = image.resize((resized_w, resized_h), RESAMPLE[spec.resize])
        top, left = (resized_h - spec.height) // 2, (resized_w - spec.width) // 2
        if (resized_h, resized_w) != (spec.height, spec.width):  # centre crop, as Hugging Face's processors
            image = image.crop((left, top, left + spec.width, top + spec.height))
        return image, Placement(width, height, resized_w / width, resized_h / height, -left, -top)
    # Ultralytics' LetterBox (center=True): r = min(H/h, W/w); new size rounded; pads split with a
    # +-0.1 rounding bias; boxes map back with the same r and the left/top pads (ops.scale_boxes).
    scale = min(spec.height / height, spec.width / width)
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))  # a 1000x3 strip
    left = round((spec.width - new_w) / 2 - 0.1)
    top = round((spec.height - new_h) / 2 - 0.1)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), RESAMPLE[spec.resize])
    grey = LETTERBOX_GREY if image.mode == "L" else (LETTERBOX_GREY,) * 3
    canvas = Image.new(image.mode, (spec.width, spec.height), grey)
    canvas.paste(image, (left, top))
    return canvas, Placement(width, height, scale, scale, left, top)


def load_image(path: str | Path | bytes, spec: ImageSpec) -> np.ndarray:
    """Decode, convert colour, resize (or letterbox) and normalise one image (a file, or its bytes: a server's
    upload) -> float32 [H, W, C]."""
    return load_placed_image(path, spec)[0]


def load_placed_image(path: str | Path | bytes, spec: ImageSpec) -> tuple[np.ndarray, Placement]:
    """load_image, and where the original image landed in the input (to map boxes back)."""
    import io

    from PIL import Image, UnidentifiedImageError

    source = io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else Path(path)
    path = Path("the uploaded image") if isinstance(source, io.BytesIO) else source
    _pil_warning_filters(Image)
    try:
        with Image.open(source) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise BadInput(
                    f"image {path.name} is {image.width}x{image.height}, larger than "
                    f"{MAX_IMAGE_PIXELS // 1_000_000} Mpx (refused as a possible decompression bomb)"
                )
            return prepare_image(image, spec, path.name)
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise BadInput(f"cannot read image {path.name}: {str(err).splitlines()[0]}") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadInput(f"cannot read image {path.name}: corrupt or truncated ({err})") from None


def prepare_image(image, spec: ImageSpec, name: str = "image") -> tuple[np.ndarray, Placement]:
    """A PIL image -> (float32 [H, W, C] normalised by spec.preset, its Placement): colour, fit, normalise."""
    norm = spec.normalization()
    image = _convert(image, Path(name), "L" if spec.channels == 1 else "RGB")
    image, placement = fit_image(image, spec)
    pixels = np.asarray(image, dtype=np.float32)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if norm.channel_order == "BGR":
        pixels = np.ascontiguousarray(pixels[..., ::-1])
    if any(norm.mean):  # pixels is a new float32 array: normalised in place; no pass for a 0 mean or a 1 std
        pixels -= np.asarray(norm.mean, np.float32)
    if any(std != 1 for std in norm.std):
        pixels /= np.asarray(norm.std, np.float32)
    return pixels, placement
