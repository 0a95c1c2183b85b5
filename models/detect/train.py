"""Train the project's detector: an SSD-style head on a small conv backbone, on the scenes of scenes.py.

Deterministic (fixed seeds, single-threaded ops). Writes beside this file:
  detector/      a SavedModel: input `image` [1, 64, 64, 3] float in [0, 1] (the `unit` preset); its serving
                 function runs the network (weights frozen into constants) and then the post-processing as a
                 `tf.function(experimental_implements="TFLite_Detection_PostProcess ...")` composite, as the TF
                 Object Detection API's TFLite export does: the TFLite converter fuses it into the
                 TFLite_Detection_PostProcess op. Unlike the OD API's empty stand-in, the composite's body is a
                 real decode + NMS in TensorFlow (the op's fast-NMS semantics), so the SavedModel detects in
                 TensorFlow too and verification compares like with like.
  labels.txt     one label a line (the digits)

The network: 6 conv layers (batch norm folded, ReLU6) down to strides 8 and 16; at each, a 3x3 conv predicts per
anchor 4 box encodings (the Faster R-CNN coder: ty, tx, th, tw with scales 10, 10, 5, 5) and 10 sigmoid class
scores; 448 anchors (6 per cell at stride 8, 4 at stride 16). Loss: sigmoid focal loss + Huber on the boxes of
the anchors matched to a ground-truth box (IoU >= 0.5, and each box's best anchor).

Usage: python models/detect/train.py [--epochs 30] [--scenes 6000] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import scenes as scene_data  # beside this file, like the digits model's own script

SEED = 0
NUM_CLASSES = len(scene_data.CLASSES)
# Feature levels: (grid side, anchor heights in pixels); every height with every width/height ratio.
LEVELS = ((8, (14.0, 18.0, 23.0)), (4, (28.0, 34.0)))
ASPECT_RATIOS = (0.5, 0.8)  # width / height: a "1" is narrow, most digits about 0.7
BOX_SCALES = (10.0, 10.0, 5.0, 5.0)  # y, x, h, w: the OD API's Faster R-CNN box coder defaults
MATCH_IOU, NEGATIVE_IOU = 0.5, 0.4
POSTPROCESS = {"max_detections": 20, "max_classes_per_detection": 1, "use_regular_nms": False,
               "nms_score_threshold": 0.01, "nms_iou_threshold": 0.5}


def anchors() -> np.ndarray:
    """[A, 4] anchors (ycenter, xcenter, height, width), normalised to the input, in the heads' order."""
    out = []
    for grid, heights in LEVELS:
        for row in range(grid):
            for col in range(grid):
                for height in heights:
                    for ratio in ASPECT_RATIOS:
                        out.append(((row + 0.5) / grid, (col + 0.5) / grid, height / scene_data.SIZE,
                                    height * ratio / scene_data.SIZE))
    return np.array(out, np.float32)


def anchors_per_cell(level: int) -> int:
    return len(LEVELS[level][1]) * len(ASPECT_RATIOS)


# -- targets ---------------------------------------------------------------------------------------------
def _corners(centre_size: np.ndarray) -> np.ndarray:
    """(ycenter, xcenter, h, w) -> (ymin, xmin, ymax, xmax)."""
    yc, xc, h, w = centre_size.T
    return np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], -1)


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of corner boxes a [N, 4] x b [M, 4]."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), -1)
    area_a = np.prod(a[:, 2:] - a[:, :2], -1)
    area_b = np.prod(b[:, 2:] - b[:, :2], -1)
    return inter / (area_a[:, None] + area_b[None] - inter)


def encode(boxes: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """Corner boxes [N, 4] (ymin, xmin, ymax, xmax) against anchors [N, 4] (centre-size) -> [N, 4] encodings."""
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    yc, xc = boxes[:, 0] + h / 2, boxes[:, 1] + w / 2
    ya, xa, ha, wa = matched.T
    sy, sx, sh, sw = BOX_SCALES
    return np.stack([(yc - ya) / ha * sy, (xc - xa) / wa * sx, np.log(h / ha) * sh, np.log(w / wa) * sw], -1)


def targets(scene, anchor_boxes: np.ndarray):
    """(class targets [A, C + 1]: one-hot + a weight column (0 = ignored anchor), box targets [A, 5]:
    encodings + a positive mask)."""
    count = len(anchor_boxes)
    classes = np.zeros((count, NUM_CLASSES + 1), np.float32)
    classes[:, -1] = 1.0
    boxes = np.zeros((count, 5), np.float32)
    if not len(scene.boxes):
        return classes, boxes
    gt = scene.boxes[:, [1, 0, 3, 2]] / scene_data.SIZE  # (ymin, xmin, ymax, xmax), normalised
    iou = _iou_matrix(_corners(anchor_boxes), gt)
    best = iou.argmax(1)
    best_iou = iou.max(1)
    positive = best_iou >= MATCH_IOU
    forced = iou.argmax(0)  # every box keeps its best anchor
    positive[forced] = True
    best[forced] = np.arange(len(gt))
    classes[(best_iou >= NEGATIVE_IOU) & ~positive, -1] = 0.0
    classes[positive, scene.classes[best[positive]]] = 1.0
    boxes[positive, :4] = encode(gt[best[positive]], anchor_boxes[positive])
    boxes[positive, 4] = 1.0
    return classes, boxes


# -- model -----------------------------------------------------------------------------------------------
def build_network():
    """image [B, 64, 64, 3] in [0, 1] -> (box_encodings [B, A, 4], class_scores [B, A, C] sigmoid)."""
    import keras
    from keras import layers

    def conv(x, filters, stride, name):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=name)(x)
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.ReLU(6.0, name=f"{name}_relu6")(x)

    image = keras.Input((scene_data.SIZE, scene_data.SIZE, 3), name="image")
    x = conv(image, 16, 2, "conv1")  # 32
    x = conv(x, 32, 2, "conv2")  # 16
    x = conv(x, 32, 1, "conv3")
    x = conv(x, 64, 2, "conv4")  # 8
    stride8 = conv(x, 64, 1, "conv5")
    stride16 = conv(stride8, 96, 2, "conv6")  # 4
    prior = -np.log((1 - 0.01) / 0.01)  # RetinaNet's prior: every anchor starts at score 0.01
    box_parts, class_parts = [], []
    for level, features in enumerate((stride8, stride16)):
        per_cell = anchors_per_cell(level)
        box = layers.Conv2D(per_cell * 4, 3, padding="same", name=f"boxes{level}")(features)
        box_parts.append(layers.Reshape((-1, 4), name=f"boxes{level}_flat")(box))
        logits = layers.Conv2D(per_cell * NUM_CLASSES, 3, padding="same", name=f"classes{level}",
                               bias_initializer=keras.initializers.Constant(prior))(features)
        class_parts.append(layers.Reshape((-1, NUM_CLASSES), name=f"classes{level}_flat")(logits))
    box_encodings = layers.Concatenate(axis=1, name="box_encodings")(box_parts)
    logits = layers.Concatenate(axis=1, name="class_logits")(class_parts)
    scores = layers.Activation("sigmoid", name="class_scores")(logits)
    return keras.Model(image, [box_encodings, scores], name="digits_ssd")


