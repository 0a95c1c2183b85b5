"""Draw detected objects on their image with Pillow, and write it atomically (fileio)."""

from __future__ import annotations

import io
from pathlib import Path

from .errors import BadInput
from .fileio import write_bytes

# Ultralytics' colour palette (ultralytics/utils/plotting.py Colors), one colour per class id modulo its length.
PALETTE = ("FF3838", "FF9D97", "FF701F", "FFB21D", "CFD231", "48F90A", "92CC17", "3DDB86", "1A9334", "00D4BB",
           "2C99A8", "00C2FF", "344593", "6473FF", "0018EC", "8438FF", "520085", "CB38FF", "FF95C8", "FF37C7")


def colour(class_id: int) -> tuple:
    code = PALETTE[class_id % len(PALETTE)]
    return tuple(int(code[i:i + 2], 16) for i in (0, 2, 4))


def image_format(path: Path) -> str:
    """Pillow's format name for an output file name's suffix; BadInput for a suffix Pillow cannot write."""
    from PIL import Image

    formats = Image.registered_extensions()
    name = formats.get(path.suffix.lower())
    if name is None or name not in Image.SAVE:
        raise BadInput(f"cannot write an image named {path.name}: unknown image suffix {path.suffix!r}",
                       hint="name the output .jpg or .png")
    return name


def draw_objects(source, objects, out_path) -> Path:
    """Draw `objects` (detect.Object list) on the image file `source` and write it to `out_path`."""
    from PIL import Image

    out_path = Path(out_path)
    kind = image_format(out_path)
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    annotate(image, objects)
    data = io.BytesIO()
    image.save(data, format=kind)
    return write_bytes(out_path, data.getvalue())


def annotate(image, objects) -> None:
    """Draw `objects` (detect.Object list: box, label, score) on a PIL RGB image, in place."""
    from PIL import ImageDraw, ImageFont

    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    width = max(2, round(min(image.size) / 200))
    for obj in objects:
        fill = colour(obj.label_id)
        box = [round(v) for v in obj.box]
        draw.rectangle(box, outline=fill, width=width)
        text = f"{obj.label} {obj.score:.2f}"
        left, top, right, bottom = draw.textbbox((box[0], box[1]), text, font=font)
        lift = bottom - top + 2 * width if box[1] - (bottom - top) - 2 * width >= 0 else 0  # inside when no room
        draw.rectangle([left, top - lift, right + 2 * width, bottom - lift + width], fill=fill)
        draw.text((box[0] + width, box[1] - lift), text, fill=(255, 255, 255), font=font)
