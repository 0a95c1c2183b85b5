"""How far keras-hub's RetinaNet converts to TFLite: the network, and the network with its decoding + NMS.

keras-hub ships RetinaNetObjectDetector (and D-FINE); no weights can be downloaded here, so the model is built
from a small ResNet image encoder with random weights: what converts does not depend on the weights. Each row is
one real TFLite conversion (TF 2.21's converter); a failure prints the converter's own first error line.

Rows:
  network float32 / int8       model(images) -> box regression + class logits (what an SSD-style export keeps)
  decoded float32 / int8       + keras-hub's decode_predictions: anchors, delta decoding, NonMaxSuppression
  decoded int8 builtins only   the same, TFLITE_BUILTINS_INT8 only (what --quant int8/edgetpu ask for)
  decoded, no NMS              anchors + delta decoding + sigmoid, without keras-hub's NonMaxSuppression
  decoded flex                 with SELECT_TF_OPS (TensorFlow kernels in the model): does LiteRT load it?
  network + TFLite_Detection_PostProcess   keras-hub's decoding re-expressed as the op (composite_function)
Each graph frozen (variables folded into constants, as tfedge converts Keras 3 sources) or live (variables kept).

Inputs (calibration, the comparison image) are uniform in [0, 1]: the model takes images its preprocessor
(ImageConverter) has already rescaled; raw 0..255 pixels through random weights give box deltas of +-4000, whose
exp() overflows to inf in the decode and crashes the converter's calibration ("scale out of expressed type range",
then SIGSEGV).

Usage: python tools/retinanet_convert.py [--size 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time


def build(size: int):
    import keras_hub

    encoder = keras_hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 64, 64, 64],
        stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2], block_type="basic_block",
        image_shape=(size, size, 3))
    backbone = keras_hub.models.RetinaNetBackbone(image_encoder=encoder, min_level=3, max_level=5, use_p5=False,
                                                  image_shape=(size, size, 3))
    return keras_hub.models.RetinaNetObjectDetector(backbone=backbone, num_classes=10,
                                                    bounding_box_format="yxyx")


def convert(function, size: int, quant: str, builtins_only, freeze: bool, model):
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec([1, size, size, 3], tf.float32)
    concrete = tf.function(function).get_concrete_function(spec)
    if freeze:  # what tfedge does for Keras 3 sources (the calibrator cannot read resource variables)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([convert_variables_to_constants_v2(concrete)])
    else:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], model)
    if quant == "int8":
        rng = np.random.default_rng(0)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([rng.uniform(0, 1, (1, size, size, 3)).astype(np.float32)]
                                                     for _ in range(8))
        if builtins_only:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if builtins_only == "flex":  # TensorFlow kernels inside the model (needs the Flex delegate to run)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    return converter.convert()


def composite_function(model, size: int):
    """keras-hub's decoding expressed as the TFLite_Detection_PostProcess op: its deltas are center_xywh with no
    variance (keras.utils.bounding_boxes.decode_deltas_to_boxes: centre = delta * anchor size + anchor centre,
    size = exp(delta) * anchor size), i.e. the op's coder with scales 1 once reordered to (y, x, h, w); scores are
    sigmoid(cls_logits); anchors from the model's AnchorGenerator, as (ycenter, xcenter, h, w) / image size.
    The network is frozen first and the composite called after it (tfedge.convert.detection)."""
    import numpy as np
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tfedge.convert.detection import postprocess_composite

    spec = tf.TensorSpec([1, size, size, 3], tf.float32)
    images = np.zeros((1, size, size, 3), np.float32)
    levels = model.anchor_generator(images)
    yxyx = np.concatenate([np.asarray(levels[key]) for key in levels], 0) / size
    anchors = np.stack([(yxyx[:, 0] + yxyx[:, 2]) / 2, (yxyx[:, 1] + yxyx[:, 3]) / 2, yxyx[:, 2] - yxyx[:, 0],
                        yxyx[:, 3] - yxyx[:, 1]], -1).astype(np.float32)

    def network(image):
        out = model(image, training=False)
        deltas = out["bbox_regression"]  # (x, y, w, h) -> (y, x, h, w): slices and a concat, no GATHER
        encodings = tf.concat([deltas[..., 1:2], deltas[..., 0:1], deltas[..., 3:4], deltas[..., 2:3]], -1)
        return encodings, tf.sigmoid(out["cls_logits"])

    frozen = convert_variables_to_constants_v2(tf.function(network).get_concrete_function(spec))
    composite = postprocess_composite({"max_detections": 100, "max_classes_per_detection": 1,
                                       "use_regular_nms": False, "nms_score_threshold": 0.0,
                                       "nms_iou_threshold": 0.5, "y_scale": 1.0, "x_scale": 1.0, "h_scale": 1.0,
                                       "w_scale": 1.0, "num_classes": model.num_classes})

    module = tf.Module()  # the converter's trackable: without one it takes its deprecated path, which freezes
    module.anchors = tf.constant(anchors)  # the function and inlines the composite (NMS builtins, no op)

    @tf.function(input_signature=[spec])
    def serve(image):
        encodings, scores = frozen(image)
        return composite(encodings, scores, module.anchors)

    module.serve = serve
    return serve.get_concrete_function(), module


def keras_hub_boxes(model, image):
    """Every anchor's box as keras-hub decodes it (before its NMS), normalised (ymin, xmin, ymax, xmax)."""
    import keras
    import numpy as np

    out = model(image, training=False)
    levels = model.anchor_generator(image)
    anchors = keras.ops.concatenate(list(levels.values()), axis=0)
    boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
        anchors=anchors, boxes_delta=out["bbox_regression"], encoded_format="center_xywh",
        anchor_format=model.anchor_generator.bounding_box_format, box_format="yxyx", image_shape=image.shape[1:])
    return np.asarray(boxes)[0] / image.shape[1]


