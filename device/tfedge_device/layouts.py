"""Detection output layouts: recognised from the model's outputs (a registry, tried in order), decoded to boxes.

| layout | recognised by | boxes | NMS |
|---|---|---|---|
| `ssd-postprocess` | the `TFLite_Detection_PostProcess` custom op (SSD family, TF Object Detection API, Coral); else pycoral's 4-output layouts (signature names, output shapes) | normalised (ymin, xmin, ymax, xmax) | done by the op |
| `end-to-end` | one output (1, N, 6) | (x1, y1, x2, y2), score, class | done by the model |
| `yolo` | one output (1, 4+C, N) or (1, N, 4+C), the smaller axis being 4+C | (cx, cy, w, h), C class scores | class-aware, here (nms.py) |
| `mediapipe-ssd` | MediaPipe's BlazeFace-family detectors: (1, N, 4+2K) and (1, N, 1), N = the anchors of a known config (MEDIAPIPE_ANCHORS) | (dx, dy, w, h) in input pixels from anchors; K keypoints ignored | here |

Box units of `yolo` and `end-to-end` (Ultralytics' TFLite exports divide boxes by the input size; others keep
input pixels): the manifest's `detection.box_units` ("normalized" or "pixels") when given; otherwise
normalised when the largest centre (yolo) or corner (end-to-end, rows scoring > 0) coordinate is <= 2:
a YOLO grid's centres span the whole input, so in pixels they reach about the input size.
A 2-class YOLO grid must be channels-first (1, 6, N): (1, N, 6) is read as end-to-end.

Every decoder returns Candidates in input pixels; detect.py maps them to the original image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import BadInput
from .nms import IOU_THRESHOLD, MAX_DETECTIONS, nms

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
NORMALIZED_MAX = 2.0  # largest coordinate still read as normalised (see the module docstring)
BOX_UNITS = ("normalized", "pixels")
# pycoral's detect.get_objects: the SSD outputs by signature output name, else by position (whether
# output 3 has one element decides between the two orders). Roles: boxes, classes, scores, count.
PYCORAL_SIGNATURE = {"count": "output_0", "scores": "output_1", "classes": "output_2", "boxes": "output_3"}
PYCORAL_ORDERS = (("boxes", "classes", "scores", "count"), ("scores", "boxes", "count", "classes"))
OP_OUTPUT_ROLES = ("boxes", "classes", "scores", "count")  # the op's outputs (kernels/detection_postprocess.cc)


@dataclass
class Candidates:
    """Detections in the model's input pixels: boxes [N, 4] (xmin, ymin, xmax, ymax), scores [N], classes [N]
    int, by descending score."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def ranked(self, top_k: int) -> Candidates:
        order = np.argsort(-self.scores, kind="stable")[:top_k]
        return Candidates(self.boxes[order], self.scores[order], self.classes[order])


@dataclass
class Layout:
    """A recognised layout: how to read the model's outputs (positions in Model.outputs).

    name: a LAYOUTS key; outputs: role -> output position; num_classes: None when the model does not say;
    default_fit: the image fit used when the manifest names none; box_units: None = decide from the values;
    default_preset: the normalisation the layout's models expect when nothing else says.
    """

    name: str
    outputs: dict
    num_classes: int | None
    default_fit: str
    box_units: str | None = None
    default_preset: str | None = None  # for a float input without a manifest (None: classify's rule)

    def decode(self, outputs: list, input_size: tuple, threshold: float, iou_threshold: float = IOU_THRESHOLD,
               max_detections: int = MAX_DETECTIONS) -> Candidates:
        """Model outputs (dequantized) -> Candidates scoring >= threshold, in input pixels (height, width)."""
        return DECODERS[self.name](self, outputs, input_size, threshold, iou_threshold, max_detections)

    def describe(self) -> dict:
        return {"layout": self.name, "classes": self.num_classes, "box_units": self.box_units or "from values",
                "outputs": dict(self.outputs)}


