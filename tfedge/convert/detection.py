"""Detectors whose post-processing is the TFLite_Detection_PostProcess op (the SSD family).

A SavedModel exported the TF Object Detection API's way (export_tflite_graph_lib_tf2.py) calls a composite,
`tf.function(experimental_implements='name: "TFLite_Detection_PostProcess" attr {...}')`, which the TFLite
converter fuses into the op. Three things keep that op alive and the network on the Edge TPU:
  * the SavedModel is converted as it is, not frozen first (freezing inlines the composite, and the converter
    then sees its body, or nothing when the body is the OD API's empty stand-in);
  * with integer quantization the op's outputs stay float32 (they are boxes and scores, not activations);
  * the TF 2.21 quantizer puts a DEQUANTIZE in front of each quantized input of the op (it has no int8 spec for
    custom ops), and the Edge TPU runs no DEQUANTIZE (the pre-check: 17 of 20 ops on the TPU). The op's kernel
    (tensorflow/lite/kernels/detection_postprocess.cc) dequantizes uint8 box encodings, scores and anchors
    itself, but not int8 ones (measured: "failed to invoke"), so `requantize_postprocess_inputs` turns each such
    DEQUANTIZE into a QUANTIZE int8 -> uint8 (which the Edge TPU maps) and the anchors into uint8: the layout
    of Coral's own SSD models, with only the op on the CPU.
"""

from __future__ import annotations

import re

POSTPROCESS_OP = "TFLite_Detection_PostProcess"
_ATTR = re.compile(r'attr\s*\{\s*key:\s*"(\w+)"\s*value\s*\{\s*(\w):\s*([^\s}]+)\s*\}\s*\}')


def parse_implements(text: str) -> dict | None:
    """The attributes of a `tf._implements` NameAttrList in text form, or None when it names another op."""
    if f'"{POSTPROCESS_OP}"' not in text and text.strip() != POSTPROCESS_OP:
        return None
    attrs = {}
    for key, kind, value in _ATTR.findall(text):
        attrs[key] = {"i": int, "f": float, "b": lambda v: v.lower() == "true"}.get(kind, str)(value)
    return attrs


def find_postprocess(concrete_function) -> dict | None:
    """The post-processing attributes when the function's graph calls a TFLite_Detection_PostProcess
    composite (in its function library), else None."""
    library = concrete_function.graph.as_graph_def().library
    for function in library.function:
        for key in ("_implements", "tf._implements"):
            if key not in function.attr:
                continue
            value = function.attr[key]
            if value.HasField("func"):
                text = f'name: "{value.func.name}" ' + " ".join(
                    f'attr {{ key: "{k}" value {{ {v.WhichOneof("value")}: {_attr_text(v)} }} }}'
                    for k, v in value.func.attr.items())
            else:
                text = value.s.decode(errors="replace")
            attrs = parse_implements(text)
            if attrs is not None:
                return attrs
    return None


def _attr_text(value) -> str:
    kind = value.WhichOneof("value")
    got = getattr(value, kind)
    return str(got).lower() if kind == "b" else str(got)


def detection_attributes(source) -> dict | None:
    """For a SavedModel source: the manifest's `detection` entry when its signature calls the composite."""
    attrs = find_postprocess(source.signature)
    if attrs is None:
        return None
    source.notes.append(f"{POSTPROCESS_OP} composite found: converted from the SavedModel as it is (not "
                        f"frozen) so the converter fuses it into the op")
    return {"postprocess": POSTPROCESS_OP, **attrs}


def saved_model_converter(source):
    """The OD API's documented path: TFLiteConverter.from_saved_model on the chosen signature."""
    from ..tf_loader import quiet_native, tensorflow

    tf = tensorflow()
    with quiet_native():
        return tf.lite.TFLiteConverter.from_saved_model(source.location, signature_keys=[source.signature_name])


def keep_float_outputs(converter, mode) -> None:
    """The op's outputs are boxes, classes, scores and a count in float32: integer modes keep them so (an int8
    output type would add a QUANTIZE after the op, on the CPU, and coarse boxes)."""
    from ..tf_loader import tensorflow

    tf = tensorflow()
    if getattr(converter, "inference_output_type", tf.float32) != tf.float32:
        converter.inference_output_type = tf.float32


def finalize_detector(source, model_bytes: bytes) -> bytes:
    """Check the op was fused (else the conversion did not do what a detector needs) and feed it the network's
    quantized tensors directly (requantize_postprocess_inputs)."""
    from tfedge_device.guard import trust

    from ..errors import BadInput

    if POSTPROCESS_OP.encode() not in model_bytes:
        raise BadInput(f"the converter did not fuse the {POSTPROCESS_OP} composite of {source.location}",
                       hint="the composite must be called from the serving signature with "
                            "(box_encodings, class_predictions, anchors)")
    model_bytes, changed = requantize_postprocess_inputs(model_bytes)
    if changed:
        source.notes.append(f"{changed} DEQUANTIZE op(s) before {POSTPROCESS_OP} became int8->uint8 QUANTIZE "
                            f"(the op reads uint8 box encodings, scores and anchors itself; the Edge TPU maps "
                            f"QUANTIZE, so the network stays one Edge TPU subgraph)")
        trust(model_bytes)  # rewritten in this process from a model the converter made
    return model_bytes