def composite_rows(model, size: int, quants=("float32", "int8")) -> list[dict]:
    """The composite export in float32 and int8 (+ tfedge's uint8 feed of the op), its Edge TPU placement, and
    whether each box the op outputs is one of keras-hub's own decoded boxes."""
    import numpy as np
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from tfedge.analysis.graph import graph_from_bytes
    from tfedge.convert.detection import requantize_postprocess_inputs
    from tfedge.edgetpu.check import check_graph

    concrete, module = composite_function(model, size)
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (1, size, size, 3)).astype(np.float32)
    reference = keras_hub_boxes(model, image)
    rows = []
    for quant in quants:
        started = time.perf_counter()
        row = {"graph": "network + TFLite_Detection_PostProcess", "quant": quant, "builtins_int8_only": quant == "int8",
               "frozen": "network only"}
        try:
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
            if quant == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: (
                    [rng.uniform(0, 1, (1, size, size, 3)).astype(np.float32)] for _ in range(8))
                converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
                converter.inference_input_type = tf.uint8
            data = converter.convert()
            if quant == "int8":
                data, _ = requantize_postprocess_inputs(data)
            interpreter = Interpreter(model_content=data)
            interpreter.allocate_tensors()
            detail = interpreter.get_input_details()[0]
            value = image
            if detail["dtype"] == np.uint8:
                scale, zero = detail["quantization"]
                value = np.clip(np.round(image / scale + zero), 0, 255).astype(np.uint8)
            out = interpreter.get_signature_runner()(image=value) if interpreter.get_signature_list() else None
            boxes = out[max(out, key=lambda k: np.asarray(out[k]).ndim)][0] if out else None
            count = int(np.count_nonzero(np.abs(boxes).sum(-1))) if boxes is not None else 0
            gaps = [float(np.abs(reference - box).max(-1).min()) for box in boxes[:count]] if count else []
            report = check_graph(graph_from_bytes(data))
            row.update(ok=True, size_mb=round(len(data) / 1e6, 3),
                       ops=sorted({op.name for op in graph_from_bytes(data).ops}),
                       boxes=count, max_gap_to_keras_hub_box=round(max(gaps), 5) if gaps else None,
                       edgetpu={"ops_on_tpu": report["ops_on_tpu"], "ops_total": report["ops_total"],
                                "subgraphs": report["tpu_subgraphs"],
                                "cpu_ops": sorted({op["op"] for op in report["ops"] if not op["on_tpu"]}),
                                "first_cpu_op": {k: (report["first_cpu_op"] or {}).get(k)
                                                 for k in ("index", "op", "status", "reasons")}})
        except Exception as err:  # noqa: BLE001 - every converter failure is a row of the table
            row.update(ok=False, error=f"{type(err).__name__}: {first_error(str(err))}")
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
    return rows