# -- recognising ----------------------------------------------------------------------------------------
def _shape(spec) -> tuple:
    return tuple(int(d) for d in spec.shape)


def _postprocess_op(model_bytes: bytes):
    """(output tensor indices, options dict) of the first TFLite_Detection_PostProcess op, or None."""
    if POSTPROCESS_OP.encode() not in model_bytes:  # cheap check before parsing the flatbuffer
        return None
    import tflite  # the schema package guard.py uses; imported only for SSD models
    from flatbuffers import flexbuffers

    model = tflite.Model.GetRootAsModel(model_bytes, 0)
    for s in range(model.SubgraphsLength()):
        graph = model.Subgraphs(s)
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if model.OperatorCodes(op.OpcodeIndex()).CustomCode() == POSTPROCESS_OP.encode():
                options = op.CustomOptionsAsNumpy()
                attrs = flexbuffers.Loads(options.tobytes()) if not isinstance(options, int) else {}
                return [int(t) for t in op.OutputsAsNumpy()], attrs
    return None


def _ssd_roles_fit(specs: list, roles: dict) -> bool:
    """boxes (1, N, 4), classes and scores (1, N), count one element."""
    boxes, classes, scores, count = (_shape(specs[roles[r]]) for r in OP_OUTPUT_ROLES)
    return (len(boxes) == 3 and boxes[2] == 4 and classes == scores == boxes[:2]
            and int(np.prod(count)) == 1)


def match_ssd(model, manifest: dict | None) -> Layout | None:
    specs = model.outputs
    if len(specs) != 4:
        return None
    found = _postprocess_op(model.model_bytes)
    position = {spec.index: i for i, spec in enumerate(specs)}
    if found and all(t in position for t in found[0]):
        roles = {role: position[t] for role, t in zip(OP_OUTPUT_ROLES, found[0])}
        return Layout("ssd-postprocess", roles, found[1].get("num_classes"), "stretch")
    names = _signature_outputs(model)
    candidates = []
    if set(PYCORAL_SIGNATURE.values()) <= set(names):
        candidates.append({role: position[names[name]] for role, name in PYCORAL_SIGNATURE.items()})
    count_last = int(np.prod(_shape(specs[3]))) == 1
    candidates.append(dict(zip(PYCORAL_ORDERS[0 if count_last else 1], range(4))))
    for roles in candidates:
        if _ssd_roles_fit(specs, roles):
            return Layout("ssd-postprocess", roles, found[1].get("num_classes") if found else None, "stretch")
    return None


def _signature_outputs(model) -> dict:
    """Signature output name -> tensor index of the model's only signature ({} when none or several)."""
    get = getattr(model.interpreter, "_get_full_signature_list", None)
    signatures = get() if get else {}
    if len(signatures) != 1:
        return {}
    return dict(next(iter(signatures.values())).get("outputs", {}))


def match_end_to_end(model, manifest: dict | None) -> Layout | None:
    if len(model.outputs) != 1:
        return None
    shape = _shape(model.outputs[0])
    if len(shape) == 3 and shape[0] == 1 and shape[2] == 6 and shape[1] > 0:
        return Layout("end-to-end", {"detections": 0}, None, "letterbox", _box_units(manifest))
    return None


def match_yolo(model, manifest: dict | None) -> Layout | None:
    if len(model.outputs) != 1:
        return None
    shape = _shape(model.outputs[0])
    if len(shape) != 3 or shape[0] != 1 or min(shape[1:]) < 5:
        return None
    channels_first = shape[1] <= shape[2]  # candidates outnumber 4 + classes
    classes = (shape[1] if channels_first else shape[2]) - 4
    return Layout("yolo", {"grid": 0, "channels_first": channels_first}, classes, "letterbox",
                  _box_units(manifest))


def _box_units(manifest: dict | None) -> str | None:
    units = ((manifest or {}).get("detection") or {}).get("box_units")
    if units is not None and units not in BOX_UNITS:
        raise BadInput(f"manifest detection.box_units is {units!r}; choose one of {', '.join(BOX_UNITS)}")
    return units


