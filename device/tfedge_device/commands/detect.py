"""`tfedge-run detect MODEL --input IMG [IMG|DIR ...]`: detect objects, pycoral's detect_image style.

The output layout is recognised from the model: SSD (the TFLite_Detection_PostProcess op), a YOLO grid
(decoded and class-aware NMS here), or an end-to-end (1, N, 6) output; see docs/detection.md.
Boxes are printed as (xmin, ymin, xmax, ymax) in the original image's pixels.
One image: ----INFERENCE TIME---- with each of --count runs, then -------RESULTS-------- one line per object.
Several images or a folder: a line per image, its objects indented below, then the timing summary.
--output draws the boxes: a file for one image, a folder (created) for several. Nothing is drawn when an
image fails.
"""

from __future__ import annotations

import json
from pathlib import Path

from .classify import print_single, print_summary, summarize
from .options import add_images, add_labels, add_model, add_preprocess, add_runs, positive, take_model


def add_arguments(parser) -> None:
    from ..nms import IOU_THRESHOLD
    from ..preprocess import FITS

    add_model(parser, "The .tflite detection model (its manifest MODEL.json beside it), or a bundle.")
    add_images(parser, required=True)
    add_labels(parser)
    parser.add_argument("-k", "--top-k", type=positive, default=100, help="Objects shown per image (default 100).")
    parser.add_argument("-t", "--threshold", type=float, default=0.4, help="Minimum score (default 0.4).")
    parser.add_argument("--iou", type=float, default=IOU_THRESHOLD,
                        help=f"NMS IoU threshold for YOLO outputs (default {IOU_THRESHOLD}).")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="Draw the boxes: an image file (one input) or a folder (several).")
    add_runs(parser)
    add_preprocess(parser)
    parser.add_argument("--fit", choices=FITS,
                        help="Override how images are fitted to the input (default: manifest's, else per layout).")


def box_text(obj) -> str:
    return f"{obj.label}: {obj.score:.5f} ({obj.box.xmin:.1f}, {obj.box.ymin:.1f}, {obj.box.xmax:.1f}, " \
           f"{obj.box.ymax:.1f})"


def print_image(result) -> None:
    times = result.inference_ms
    timing = f"{times[0]:.2f}ms" if len(times) == 1 else f"first {times[0]:.2f}ms, then {len(times) - 1} more"
    print(f"{result.image}: {timing} | {len(result.objects)} objects", flush=True)
    for obj in result.objects:
        print(f"  {box_text(obj)}")


def output_paths(output: str, images: list) -> list[Path]:
    """Where each drawn image goes: OUT itself for one image (unless OUT is a folder), else OUT/<name>."""
    from ..errors import BadInput

    out = Path(output)
    if len(images) == 1 and not out.is_dir():
        return [out]
    if out.exists() and not out.is_dir():
        raise BadInput(f"--output {out} is a file; several images need a folder")
    names, paths = set(), []
    for image in images:
        name, n = image.name, 1
        while name in names:  # same name in two input folders
            n += 1
            name = f"{image.stem}_{n}{image.suffix}"
        names.add(name)
        paths.append(out / name)
    return paths


def run(args) -> int:
    from ..bundle import resolve_model_args
    from ..detect import Detector
    from ..draw import draw_objects, image_format
    from ..errors import BadInput
    from ..preprocess import list_images

    take_model(args)
    resolve_model_args(args)
    detector = Detector(args.model, threads=args.threads, edgetpu=args.edgetpu, labels=args.labels,
                        preset=args.preset, resize=args.resize, fit=args.fit)
    images = list_images(args.input)
    if not images:
        raise BadInput(f"no images found in {' '.join(args.input)}")
    targets = output_paths(args.output, images) if args.output else []
    for target in targets:
        image_format(target)  # refuse an unwritable suffix before any work
    single = len(images) == 1 and not args.as_json
    results = []
    for image in images:
        results.append(detector.detect(image, args.threshold, args.top_k, args.iou, args.count))
        if not args.as_json and not single:
            print_image(results[-1])
    if targets:
        if len(images) > 1:
            targets[0].parent.mkdir(exist_ok=True)
        for image, result, target in zip(images, results, targets):
            draw_objects(image, result.objects, target)
    summary = summarize(results)
    if args.as_json:
        print(json.dumps({**detector.describe(), "threshold": args.threshold, "top_k": args.top_k,
                          "iou": args.iou, "count": args.count, "results": [r.to_dict() for r in results],
                          "summary": summary, "drawn": [str(t) for t in targets]}))
    elif single:
        objects = results[0].objects
        print_single(results[0], args.edgetpu, [box_text(o) for o in objects] or ["(no object above the threshold)"])
    else:
        print_summary(summary, args.edgetpu)
    return 0