# The op's attributes, in the order the OD API writes them (export_tflite_graph_lib_tf2.py).
ATTRIBUTES = ("max_detections", "max_classes_per_detection", "use_regular_nms", "nms_score_threshold",
              "nms_iou_threshold", "y_scale", "x_scale", "h_scale", "w_scale", "num_classes")


def implements_signature(attrs: dict) -> str:
    """`experimental_implements` text for the op: the NameAttrList the converter's composite fusion parses."""
    parts = [f'name: "{POSTPROCESS_OP}"']
    for key in ATTRIBUTES:
        value = attrs[key]
        if isinstance(value, bool):
            field = f"b: {str(value).lower()}"
        elif isinstance(value, int):
            field = f"i: {value}"
        else:
            field = f"f: {float(value):f}"
        parts.append(f'attr {{ key: "{key}" value {{ {field} }} }}')
    return " ".join(parts)


def postprocess_composite(attrs: dict):
    """The composite for a detector's export: (box_encodings [1, A, 4] as (ty, tx, th, tw), class_scores
    [1, A, C], anchors [A, 4] as (ycenter, xcenter, h, w), normalised) -> (boxes [1, D, 4] ymin/xmin/ymax/xmax
    normalised, classes [1, D], scores [1, D], num_detections [1]), float32, zero-padded: the op's outputs in the
    op's order. Unlike the OD API's empty stand-in, the body does what the op does with use_regular_nms false
    (the best class per anchor, one class-agnostic NMS), so the exported model detects in TensorFlow too and
    verification compares like with like."""
    from ..tf_loader import tensorflow

    tf = tensorflow()
    if attrs["use_regular_nms"] or attrs["max_classes_per_detection"] != 1:
        raise ValueError("the composite's TensorFlow body implements the fast NMS only (use_regular_nms false, "
                         "max_classes_per_detection 1)")
    limit = attrs["max_detections"]
    scales = [attrs[key] for key in ("y_scale", "x_scale", "h_scale", "w_scale")]

    @tf.function(experimental_implements=implements_signature(attrs))
    def detection_postprocess(box_encodings, class_scores, anchors):
        codes, ya, xa, ha, wa = box_encodings[0], anchors[:, 0], anchors[:, 1], anchors[:, 2], anchors[:, 3]
        yc, xc = codes[:, 0] / scales[0] * ha + ya, codes[:, 1] / scales[1] * wa + xa
        h, w = tf.exp(codes[:, 2] / scales[2]) * ha, tf.exp(codes[:, 3] / scales[3]) * wa
        boxes = tf.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], -1)
        scores = tf.reduce_max(class_scores[0], -1)
        classes = tf.cast(tf.argmax(class_scores[0], -1), tf.float32)
        keep = tf.image.non_max_suppression(boxes, scores, limit, attrs["nms_iou_threshold"],
                                            attrs["nms_score_threshold"])
        pad = [[0, limit - tf.shape(keep)[0]]]
        return (tf.pad(tf.gather(boxes, keep), pad + [[0, 0]])[None], tf.pad(tf.gather(classes, keep), pad)[None],
                tf.pad(tf.gather(scores, keep), pad)[None], tf.cast(tf.shape(keep)[0], tf.float32)[None])

    return detection_postprocess


# Verification compares detections, not padded output lists: below a few percent the op's scores are near-ties
# whose order TensorFlow and LiteRT may swap, which moves every later slot of the lists.
CONFIDENT = 0.5  # the source's detections compared: those scoring at least this
MATCH_IOU = 0.5  # a converted detection of the same class overlapping at least this much is the same one
ROLES = ("box", "class", "score")  # output names (sorted: boxes, classes, scores, count) -> roles