# MediaPipe's SSD-anchor detectors (BlazeFace family): SsdAnchorsCalculator options as data, keyed by the
# input size, from mediapipe/modules/*/..._detection_*.pbtxt (fixed_anchor_size, anchor offset 0.5, one
# aspect ratio 1.0: 2 anchors per layer and cell; consecutive layers of one stride share their cells).
MEDIAPIPE_ANCHORS = {
    (128, 128): (8, 16, 16, 16),  # face_detection_short_range: 896 anchors
    (224, 224): (8, 16, 32, 32, 32),  # pose_detection: 2254 anchors
    (192, 192): (4,),  # face_detection_full_range: 2304 anchors, 1 per cell (interpolated scale off)
}
MEDIAPIPE_ANCHORS_PER_LAYER = {(192, 192): 1}  # default 2


def mediapipe_anchors(size: tuple) -> np.ndarray:
    """[N, 2] anchor centres (x, y), normalised, in MediaPipe's order (layer group, row, column, anchor)."""
    height, width = size
    strides = MEDIAPIPE_ANCHORS[size]
    per_layer = MEDIAPIPE_ANCHORS_PER_LAYER.get(size, 2)
    centres, layer = [], 0
    while layer < len(strides):
        same = 1
        while layer + same < len(strides) and strides[layer + same] == strides[layer]:
            same += 1
        rows, cols = -(-height // strides[layer]), -(-width // strides[layer])
        y, x = np.meshgrid((np.arange(rows) + 0.5) / rows, (np.arange(cols) + 0.5) / cols, indexing="ij")
        cell = np.stack([x.ravel(), y.ravel()], axis=1)
        centres.append(np.repeat(cell, same * per_layer, axis=0))
        layer += same
    return np.concatenate(centres).astype(np.float32)


def match_mediapipe(model, manifest: dict | None) -> Layout | None:
    if len(model.outputs) != 2 or len(model.inputs) != 1:
        return None
    size = tuple(int(d) for d in model.inputs[0].shape[1:3])
    regress, scores = (_shape(spec) for spec in model.outputs)
    if scores[-1:] != (1,) and regress[-1:] == (1,):
        regress, scores = scores, regress
        order = {"regressors": 1, "scores": 0}
    else:
        order = {"regressors": 0, "scores": 1}
    if (size not in MEDIAPIPE_ANCHORS or len(regress) != 3 or len(scores) != 3 or scores[2] != 1
            or regress[1] != scores[1] or regress[2] < 4 or regress[2] % 2
            or regress[1] != len(mediapipe_anchors(size))):
        return None
    return Layout("mediapipe-ssd", order, 1, "letterbox", default_preset="mobilenet")


# name -> (what it is, matcher), tried in this order (end-to-end before yolo: a (1, N, 6) output is end-to-end).
LAYOUTS: dict[str, tuple[str, Callable]] = {
    "ssd-postprocess": ("the TFLite_Detection_PostProcess op or pycoral's SSD outputs", match_ssd),
    "end-to-end": ("one (1, N, 6) output: x1, y1, x2, y2, score, class", match_end_to_end),
    "yolo": ("one (1, 4+C, N) or (1, N, 4+C) output", match_yolo),
    "mediapipe-ssd": ("MediaPipe's (1, N, 4+2K) regressors and (1, N, 1) scores over SSD anchors",
                      match_mediapipe),
}


def recognise(model, manifest: dict | None = None) -> Layout:
    """The model's detection layout; BadInput (exit 2) naming the outputs found when none fits."""
    for _, matcher in LAYOUTS.values():
        layout = matcher(model, manifest)
        if layout is not None:
            return layout
    found = ", ".join(f"{list(_shape(spec))} {spec.dtype.name}" for spec in model.outputs)
    raise BadInput(
        f"{model.path.name} is not a detection model this tool reads: outputs {found}",
        hint="detect reads " + "; ".join(f"{name}: {what}" for name, (what, _) in LAYOUTS.items()),
    )


# -- decoding -------------------------------------------------------------------------------------------
def _normalised(values: np.ndarray, units: str | None) -> bool:
    if units is not None:
        return units == "normalized"
    return values.size == 0 or float(np.max(values)) <= NORMALIZED_MAX


def decode_ssd(layout, outputs, input_size, threshold, iou_threshold, max_detections) -> Candidates:
    role = {name: outputs[i] for name, i in layout.outputs.items()}
    count = int(np.asarray(role["count"]).reshape(-1)[0])
    boxes = np.asarray(role["boxes"], np.float32).reshape(-1, 4)[:count]
    scores = np.asarray(role["scores"], np.float32).reshape(-1)[:count]
    classes = np.asarray(role["classes"]).reshape(-1)[:count]
    height, width = input_size
    keep = scores >= threshold
    ymin, xmin, ymax, xmax = boxes[keep].T
    pixels = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=1)
    return Candidates(pixels, scores[keep], np.rint(classes[keep]).astype(np.int64)).ranked(max_detections)