def focal_loss(y_true, y_pred):
    """Sigmoid focal loss (alpha 0.25, gamma 2) summed over anchors and classes, per positive anchor."""
    from keras import ops

    onehot, weight = y_true[..., :-1], y_true[..., -1:]
    y_pred = ops.clip(y_pred, 1e-6, 1 - 1e-6)
    p_t = onehot * y_pred + (1 - onehot) * (1 - y_pred)
    alpha = onehot * 0.25 + (1 - onehot) * 0.75
    loss = -alpha * (1 - p_t) ** 2 * ops.log(p_t) * weight
    positives = ops.maximum(ops.sum(ops.max(onehot, -1), -1), 1.0)
    return ops.sum(loss, axis=(1, 2)) / positives


def box_loss(y_true, y_pred):
    """Huber loss of the encodings of positive anchors, per positive anchor."""
    from keras import ops

    mask = y_true[..., 4:]
    error = ops.abs(y_true[..., :4] - y_pred)
    huber = ops.where(error < 1.0, 0.5 * error ** 2, error - 0.5) * mask
    return ops.sum(huber, axis=(1, 2)) / ops.maximum(ops.sum(mask, axis=(1, 2)), 1.0)


# -- export ----------------------------------------------------------------------------------------------
def postprocess_attributes() -> dict:
    """The TFLite_Detection_PostProcess attributes of this detector (tfedge.convert.detection.ATTRIBUTES)."""
    return {**POSTPROCESS, "y_scale": BOX_SCALES[0], "x_scale": BOX_SCALES[1], "h_scale": BOX_SCALES[2],
            "w_scale": BOX_SCALES[3], "num_classes": NUM_CLASSES}


def export(network, out: Path) -> None:
    """Write the SavedModel: the network's weights frozen into constants (the converter's calibrator cannot
    read Keras 3 resource variables, and freezing the whole function would inline the composite away), then
    the composite."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from tfedge.convert.detection import postprocess_composite

    spec = tf.TensorSpec([1, scene_data.SIZE, scene_data.SIZE, 3], tf.float32, name="image")
    frozen = convert_variables_to_constants_v2(
        tf.function(lambda image: network(image, training=False)).get_concrete_function(spec))
    module = tf.Module()
    module.anchors = tf.constant(anchors())
    module.postprocess = postprocess_composite(postprocess_attributes())

    @tf.function(input_signature=[spec])
    def serve(image):
        box_encodings, class_scores = frozen(image)
        boxes, classes, scores, count = module.postprocess(box_encodings, class_scores, module.anchors)
        return {"detection_boxes": boxes, "detection_classes": classes, "detection_scores": scores,
                "num_detections": count}

    module.serve = serve
    tf.saved_model.save(module, str(out / "detector"), signatures={"serving_default": serve})


def training_arrays(count: int, anchor_boxes: np.ndarray):
    items = scene_data.scenes("train", count)
    x = np.stack([s.image for s in items])
    pairs = [targets(s, anchor_boxes) for s in items]
    return x, np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--scenes", type=int, default=6000)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    started = time.perf_counter()
    anchor_boxes = anchors()
    x, y_classes, y_boxes = training_arrays(args.scenes, anchor_boxes)
    print(f"{len(x)} training scenes, {int(y_boxes[..., 4].sum())} positive anchors "
          f"({time.perf_counter() - started:.0f} s)", flush=True)
    dataset = (tf.data.Dataset.from_tensor_slices((x, (y_boxes, y_classes)))
               .shuffle(len(x), seed=SEED)
               .map(lambda image, y: (tf.cast(image, tf.float32) / 255.0, y))
               .batch(64).prefetch(2))
    network = build_network()
    steps = args.epochs * int(np.ceil(len(x) / 64))
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, steps, alpha=0.02)
    network.compile(optimizer=keras.optimizers.Adam(schedule), loss=[box_loss, focal_loss])
    network.fit(dataset, epochs=args.epochs, verbose=2)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    export(network, out)
    (out / "labels.txt").write_text("".join(f"{name}\n" for name in scene_data.CLASSES))
    print(f"trained in {time.perf_counter() - started:.0f} s; wrote {out / 'detector'}")


if __name__ == "__main__":
    main()
