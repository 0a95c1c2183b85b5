"""`tfedge-run stream MODEL --video FILE | --camera N [--task classify|detect] [--every K] [--output OUT.avi]
[--json-lines]`: frames from a video file or a camera through a classifier or a detector, capture, inference
and drawing pipelined on separate threads; results as JSON lines (frame index, timestamp, results) and the
frame rate achieved. Needs OpenCV: `pip install 'tfedge-device[stream]'`.
"""

from __future__ import annotations

import argparse

from .options import add_labels, add_model, positive, take_model


def add_arguments(parser) -> None:
    add_model(parser, "The .tflite classifier or detector (its manifest beside it), or a bundle.")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--video", metavar="FILE", help="A video file (anything OpenCV decodes: mp4, avi, mkv ...).")
    source.add_argument("--camera", type=int, metavar="N", help="Camera N (/dev/videoN).")
    parser.add_argument("--task", choices=("classify", "detect"),
                        help="Default: the manifest's task (detection -> detect), else classify.")
    parser.add_argument("--every", type=positive, default=1, help="Process every K-th frame (default 1).")
    parser.add_argument("--max-frames", type=positive, help="Stop after this many processed frames.")
    parser.add_argument("-o", "--output", metavar="OUT", help="Write the annotated video (.avi MJPG or .mp4).")
    parser.add_argument("--json-lines", action="store_true", help="One JSON object per processed frame on stdout.")
    add_labels(parser)
    parser.add_argument("-k", "--top-k", type=positive, default=None, help="Classes/objects per frame.")
    parser.add_argument("-t", "--threshold", type=float, default=None, help="Minimum score.")
    parser.add_argument("--threads", type=positive, default=None, help="Interpreter threads (default: runtime's).")
    parser.add_argument("--sequential", action="store_true", help=argparse.SUPPRESS)  # the benchmark's baseline


def run(args) -> int:
    import json
    import sys
    from pathlib import Path

    from ..bundle import resolve_model_args
    from ..errors import BadInput
    from ..stream import Stream, cv2_module, json_lines, open_capture

    take_model(args)
    if args.video is None and args.camera is None:
        raise BadInput("no frames to read: give --video FILE or --camera N")
    cv2_module()  # exit 3 with the install hint before loading anything
    resolve_model_args(args, edgetpu_allowed=False)
    from ..detect import TASK as DETECTION
    from ..manifest import find_manifest

    manifest, _ = find_manifest(Path(args.model))
    task = args.task or ("detect" if (manifest or {}).get("task") == DETECTION else "classify")
    if task == "detect":
        from ..detect import Detector

        runner = Detector(args.model, threads=args.threads, labels=args.labels)
    else:
        from ..classify import Classifier

        runner = Classifier(args.model, threads=args.threads, labels=args.labels)
    given = {"threshold": args.threshold, "top_k": args.top_k}
    options = {key: value for key, value in given.items() if value is not None}  # else the task's DEFAULTS
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in (".avi", ".mp4"):
        raise BadInput(f"cannot write a video named {output.name}: name it .avi (MJPG) or .mp4")
    capture = open_capture(args.video, args.camera)
    stream = Stream(capture, runner, task, args.every, args.max_frames, output,
                    json_lines() if args.json_lines else _human_line, options)
    result = stream.run(pipelined=not args.sequential)
    summary = result.to_dict()
    print(f"{summary['frames_processed']} frames in {summary['seconds']:.2f} s: {summary['fps']:.1f} frames/s "
          f"({'sequential' if args.sequential else 'pipelined'}; per frame: " +
          ", ".join(f"{k} {v:.2f} ms" for k, v in summary["stage_ms_per_frame"].items()) + ")", file=sys.stderr)
    if args.json_lines:
        print(json.dumps({"summary": summary}), file=sys.stderr)
    return 0


def _human_line(record: dict) -> None:
    results = record["results"]
    if results and "box" in results[0]:
        text = ", ".join(f"{r['label']} {r['score']:.2f} {r['box']}" for r in results) or "(no object)"
    else:
        text = ", ".join(f"{r['label']} {r['score']:.2f}" for r in results) or "(no class above the threshold)"
    print(f"frame {record['frame']} {record['timestamp_ms']:.0f} ms: {text}", flush=True)
