"""`tfedge-run classify MODEL --input IMG [IMG|DIR ...]`: classify images, pycoral's classify_image style.
`tfedge-run classify MODEL --text "..." [--text ...] [--file F]`: classify texts with a sequence-classification
model (tokenized on the device with its bundled tokenizer.json; extra `tfedge-device[text]`).

Preprocessing and labels come from the manifest beside MODEL (MODEL.json, written by `tfedge convert`);
without one they are derived from the input tensor, and --preset/--resize/--labels override them.
One image: pycoral's layout (----INFERENCE TIME---- with each of --count runs, then -------RESULTS--------).
Several images or a folder: one line per image as it is classified, then the timing summary.
Inference times cover quantizing the input, invoke and dequantizing the output; preprocessing is timed apart.
"""

from __future__ import annotations

import json
import statistics

from .options import add_images, add_labels, add_model, add_preprocess, add_runs, positive, take_model

EDGETPU_NOTE = (
    "Note: The first inference on Edge TPU is slow because it includes loading the model "
    "into Edge TPU memory."
)


def add_arguments(parser) -> None:
    add_model(parser, "The .tflite model (its manifest MODEL.json beside it), or a bundle.")
    add_images(parser)
    parser.add_argument("--text", action="append", default=[], help="A text (repeat for several): text classifiers.")
    parser.add_argument("--file", help="A UTF-8 file of texts, one a line: text classifiers.")
    add_labels(parser)
    parser.add_argument(
        "-k", "--top-k", type=positive, default=5, help="Classes shown per image (default 5)."
    )
    parser.add_argument(
        "-t", "--threshold", type=float, default=0.1, help="Minimum score shown (default 0.1)."
    )
    add_runs(parser)
    add_preprocess(parser)


def summarize(results, noun: str = "images") -> dict:
    """First inference (it includes warm-up) and the steady state: every later run, as medians in ms."""
    runs = [t for result in results for t in result.inference_ms]
    return {
        noun: len(results),
        "first_inference_ms": round(runs[0], 3),
        "steady_median_ms": round(statistics.median(runs[1:]), 3) if len(runs) > 1 else None,
        "steady_runs": len(runs) - 1,
        "preprocess_median_ms": round(statistics.median(r.preprocess_ms for r in results), 3),
    }


def classes_text(result) -> str:
    return " | ".join(f"{c.label}: {c.score:.5f}" for c in result.classes) or "(no class above the threshold)"


def print_single(result, edgetpu: bool, lines: list[str] | None = None) -> None:
    """pycoral's classify_image/detect_image layout: each run's time, then the result `lines` (default: the
    classes)."""
    print("----INFERENCE TIME----")
    if edgetpu:
        print(EDGETPU_NOTE)
    for ms in result.inference_ms:
        print(f"{ms:.2f}ms")
    print("-------RESULTS--------")
    for line in lines if lines is not None else (f"{c.label}: {c.score:.5f}" for c in result.classes):
        print(line)


def print_line(result) -> None:
    times = result.inference_ms
    timing = (
        f"{times[0]:.2f}ms"
        if len(times) == 1
        else (f"first {times[0]:.2f}ms, then avg {statistics.fmean(times[1:]):.2f}ms")
    )
    print(f"{result.name}: {timing} | {classes_text(result)}", flush=True)


def print_summary(summary: dict, edgetpu: bool, noun: str = "images") -> None:
    print("----INFERENCE TIME----")
    if edgetpu:
        print(EDGETPU_NOTE)
    steady = (
        f", then median {summary['steady_median_ms']:.2f}ms over {summary['steady_runs']} runs"
        if summary["steady_median_ms"] is not None
        else ""
    )
    print(
        f"{summary[noun]} {noun}: first {summary['first_inference_ms']:.2f}ms (includes warm-up){steady}; "
        f"{'tokenizing' if noun == 'texts' else 'preprocessing'} median {summary['preprocess_median_ms']:.2f}ms"
    )


def image_items(args):
    """(Classifier, image paths) for --input."""
    from ..classify import Classifier
    from ..errors import BadInput
    from ..preprocess import list_images

    classifier = Classifier(args.model, threads=args.threads, edgetpu=args.edgetpu, labels=args.labels,
                            preset=args.preset, resize=args.resize)
    images = list_images(args.input)
    if not images:
        raise BadInput(f"no images found in {' '.join(args.input)}")
    return classifier, images


def text_items(args):
    """(TextClassifier, texts) for --text/--file."""
    from ..errors import BadInput
    from ..text import TextClassifier
    from .embed import read_texts

    image_only = [flag for flag, value in (("--edgetpu", args.edgetpu), ("--preset", args.preset),
                                           ("--resize", args.resize)) if value]
    if image_only:
        raise BadInput(f"{', '.join(image_only)} applies to image models, not to --text")
    return TextClassifier(args.model, threads=args.threads, labels=args.labels), read_texts(args)


def run(args) -> int:
    from ..bundle import resolve_model_args
    from ..errors import BadInput

    take_model(args)
    text = bool(args.text or args.file)
    if text == bool(args.input):
        raise BadInput("give --input or --text/--file, not both" if text else "nothing to classify",
                       hint='--input IMG|DIR for an image model; --text "..." or --file F for a text classifier')
    resolve_model_args(args, edgetpu_allowed=not text)  # a bundle -> its checked model variant
    classifier, items = text_items(args) if text else image_items(args)
    noun = "texts" if text else "images"
    single = len(items) == 1 and not args.as_json
    results = []
    for item in items:
        results.append(classifier.classify(item, args.top_k, args.threshold, args.count))
        if not args.as_json and not single:
            print_line(results[-1])
    summary = summarize(results, noun)
    if args.as_json:
        print(json.dumps({**classifier.describe(), "top_k": args.top_k, "threshold": args.threshold,
                          "count": args.count, "results": [r.to_dict() for r in results], "summary": summary}))
    elif single:
        print_single(results[0], args.edgetpu)
    else:
        print_summary(summary, args.edgetpu, noun)
    return 0
