"""The project's detector against issue 18's host goals, measured in one run.

Goals: float mAP@0.5 >= 0.90 on the held-out scenes; int8 drop <= 1 point; edgetpu mode with the whole network
mapped (only the post-processing op on the CPU, per `tfedge edgetpu check`'s pre-check).
Steps: compose --scenes held-out scenes and 100 training scenes (calibration) with models/detect/scenes.py;
convert models/detect/detector in float32, int8 and edgetpu modes (tfedge's pipeline); mAP of each with
`tfedge eval --task detection`'s code (pycocotools, through tfedge_device.detect); the pre-check on the edgetpu
model. Prints a table and the JSON; exit 4 when a goal is missed.

Usage: python tools/detect_goals.py [--scenes 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DETECT = ROOT / "models" / "detect"
MODES = ("float32", "int8", "edgetpu")
POSTPROCESS = "TFLite_Detection_PostProcess"


def measure(scenes_count: int, work: Path) -> dict:
    sys.path.insert(0, str(DETECT))
    import scenes

    from tfedge.analysis.detection_eval import evaluate_detection
    from tfedge.analysis.graph import read_graph
    from tfedge.convert.pipeline import ConvertRequest, convert
    from tfedge.edgetpu.check import check_graph

    scenes.write_split("heldout", scenes_count, work / "heldout")
    scenes.write_split("train", 100, work / "calib")
    rows = {}
    for mode in MODES:
        output = work / f"detector_{mode}.tflite"
        converted = convert(ConvertRequest(source=str(DETECT / "detector"), output=output, mode=mode,
                                           calib=str(work / "calib"), labels=DETECT / "labels.txt",
                                           show_progress=False))
        result = evaluate_detection(str(output), work / "heldout")
        rows[mode] = {"map_50": result["map_50"], "map_50_95": result["map_50_95"],
                      "size_mb": converted["size_bytes"] / 1e6, "verification": converted["verification"]}
    graph = read_graph(work / "detector_edgetpu.tflite")
    report = check_graph(graph)
    names = {op.index: op.name for op in graph.ops}  # the report names custom ops CUSTOM, as the compiler does
    cpu = [names[op["index"]] for op in report["ops"] if not op["on_tpu"]]
    drop = (rows["float32"]["map_50"] - rows["int8"]["map_50"]) * 100
    goals = {"float map_50 >= 0.90": rows["float32"]["map_50"] >= 0.90,
             "int8 drop <= 1 point": drop <= 1.0,
             "edgetpu: only the post-processing op on the CPU": cpu == [POSTPROCESS] and report["tpu_subgraphs"] == 1}
    return {"scenes": scenes_count, "objects": result["objects"], "rows": rows, "int8_drop_points": drop,
            "edgetpu_check": {"ops_on_tpu": report["ops_on_tpu"], "ops_total": report["ops_total"],
                              "tpu_subgraphs": report["tpu_subgraphs"], "cpu_ops": cpu},
            "goals": goals, "date": datetime.now(timezone.utc).isoformat(timespec="minutes")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=500)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as work:
        result = measure(args.scenes, Path(work))
    if not args.json:
        print(f"held-out: {result['scenes']} scenes, {result['objects']} digits\n")
        print("| mode | mAP@0.5 | mAP@0.5:0.95 | size (MB) | verification: detections found |")
        print("|---|---:|---:|---:|---:|")
        for mode, row in result["rows"].items():
            found = (row["verification"] or {}).get("detection_agreement")
            print(f"| {mode} | {row['map_50'] * 100:.2f} % | {row['map_50_95'] * 100:.2f} % | {row['size_mb']:.3f} | "
                  f"{'n/a' if found is None else f'{found * 100:.1f} %'} |")
        check = result["edgetpu_check"]
        print(f"\nint8 drop {result['int8_drop_points']:+.2f} points; edgetpu pre-check: {check['ops_on_tpu']} of "
              f"{check['ops_total']} ops on the TPU in {check['tpu_subgraphs']} subgraph, on the CPU: "
              f"{', '.join(check['cpu_ops'])}")
        for goal, met in result["goals"].items():
            print(f"{'met   ' if met else 'MISSED'} {goal}")
    print(json.dumps(result, indent=2 if args.json else None))
    sys.exit(0 if all(result["goals"].values()) else 4)


if __name__ == "__main__":
    main()
