"""The project's detector on the host: the committed SSD (models/detect/detector, trained by models/detect/train.py,
not here) converted with its TFLite_Detection_PostProcess op kept, int8 and edgetpu modes with the whole network
on the Edge TPU (per `tfedge edgetpu check`), COCO mAP of the converted models on held-out scenes of real
digits on real photos (models/detect/scenes.py), and bad input to `tfedge eval --task detection`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import ROOT, assert_clean_error

DETECT = ROOT / "models" / "detect"
sys.path.insert(0, str(DETECT))
import scenes  # models/detect/scenes.py: the scene generator beside the model

POSTPROCESS = "TFLite_Detection_PostProcess"
HELD_OUT = 120  # scenes; the full 500-scene figures are in docs/detection.md
MAP50_FLOOR = 0.85  # float mAP@0.5 on these 120 held-out scenes is 0.90 (0.92 on 500); a broken model is < 0.1


@pytest.fixture(scope="module")
def scene_dirs(tmp_path_factory):
    """(held-out scenes with COCO annotations.json, training scenes for calibration)."""
    root = tmp_path_factory.mktemp("scenes")
    scenes.write_split("heldout", HELD_OUT, root / "heldout")
    scenes.write_split("train", 64, root / "calib")
    return root / "heldout", root / "calib"


@pytest.fixture(scope="module")
def converted(scene_dirs, tmp_path_factory):
    """The committed detector in float32, int8 and edgetpu modes (library calls, as the CLI makes them)."""
    from tfedge.convert.pipeline import ConvertRequest, convert

    out = tmp_path_factory.mktemp("detector")
    models = {}
    for mode in ("float32", "int8", "edgetpu"):
        models[mode] = out / f"detector_{mode}.tflite"
        convert(ConvertRequest(source=str(DETECT / "detector"), output=models[mode], mode=mode,
                               calib=str(scene_dirs[1]), labels=DETECT / "labels.txt", verify_count=12,
                               budgets={"min_detection_agreement": 0.9}, show_progress=False))  # met
    return models


def _ops(path: Path) -> list[str]:
    """The model's operators in execution order (the flatbuffer's, not the XNNPACK delegate's node)."""
    from tfedge.analysis.graph import read_graph

    return [op.name for op in read_graph(path).ops]


def test_int8_keeps_the_postprocess_op_fed_by_the_network(converted):
    ops = _ops(converted["int8"])
    assert ops.count(POSTPROCESS) == 1 and ops[-1] == POSTPROCESS
    assert "DEQUANTIZE" not in ops  # rewired to QUANTIZE int8->uint8: the op reads uint8 itself
    manifest = json.loads(converted["int8"].with_suffix(".json").read_text())
    assert manifest["task"] == "object-detection"
    assert manifest["detection"]["num_classes"] == 10 and manifest["detection"]["postprocess"] == POSTPROCESS
    assert {o["dtype"] for o in manifest["outputs"]} == {"float32"}  # boxes and scores stay float
    assert manifest["inputs"][0]["dtype"] == "int8"
    check = manifest["verification"]  # detections matched to the SavedModel's own (TensorFlow decode + NMS)
    assert check["detections_compared"] >= 12 and check["detection_agreement"] >= 0.9
    assert check["box_iou_mean"] > 0.9


def test_a_detection_budget_not_met_is_exit_4_and_writes_nothing(tfedge, scene_dirs, tmp_path):
    out = tmp_path / "detector.tflite"
    args = ("convert", DETECT / "detector", "-o", out, "--calib", scene_dirs[1], "--calib-count", "16",
            "--verify-count", "6")
    result = tfedge(*args, "--quant", "int8", "--min-detection-agreement", "1.01")  # no share exceeds 1
    assert_clean_error(result, 4, "detection agreement", "misses the budget 1.01")
    assert not out.exists() and not out.with_suffix(".json").exists()
    result = tfedge(*args, "--quant", "auto", "--min-detection-agreement", "0.9")
    assert_clean_error(result, 2, "--quant auto searches on cosine", "--min-detection-agreement")
    assert not out.exists()


def test_float32_finds_the_savedmodels_detections_exactly(converted):
    check = json.loads(converted["float32"].with_suffix(".json").read_text())["verification"]
    assert check["detection_agreement"] == 1.0 and check["box_iou_mean"] > 0.999


def test_edgetpu_check_maps_the_network_and_leaves_only_the_postprocess_op_on_the_cpu(tfedge, converted):
    result = tfedge("edgetpu", "check", converted["edgetpu"], "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    cpu = [op for op in report["ops"] if not op["on_tpu"]]
    assert [op["op"] for op in cpu] == ["CUSTOM"]  # named as the compiler's log names a custom op
    assert cpu[0]["reasons"][0] == f"custom op {POSTPROCESS}" and cpu[0]["index"] == report["ops_total"] - 1
    assert report["tpu_subgraphs"] == 1 and report["ops_on_tpu"] == report["ops_total"] - 1 >= 15


def _map(tfedge, model, data, *extra):
    result = tfedge("eval", model, "--task", "detection", "--data", data, "--json", *extra)
    assert result.returncode == 0, result
    return json.loads(result.stdout)


def test_map_of_float_and_int8_on_held_out_scenes(tfedge, converted, scene_dirs):
    floating = _map(tfedge, converted["float32"], scene_dirs[0])
    int8 = _map(tfedge, converted["int8"], scene_dirs[0])
    assert floating["samples"] == int8["samples"] == HELD_OUT and floating["objects"] > HELD_OUT
    assert floating["layout"]["layout"] == "ssd-postprocess"
    assert floating["map_50"] >= MAP50_FLOOR
    assert 0.5 < floating["map_50_95"] < floating["map_50"]
    assert int8["map_50"] >= floating["map_50"] - 0.02  # int8 drop on real scenes: at most 2 points


def test_map_limit_reads_fewer_images(tfedge, converted, scene_dirs):
    few = _map(tfedge, converted["int8"], scene_dirs[0], "--limit", "10")
    assert few["samples"] == 10 and 10 <= few["objects"] <= 40


def test_eval_detection_on_a_classifier_is_bad_input(tfedge, digits_float, scene_dirs):
    result = tfedge("eval", digits_float, "--task", "detection", "--data", scene_dirs[0])
    assert_clean_error(result, 2, "image-classification", "not an object detector")


def test_eval_detection_on_the_source_is_bad_input(tfedge, scene_dirs):
    result = tfedge("eval", DETECT / "detector", "--task", "detection", "--data", scene_dirs[0])
    assert_clean_error(result, 2, "converted models", "convert it first")


def test_eval_detection_without_ground_truth_is_bad_input(tfedge, converted, tmp_path):
    result = tfedge("eval", converted["int8"], "--task", "detection", "--data", tmp_path)
    assert_clean_error(result, 2, "annotations.json")


def test_requantize_leaves_a_model_without_the_op_as_it_is(digits_int8):
    from tfedge.convert.detection import requantize_postprocess_inputs

    data = digits_int8.read_bytes()
    assert requantize_postprocess_inputs(data) == (data, 0)
