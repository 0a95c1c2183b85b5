"""`tfedge-run run MODEL --input FILE [--input NAME=FILE ...] [--output OUT.npz] [--json]`: any model,
tensors in, tensors out.

Inputs: .npy, .npz (keys = input names), .json (nested lists, or an object keyed by input name), .wav (PCM
8/16/24/32-bit -> float32 in [-1, 1); the sample rate is checked against the manifest's
preprocess.audio.sample_rate). NAME is an input's signature name or tensor name; an unnamed file feeds a
single-input model. Arrays are fitted to the input (a [N] wave feeds [1, N]); float data are quantized with
the input's scale/zero-point, data in a quantized input's own dtype are taken as raw values.

Several inputs in sequence (`--input a.npy --input b.npy`, or `--stream` to split arrays along their leading
time axis) run through ONE interpreter: a stateful model (resource variables, streaming keyword spotters)
keeps its state from step to step; --reset-state starts every step from the initial state. Outputs are named
by the model's signature (else tensor names), dequantized to float32; --output writes them to an .npz
(steps stacked on a leading axis; raw quantized outputs as NAME.raw). The ----INFERENCE TIME---- block goes to
stderr with --json, which prints the result alone on stdout.
"""

from __future__ import annotations

import json
import statistics
import sys

from .options import add_input_shape, add_model, positive, take_model

SHOWN_VALUES = 8  # values printed per output in the text layout


def add_arguments(parser) -> None:
    add_model(parser, "The .tflite model (its manifest MODEL.json beside it, if any), or a bundle.")
    parser.add_argument("-i", "--input", dest="inputs", action="append", default=[], metavar="[NAME=]FILE",
                        help="An input file (.npy .npz .json .wav), NAME=FILE for one input; repeat for a sequence.")
    parser.add_argument("-o", "--output", help="Write the outputs to this .npz.")
    parser.add_argument("--stream", action="store_true",
                        help="Split every input array along its leading (time) axis into steps.")
    parser.add_argument("--reset-state", action="store_true",
                        help="Start every step from the model's initial state (default: state carries over).")
    add_input_shape(parser)
    parser.add_argument("-c", "--count", type=positive, default=1,
                        help="Run the whole sequence this many times (state reset between); the first run of "
                             "the first step includes warm-up (default 1).")
    parser.add_argument("--threads", type=positive, default=None, help="Interpreter threads (default: runtime's).")
    parser.add_argument("--edgetpu", action="store_true", help="Run on the Edge TPU delegate (libedgetpu).")
    parser.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object on stdout only.")


def timing(result, steps: int) -> dict:
    runs = result.inference_ms
    return {"steps": steps, "inferences": len(runs), "first_inference_ms": round(runs[0], 3),
            "steady_median_ms": round(statistics.median(runs[1:]), 3) if len(runs) > 1 else None,
            "steady_runs": len(runs) - 1, "inference_ms": [round(ms, 3) for ms in runs]}


def print_timing(summary: dict, edgetpu: bool, stream) -> None:
    from .classify import EDGETPU_NOTE

    print("----INFERENCE TIME----", file=stream)
    if edgetpu:
        print(EDGETPU_NOTE, file=stream)
    if summary["inferences"] <= 10 and summary["steps"] == 1:  # pycoral's layout: each run
        for ms in summary["inference_ms"]:
            print(f"{ms:.2f}ms", file=stream)
        return
    steady = (f", then median {summary['steady_median_ms']:.2f}ms over {summary['steady_runs']} runs"
              if summary["steady_median_ms"] is not None else "")
    print(f"{summary['steps']} steps, {summary['inferences']} inferences: first "
          f"{summary['first_inference_ms']:.2f}ms (includes warm-up){steady}", file=stream)


def values_text(array) -> str:
    import numpy as np

    flat = np.asarray(array).reshape(-1)
    shown = " ".join(f"{v:.6g}" if flat.dtype.kind == "f" else str(v) for v in flat[:SHOWN_VALUES].tolist())
    return shown + (f" ... ({flat.size} values)" if flat.size > SHOWN_VALUES else "")


def report(model, manifest, steps, result, args) -> dict:
    return {
        "model": str(model.path), "runtime": f"{model.runtime.name} {model.runtime.version}",
        "edgetpu": model.edgetpu, "manifest": bool(manifest), "stateful": model.stateful,
        "reset_state": args.reset_state, "count": args.count,
        "inputs": [{"name": spec.key, "tensor": spec.name, "shape": list(steps[0][p].shape),
                    "dtype": spec.dtype.name} for p, spec in enumerate(model.inputs)],
        "outputs": [{name: {"shape": list(value.shape), "dtype": value.dtype.name, "values": value.tolist()}
                     for name, value in step.items()} for step in result.outputs],
        "output_file": args.output, "timing": timing(result, len(steps)),
    }


def write_npz(path, arrays: dict) -> None:
    import numpy as np

    from ..fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def run(args) -> int:
    from ..bundle import resolve_model_args
    from ..run import gather_steps, open_model, run_steps

    take_model(args)
    resolve_model_args(args)  # a bundle -> its checked model variant
    model, manifest = open_model(args.model, threads=args.threads, edgetpu=args.edgetpu)
    steps = gather_steps(model, args.inputs, stream=args.stream, manifest=manifest, input_shapes=args.input_shapes)
    result = run_steps(model, steps, reset_state=args.reset_state, count=args.count)
    if args.output:
        write_npz(args.output, result.stacked())
    summary = report(model, manifest, steps, result, args)
    if args.as_json:
        print(json.dumps(summary))
        print_timing(summary["timing"], model.edgetpu, sys.stderr)
        return 0
    state = ("state reset before each step" if args.reset_state else "state carried from step to step") \
        if model.stateful else "stateless"
    print(f"{model.path.name}: {len(steps)} step{'s' * (len(steps) != 1)} through one interpreter ({state})")
    for t, step in enumerate(result.outputs):
        for name, value in step.items():
            prefix = f"step {t} " if len(steps) > 1 else ""
            print(f"{prefix}{name} {list(value.shape)} {value.dtype.name}: {values_text(value)}")
    if args.output:
        print(f"wrote {args.output}")
    print_timing(summary["timing"], model.edgetpu, sys.stdout)
    return 0