def decode_end_to_end(layout, outputs, input_size, threshold, iou_threshold, max_detections) -> Candidates:
    rows = np.asarray(outputs[layout.outputs["detections"]], np.float32).reshape(-1, 6)
    boxes = rows[:, :4]
    if not _normalised(boxes[rows[:, 4] > 0], layout.box_units):
        scale = np.float32(1.0)
    else:
        height, width = input_size
        scale = np.array([width, height, width, height], np.float32)
    keep = rows[:, 4] >= threshold
    return Candidates(boxes[keep] * scale, rows[keep, 4], np.rint(rows[keep, 5]).astype(np.int64)
                      ).ranked(max_detections)


def decode_yolo(layout, outputs, input_size, threshold, iou_threshold, max_detections) -> Candidates:
    grid = np.asarray(outputs[layout.outputs["grid"]], np.float32)[0]
    grid = grid if layout.outputs["channels_first"] else grid.T  # -> (4 + C, N)
    class_scores = grid[4:]
    best = class_scores.max(axis=0)  # one class per candidate, its best (Ultralytics' multi_label=False)
    keep = np.flatnonzero(best >= threshold)
    scores, classes = np.take(best, keep), class_scores[:, keep].argmax(axis=0)
    cx, cy, w, h = (np.take(grid[k], keep) for k in range(4))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    if _normalised(grid[:2], layout.box_units):
        height, width = input_size
        boxes *= np.array([width, height, width, height], np.float32)
    kept = nms(boxes, scores, classes, iou_threshold, max_detections)
    return Candidates(boxes[kept], scores[kept], classes[kept].astype(np.int64))


def decode_mediapipe(layout, outputs, input_size, threshold, iou_threshold, max_detections) -> Candidates:
    """MediaPipe's TensorsToDetectionsCalculator for these models: x before y (reverse_output_order), offsets
    and sizes in input pixels around fixed-size anchors, sigmoid scores clipped at +-100; then NMS here
    (MediaPipe blends overlapping boxes, "weighted" NMS; this keeps the best one)."""
    raw = np.asarray(outputs[layout.outputs["regressors"]], np.float32)[0]
    logits = np.asarray(outputs[layout.outputs["scores"]], np.float32)[0, :, 0]
    with np.errstate(over="ignore"):  # exp(100) is inf in float32, as in MediaPipe's C++: the score is 0
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
    keep = np.flatnonzero(scores >= threshold)
    height, width = input_size
    anchors = mediapipe_anchors(input_size)[keep] * np.array([width, height], np.float32)
    centre, size = anchors + raw[keep, 0:2], raw[keep, 2:4]
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    scores, classes = scores[keep], np.zeros(len(keep), np.int64)
    kept = nms(boxes, scores, None, iou_threshold, max_detections)
    return Candidates(boxes[kept], scores[kept], classes[kept])


DECODERS = {"ssd-postprocess": decode_ssd, "end-to-end": decode_end_to_end, "yolo": decode_yolo,
            "mediapipe-ssd": decode_mediapipe}
