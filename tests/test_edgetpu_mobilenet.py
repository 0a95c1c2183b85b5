"""`--quant edgetpu` on keras-app:MobileNetV2 (random weights, 96x96 input) is predicted fully mapped.

Calibration uses random image-like data generated here: only the op mapping is under test, not accuracy
(no weights can be downloaded on this machine). About a minute: marked slow.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tfedge.edgetpu import rules


@pytest.mark.slow
def test_mobilenet_v2_edgetpu_fully_mapped(tfedge, tmp_path):
    calib = tmp_path / "random_images.npy"
    np.save(calib, np.random.default_rng(0).random((8, 96, 96, 3), dtype=np.float32))
    out = tmp_path / "mobilenet_v2_edgetpu.tflite"
    result = tfedge("convert", "keras-app:MobileNetV2", "--weights", "none", "--input-shape", "1,96,96,3",
                    "-o", out, "--quant", "edgetpu", "--calib", calib, "--verify-count", "2", "-q")
    assert result.returncode == 0, result
    assert "Edge TPU pre-check" not in result.stderr  # no partial-mapping warning
    result = tfedge("edgetpu", "check", out, "--json")
    assert result.returncode == 0, result
    report = json.loads(result.stdout)
    assert report["fully_mapped"] and report["tpu_subgraphs"] == 1
    assert report["share_ops_on_tpu"] == 1.0 and report["share_macs_on_tpu"] == 1.0
    ops = {op["op"] for op in report["ops"]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MEAN", "FULLY_CONNECTED", "SOFTMAX"} <= ops
    assert {op["status"] for op in report["ops"]} == {rules.MAPPED}
    assert report["macs_total"] > 50_000_000  # MobileNetV2 1.0 at 96x96: about 56 M MACs