def detection_figures(source, references: list, candidates: list) -> dict | None:
    """Agreement of the converted model's detections with the source's, per confident source detection:
    `detection_agreement` (share found again: same class, IoU >= MATCH_IOU), `box_iou_mean` (of those found),
    `detections_compared`. None when the outputs cannot be told apart by name."""
    import numpy as np

    names = [name.lower() for name in source.output_names or []]
    positions = [next((i for i, name in enumerate(names) if role in name), None) for role in ROLES]
    if None in positions or len(set(positions)) != 3:
        return None
    found, ious, compared = 0, [], 0
    for reference, candidate in zip(references, candidates):
        ref_boxes, ref_classes, ref_scores = (np.asarray(reference[i])[0] for i in positions)
        boxes, classes, scores = (np.asarray(candidate[i])[0] for i in positions)
        for box, label in zip(ref_boxes[ref_scores >= CONFIDENT], ref_classes[ref_scores >= CONFIDENT]):
            compared += 1
            same = boxes[(classes == label) & (scores > 0)]
            overlap = float(_iou(box, same).max()) if len(same) else 0.0
            if overlap >= MATCH_IOU:
                found += 1
                ious.append(overlap)
    return {"samples": len(references), "detections_compared": compared,
            "detection_agreement": found / compared if compared else None,
            "box_iou_mean": float(np.mean(ious)) if ious else None,
            "top1_agreement": None, "cosine_mean": None, "cosine_min": None, "max_abs_error": None}


def _iou(box, boxes):
    """IoU of one (ymin, xmin, ymax, xmax) box with each of boxes [N, 4]."""
    import numpy as np

    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), -1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], -1)
    return inter / (np.prod(box[2:] - box[:2]) + areas - inter)


def requantize_postprocess_inputs(model_bytes: bytes) -> tuple[bytes, int]:
    """Turn every DEQUANTIZE (int8 -> float32) that only feeds a TFLite_Detection_PostProcess op into a
    QUANTIZE (int8 -> uint8, the same scale, zero point + 128): the op reads the uint8 tensor itself. Returns
    (model bytes, number of ops changed); the bytes are unchanged when none."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_bytes))
    codes = model.operatorCodes

    def builtin(op) -> int:
        code = codes[op.opcodeIndex]
        return max(code.builtinCode, code.deprecatedBuiltinCode)

    def is_postprocess(op) -> bool:
        code = codes[op.opcodeIndex]
        return code.customCode is not None and code.customCode.decode() == POSTPROCESS_OP

    changed = 0
    for subgraph in model.subgraphs:
        consumers: dict[int, int] = {}
        for op in subgraph.operators:
            for tensor in op.inputs:
                consumers[int(tensor)] = consumers.get(int(tensor), 0) + 1
        producers = {int(tensor): op for op in subgraph.operators for tensor in op.outputs}
        outputs = {int(tensor) for tensor in subgraph.outputs}
        for op in subgraph.operators:
            if not is_postprocess(op):
                continue
            for tensor in (int(t) for t in op.inputs):
                producer = producers.get(tensor)
                if (producer is None or builtin(producer) != schema.BuiltinOperator.DEQUANTIZE
                        or consumers.get(tensor) != 1 or tensor in outputs):
                    continue
                source = subgraph.tensors[int(producer.inputs[0])]
                if source.type != schema.TensorType.INT8 or source.quantization is None:
                    continue
                target = subgraph.tensors[tensor]
                target.type = schema.TensorType.UINT8
                quantization = schema.QuantizationParametersT()
                quantization.scale = list(source.quantization.scale)
                quantization.zeroPoint = [int(z) + 128 for z in source.quantization.zeroPoint]
                target.quantization = quantization
                producer.opcodeIndex = _opcode_index(model, schema.BuiltinOperator.QUANTIZE)
                producer.builtinOptionsType = schema.BuiltinOptions.QuantizeOptions
                producer.builtinOptions = schema.QuantizeOptionsT()
                changed += 1
            if subgraph.tensors[int(op.inputs[0])].type == schema.TensorType.UINT8:
                _quantize_anchors(model, subgraph, int(op.inputs[2]))
    if not changed:
        return model_bytes, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), changed


def _quantize_anchors(model, subgraph, index: int) -> None:
    """The kernel reads the anchors in the box encodings' type: with uint8 box encodings, a float32 anchor
    constant becomes uint8 (scale max/255, zero point 0: anchors are in [0, 1], as in Coral's SSD models)."""
    import numpy as np
    from tensorflow.lite.python import schema_py_generated as schema

    tensor = subgraph.tensors[index]
    buffer = model.buffers[tensor.buffer]
    if tensor.type != schema.TensorType.FLOAT32 or buffer.data is None or not len(buffer.data):
        return
    values = np.frombuffer(bytes(bytearray(buffer.data)), np.float32)
    scale = float(max(values.max(), 1e-6)) / 255.0
    buffer.data = np.clip(np.round(values / scale), 0, 255).astype(np.uint8)
    tensor.type = schema.TensorType.UINT8
    quantization = schema.QuantizationParametersT()
    quantization.scale, quantization.zeroPoint = [scale], [0]
    tensor.quantization = quantization


def _opcode_index(model, builtin: int) -> int:
    """The index of a builtin operator code in the model, added (version 1) when missing."""
    from tensorflow.lite.python import schema_py_generated as schema

    for index, code in enumerate(model.operatorCodes):
        if code.customCode is None and max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1
