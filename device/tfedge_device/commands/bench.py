"""`tfedge-run bench MODEL [--threads N] [--runs N] [--warmup N] [--edgetpu] [--input-shape NAME:DIMS] [--json]`:
latency and memory. A dynamic input needs --input-shape (or a default in the manifest; a dynamic batch is 1).

Measured by tfedge_device.bench (benchmark_model's method: init, first inference, warm-up, timed runs;
count/first/min/max/avg/std and p50/p90/p99 in microseconds; peak memory, which is approximate).
"""

from __future__ import annotations

import json

from .options import add_input_shape, add_model, positive, take_model


def add_arguments(parser) -> None:
    add_model(parser, "The .tflite model (or a bundle).")
    parser.add_argument(
        "--threads", type=positive, default=None, help="Interpreter threads (default: runtime's)."
    )
    parser.add_argument("--runs", type=positive, default=50, help="Timed runs (default 50).")
    parser.add_argument(
        "--warmup", type=int, default=5, help="Warm-up runs before the timed ones (default 5)."
    )
    parser.add_argument("--edgetpu", action="store_true", help="Run on the Edge TPU delegate (libedgetpu).")
    add_input_shape(parser)
    parser.add_argument(
        "--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only."
    )


def run(args) -> int:
    from ..bench import benchmark, format_result
    from ..bundle import resolve_model_args

    take_model(args)
    resolve_model_args(args)  # a bundle -> its checked model variant
    result = {
        "model": args.model,
        "threads": args.threads,
        **benchmark(
            args.model, runs=args.runs, warmup=args.warmup, threads=args.threads, edgetpu=args.edgetpu,
            input_shapes=args.input_shapes,
        ),
    }
    if args.as_json:
        print(json.dumps(result))
    else:
        print(f"{args.model} (threads {args.threads or 'default'})")
        print(format_result(result))
    return 0
