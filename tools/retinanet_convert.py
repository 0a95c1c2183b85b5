"""How far keras-hub's RetinaNet converts to TFLite: the network, and the network with its decoding + NMS.

keras-hub ships RetinaNetObjectDetector (and D-FINE); no weights can be downloaded here, so the model is built
from a small ResNet image encoder with random weights: what converts does not depend on the weights. Each row is
one real TFLite conversion (TF 2.21's converter); a failure prints the converter's own first error line.

Rows:
  network float32 / int8       model(images) -> box regression + class logits (what an SSD-style export keeps)
  decoded float32 / int8       + keras-hub's decode_predictions: anchors, delta decoding, NonMaxSuppression
  decoded int8 builtins only   the same, TFLITE_BUILTINS_INT8 only (what --quant int8/edgetpu ask for)
Each graph frozen (variables folded into constants, as tfedge converts Keras 3 sources) or live (variables kept).

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


def convert(function, size: int, quant: str, builtins_only: bool, freeze: bool, model):
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
        converter.representative_dataset = lambda: ([rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32)]
                                                     for _ in range(8))
        if builtins_only:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return converter.convert()


def first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line.lower():
            return line[line.lower().index("error:") + 6:].strip()[:400]
    return " ".join(text.split())[:400]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras_hub
    import tensorflow as tf

    model = build(args.size)

    def network(images):
        out = model(images, training=False)
        return out["bbox_regression"], out["cls_logits"]

    def decoded(images):
        out = model.decode_predictions(model(images, training=False), images)
        return out["boxes"], out["confidence"], out["labels"], out["num_detections"]

    rows = []
    for name, function, quant, builtins_only, freeze in (
            ("network", network, "float32", False, True), ("network", network, "int8", True, True),
            ("decoded", decoded, "float32", False, True), ("decoded", decoded, "int8", True, True),
            ("decoded", decoded, "float32", False, False), ("decoded", decoded, "int8", False, False),
            ("decoded", decoded, "int8", True, False)):
        started = time.perf_counter()
        row = {"graph": name, "quant": quant, "builtins_int8_only": builtins_only, "frozen": freeze}
        try:
            data = convert(function, args.size, quant, builtins_only, freeze, model)
            from ai_edge_litert.interpreter import Interpreter

            interpreter = Interpreter(model_content=data)
            ops = sorted({op["op_name"] for op in interpreter._get_ops_details()})
            row.update(ok=True, size_mb=round(len(data) / 1e6, 3), ops=ops)
        except Exception as err:  # noqa: BLE001 - every converter failure is a row of the table
            row.update(ok=False, error=f"{type(err).__name__}: {first_error(str(err))}")
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        if not args.json:
            print(f"{name:8} {quant:8} {'int8-only' if builtins_only else '':9} {'frozen' if freeze else 'live':6} "
                  f"{'converts' if row['ok'] else 'FAILS'}  {row.get('size_mb', '')} "
                  f"{row.get('ops') or row.get('error')}", flush=True)
    result = {"keras_hub": keras_hub.__version__, "tensorflow": tf.__version__, "size": args.size,
              "host": platform.machine(), "rows": rows}
    print(json.dumps(result, indent=None if not args.json else 2))


if __name__ == "__main__":
    main()