def first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line.lower():
            return line[line.lower().index("error:") + 6:].strip()[:400]
    return " ".join(text.split())[:400]


# (graph, quant, ops: False | True (TFLITE_BUILTINS_INT8 only) | "flex", frozen)
ROWS = (("network", "float32", False, True), ("network", "int8", True, True),
        ("decoded, no NMS", "float32", False, True), ("decoded, no NMS", "int8", True, True),
        ("decoded", "float32", False, True), ("decoded", "int8", True, True),
        ("decoded", "float32", False, False), ("decoded", "int8", False, False), ("decoded", "int8", True, False),
        ("decoded", "float32", "flex", False),
        ("network + TFLite_Detection_PostProcess", "float32", False, "network only"),
        ("network + TFLite_Detection_PostProcess", "int8", True, "network only"))


def graphs(model, size: int) -> dict:
    import keras
    import tensorflow as tf

    def network(images):
        out = model(images, training=False)
        return out["bbox_regression"], out["cls_logits"]

    def decoded(images):
        out = model.decode_predictions(model(images, training=False), images)
        return out["boxes"], out["confidence"], out["labels"], out["num_detections"]

    def decoded_no_nms(images):
        out = model(images, training=False)
        anchors = tf.concat(list(model.anchor_generator(images).values()), 0)
        boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
            anchors=anchors, boxes_delta=out["bbox_regression"], encoded_format="center_xywh",
            anchor_format=model.anchor_generator.bounding_box_format, box_format="yxyx",
            image_shape=(size, size, 3))
        return boxes, tf.sigmoid(out["cls_logits"])

    return {"network": network, "decoded": decoded, "decoded, no NMS": decoded_no_nms}


def run_row(index: int, size: int) -> dict:
    """One row, in this process (main() runs each in a child: the converter can crash the process)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfedge.analysis.graph import graph_from_bytes

    name, quant, ops, freeze = ROWS[index]
    model = build(size)
    if freeze == "network only":
        return composite_rows(model, size, (quant,))[0]
    row = {"graph": name, "quant": quant, "ops_allowed": {False: "default", True: "int8 only", "flex": "flex"}[ops],
           "frozen": freeze}
    try:
        data = convert(graphs(model, size)[name], size, quant, ops, freeze, model)
        row.update(ok=True, size_mb=round(len(data) / 1e6, 3), ops=sorted({op.name for op in graph_from_bytes(data).ops}))
        try:
            Interpreter(model_content=data).allocate_tensors()
            row["loads_in_litert"] = True
        except (RuntimeError, ValueError) as err:
            row["loads_in_litert"] = f"no: {first_error(str(err))}"
    except Exception as err:  # noqa: BLE001 - every converter failure is a row of the table
        row.update(ok=False, error=f"{type(err).__name__}: {first_error(str(err))}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--row", type=int, help=argparse.SUPPRESS)  # internal: run one row, print its JSON
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.row is not None:
        print("ROW " + json.dumps(run_row(args.row, args.size)))
        return
    import subprocess
    import sys

    rows = []
    for index, (name, quant, ops, freeze) in enumerate(ROWS):
        started = time.perf_counter()
        child = subprocess.run([sys.executable, __file__, "--row", str(index), "--size", str(args.size)],
                               capture_output=True, text=True, check=False)
        found = [line[4:] for line in child.stdout.splitlines() if line.startswith("ROW ")]
        if found:
            row = json.loads(found[0])
        else:
            last = [line for line in child.stderr.splitlines() if line.strip()][-2:]
            row = {"graph": name, "quant": quant, "frozen": freeze, "ok": False,
                   "error": f"the converter crashed the process (exit {child.returncode}): {' | '.join(last)[:300]}"}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        if not args.json:
            print(f"{name:40} {quant:8} {'converts' if row['ok'] else 'FAILS'}  "
                  f"{ {k: v for k, v in row.items() if k not in ('graph', 'quant', 'ok', 'seconds')} }", flush=True)
    import keras_hub
    import tensorflow as tf

    result = {"keras_hub": keras_hub.__version__, "tensorflow": tf.__version__, "size": args.size,
              "host": platform.machine(), "rows": rows}
    print(json.dumps(result, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
