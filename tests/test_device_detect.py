"""tfedge-run detect and tfedge_device.detect: the three output layouts decoded right, NMS, drawing, bad inputs.

Real TFLite models are built here with TensorFlow (test side only): an SSD-style graph ending in the real
`TFLite_Detection_PostProcess` custom op (fused by the converter from a `tf.function(experimental_implements=...)`
composite, as the TF Object Detection API's TFLite export does), YOLO grids in both transposes with float,
int8 and uint8 outputs, and an end-to-end (1, N, 6) output. The models emit known boxes; the expected boxes in
the original image are computed here by a reference decode written independently of tfedge_device (plain
loops over the raw interpreter outputs, Ultralytics' letterbox arithmetic restated), on images whose aspect
ratio differs from the model input's.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import ROOT, assert_clean_error

PIXEL_TOLERANCE = 1.0  # boxes within one pixel of the reference decode (issue 18)
IMAGE_SIZES = ((150, 70), (45, 120))  # (width, height): wider and taller than every model input below


# -- models --------------------------------------------------------------------------------------------
def convert(module, concrete, representative=None, io_type=None) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.allow_custom_ops = True  # TFLite_Detection_PostProcess is a custom op (built into LiteRT)
    if representative is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    return converter.convert()


def constant_model(values: np.ndarray, input_shape, io_type=None) -> bytes:
    """A model whose one output is `values` (kept input-dependent so the converter cannot drop the graph)."""
    import tensorflow as tf

    const = tf.constant(values.astype(np.float32))

    class Constant(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(input_shape, tf.float32)])
        def __call__(self, x):
            return const + 0.0 * tf.reduce_mean(x)

    module = Constant()
    rng = np.random.default_rng(0)
    representative = (lambda: ([rng.random(input_shape, np.float32)] for _ in range(8))) if io_type else None
    return convert(module, module.__call__.get_concrete_function(), representative,
                   {"int8": tf.int8, "uint8": tf.uint8}.get(io_type))


SSD_INPUT = (1, 48, 64, 3)
SSD_CLASSES = 3
# (ycenter, xcenter, height, width), normalised; disjoint so the op's NMS keeps them all.
SSD_ANCHORS = np.array([[0.25, 0.25, 0.30, 0.20], [0.25, 0.75, 0.20, 0.30], [0.75, 0.30, 0.40, 0.50],
                        [0.70, 0.80, 0.30, 0.25]], np.float32)
# Per anchor: background, then the 3 classes' scores.
SSD_SCORES = np.array([[0.0, 0.9, 0.1, 0.0], [0.0, 0.2, 0.0, 0.7], [0.0, 0.0, 0.6, 0.1], [0.0, 0.3, 0.1, 0.05]],
                      np.float32)


def ssd_model() -> bytes:
    """Zero box encodings -> the op's boxes are the anchors; scores SSD_SCORES."""
    import tensorflow as tf

    attrs = " ".join([
        'name: "TFLite_Detection_PostProcess"',
        'attr { key: "max_detections" value { i: 10 } }',
        'attr { key: "max_classes_per_detection" value { i: 1 } }',
        'attr { key: "detections_per_class" value { i: 10 } }',
        'attr { key: "use_regular_nms" value { b: false } }',
        'attr { key: "nms_score_threshold" value { f: 0.01 } }',
        'attr { key: "nms_iou_threshold" value { f: 0.6 } }',
        *(f'attr {{ key: "{key}" value {{ f: {value} }} }}'
          for key, value in (("y_scale", 10.0), ("x_scale", 10.0), ("h_scale", 5.0), ("w_scale", 5.0))),
        f'attr {{ key: "num_classes" value {{ i: {SSD_CLASSES} }} }}',
    ])
    count = len(SSD_ANCHORS)

    class Ssd(tf.Module):
        @tf.function(experimental_implements=attrs)
        def postprocess(self, box_encodings, class_predictions, anchors):  # fused into the custom op
            return (tf.constant(0.0), tf.constant(0.0), tf.constant(0.0), tf.constant(0.0))

        @tf.function(input_signature=[tf.TensorSpec(SSD_INPUT, tf.float32)])
        def __call__(self, x):
            level = 0.0 * tf.reduce_mean(x)
            encodings = tf.zeros([1, count, 4]) + level
            scores = tf.constant(SSD_SCORES[None]) + level
            return self.postprocess(encodings, scores, tf.constant(SSD_ANCHORS))

    module = Ssd()
    return convert(module, module.__call__.get_concrete_function())


def pycoral_order_model() -> bytes:
    """No op: four outputs in pycoral's signature order (count, scores, classes, boxes), boxes normalised."""
    import tensorflow as tf

    boxes = np.array([[[0.1, 0.2, 0.5, 0.6], [0.5, 0.5, 0.9, 0.8], [0, 0, 0, 0]]], np.float32)

    class Outputs(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec(SSD_INPUT, tf.float32)])
        def __call__(self, x):
            level = 0.0 * tf.reduce_mean(x)
            return (tf.constant([2.0]) + level, tf.constant([[0.8, 0.55, 0.0]]) + level,
                    tf.constant([[2.0, 0.0, 0.0]]) + level, tf.constant(boxes) + level)

    module = Outputs()
    return convert(module, module.__call__.get_concrete_function())


YOLO_INPUT = (1, 64, 96, 3)  # H 64, W 96
# Candidates (cx, cy, w, h) in input pixels and 3 class scores. 0/1: same class, IoU > 0.45 -> 1 suppressed;
# 2/3: overlapping but different classes -> both kept; 4: below the threshold; 5, 6: apart.
YOLO_CANDIDATES = np.array([
    [30, 20, 20, 16, 0.90, 0.05, 0.00],
    [31, 21, 20, 16, 0.80, 0.10, 0.00],
    [70, 40, 24, 20, 0.10, 0.85, 0.20],
    [72, 42, 24, 20, 0.05, 0.10, 0.75],
    [50, 50, 10, 10, 0.20, 0.15, 0.10],
    [10, 55, 12, 14, 0.00, 0.65, 0.30],
    [88, 8, 14, 12, 0.45, 0.00, 0.50],
    *([8 * k + 4, 30, 6, 6, 0.01 * k, 0.02, 0.3] for k in range(1, 7)),  # low scores: N (13) > 4 + C (7)
], np.float32)


def yolo_grid(normalised: bool, channels_first: bool) -> np.ndarray:
    grid = YOLO_CANDIDATES.copy()
    if normalised:
        grid[:, :4] /= np.array([96, 64, 96, 64], np.float32)
    return (grid.T if channels_first else grid)[None]


# (1, N, 6): x1, y1, x2, y2 normalised, score, class; two padding rows.
END_TO_END = np.array([[[0.10, 0.20, 0.40, 0.60, 0.92, 1], [0.50, 0.10, 0.95, 0.50, 0.70, 0],
                        [0.30, 0.55, 0.60, 0.95, 0.30, 2], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]], np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    directory = tmp_path_factory.mktemp("detect")
    built = {
        "ssd": ssd_model(),
        "pycoral": pycoral_order_model(),
        "yolo-float-first": constant_model(yolo_grid(False, True), YOLO_INPUT),
        "yolo-int8-last": constant_model(yolo_grid(True, False), YOLO_INPUT, "int8"),
        "yolo-uint8-first": constant_model(yolo_grid(True, True), YOLO_INPUT, "uint8"),
        "e2e": constant_model(END_TO_END, YOLO_INPUT),
        "not-detection": constant_model(np.zeros((1, 10), np.float32), YOLO_INPUT),
    }
    paths = {}
    for name, data in built.items():
        paths[name] = directory / f"{name}.tflite"
        paths[name].write_bytes(data)
    return paths


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Real-content images of other aspect ratios than the models' inputs: scikit-learn digits, scaled up."""
    from PIL import Image
    from sklearn.datasets import load_digits

    directory = tmp_path_factory.mktemp("detect_images")
    digits = load_digits().images
    paths = []
    for n, (width, height) in enumerate(IMAGE_SIZES):
        pixels = (digits[n] * 255 / 16).astype(np.uint8)
        image = Image.fromarray(pixels).convert("RGB").resize((width, height))
        paths.append(directory / f"scene_{n}.png")
        image.save(paths[-1])
    return paths


# -- the reference decode (independent of tfedge_device) --------------------------------------------------
def raw_outputs(path, image_path, fit, size, signed_unit=False) -> list:
    """Run the model with LiteRT directly on the image (fitted by `fit`, pixels to [0, 1], or [-1, 1] when
    signed_unit), outputs dequantized by hand."""
    from ai_edge_litert.interpreter import Interpreter
    from PIL import Image

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    height, width = size
    image = Image.open(image_path).convert("RGB")
    if fit == "stretch":
        image = image.resize((width, height), Image.BILINEAR)
    else:
        gain = min(height / image.height, width / image.width)
        new = (round(image.width * gain), round(image.height * gain))
        canvas = Image.new("RGB", (width, height), (114, 114, 114))
        canvas.paste(image.resize(new, Image.BILINEAR),
                     (round((width - new[0]) / 2 - 0.1), round((height - new[1]) / 2 - 0.1)))
        image = canvas
    x = np.asarray(image, np.float32)[None] / 255.0
    x = x * 2 - 1 if signed_unit else x
    scale, zero = detail["quantization"]
    if scale:
        x = np.clip(np.round(x / scale + zero), -128 if detail["dtype"] == np.int8 else 0,
                    127 if detail["dtype"] == np.int8 else 255).astype(detail["dtype"])
    interpreter.set_tensor(detail["index"], x)
    interpreter.invoke()
    outputs = []
    for out in interpreter.get_output_details():
        value = interpreter.get_tensor(out["index"])
        scale, zero = out["quantization"]
        outputs.append((value.astype(np.float64) - zero) * scale if scale else value.astype(np.float64))
    return outputs


def to_original(box, image_size, input_size, fit):
    """Input pixels -> original pixels, clipped (Ultralytics' scale_boxes for letterbox)."""
    (width, height), (in_h, in_w) = image_size, input_size
    if fit == "stretch":
        gx, gy, px, py = in_w / width, in_h / height, 0.0, 0.0
    else:
        gx = gy = min(in_h / height, in_w / width)
        px = round((in_w - width * gx) / 2 - 0.1)
        py = round((in_h - height * gy) / 2 - 0.1)
    x1, y1, x2, y2 = box
    return [min(max((x1 - px) / gx, 0), width), min(max((y1 - py) / gy, 0), height),
            min(max((x2 - px) / gx, 0), width), min(max((y2 - py) / gy, 0), height)]


def loop_iou(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def loop_nms(boxes, scores, classes, threshold) -> list[int]:
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    kept = []
    for i in order:
        if all(classes[k] != classes[i] or loop_iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


def reference(kind, outputs, image_size, input_size, fit, threshold=0.4, iou=0.45, pixels=None) -> list:
    """[(class, score, box in original pixels)] by descending score. pixels: YOLO box units (None: the test
    models' own)."""
    found = []
    if kind == "yolo":
        grid = outputs[0][0]
        rows = grid.T if grid.shape[0] == 4 + 3 else grid  # the test's models have 3 classes
        pixels = max(row[0] for row in rows) > 2 if pixels is None else pixels
        boxes, scores, classes = [], [], []
        for row in rows:
            best = max(range(len(row) - 4), key=lambda c: row[4 + c])
            if row[4 + best] < threshold:
                continue
            cx, cy, w, h = row[:4] if pixels else row[:4] * np.array([input_size[1], input_size[0]] * 2)
            boxes.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
            scores.append(row[4 + best])
            classes.append(best)
        found = [(classes[i], scores[i], boxes[i]) for i in loop_nms(boxes, scores, classes, iou)]
    elif kind == "e2e":
        for x1, y1, x2, y2, score, cls in outputs[0][0]:
            if score >= threshold:
                found.append((round(cls), score, [x1 * input_size[1], y1 * input_size[0],
                                                       x2 * input_size[1], y2 * input_size[0]]))
    return [(c, s, to_original(b, image_size, input_size, fit)) for c, s, b in
            sorted(found, key=lambda f: -f[1])]


def assert_same(objects, expected) -> None:
    assert len(objects) == len(expected), (objects, expected)
    for obj, (cls, score, box) in zip(objects, expected):
        assert obj["id"] == cls, (obj, cls)
        assert abs(obj["score"] - score) < 1e-4, (obj, score)
        assert max(abs(a - b) for a, b in zip(obj["box"], box)) <= PIXEL_TOLERANCE, (obj["box"], box)


def detect_json(tfedge_run, model, image, *extra) -> dict:
    """`tfedge-run detect MODEL -i IMAGE(S) --json EXTRA...` -> its JSON (exit 0 asserted)."""
    result = tfedge_run("detect", model, "--json", *extra, "-i", *(image if isinstance(image, list) else [image]))
    assert result.returncode == 0, result
    return json.loads(result.stdout)


# -- the three layouts --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["yolo-float-first", "yolo-int8-last", "yolo-uint8-first", "e2e"])
def test_yolo_and_end_to_end_boxes_match_the_reference_decode(models, images, tfedge_run, name):
    from PIL import Image

    kind = "e2e" if name == "e2e" else "yolo"
    for image in images:
        size = Image.open(image).size
        data = detect_json(tfedge_run, models[name], image)
        assert data["layout"]["layout"] == ("end-to-end" if kind == "e2e" else "yolo")
        assert data["preprocess"]["fit"] == "letterbox"
        expected = reference(kind, raw_outputs(models[name], image, "letterbox", (64, 96)), size, (64, 96),
                             "letterbox")
        assert_same(data["results"][0]["objects"], expected)
    if kind == "yolo":  # the model's known candidates: 0 kept over 1 (NMS), 2 and 3 both, 4 below 0.4
        assert [o["id"] for o in data["results"][0]["objects"]] == [0, 1, 2, 1, 2]


def test_ssd_postprocess_op_boxes_match_the_anchors(models, images, tfedge_run):
    from PIL import Image

    for image in images:
        width, height = Image.open(image).size
        data = detect_json(tfedge_run, models["ssd"], image, "-t", "0.5")
        assert data["layout"]["layout"] == "ssd-postprocess" and data["layout"]["classes"] == SSD_CLASSES
        assert data["preprocess"]["fit"] == "stretch"
        expected = []
        for (yc, xc, h, w), scores in zip(SSD_ANCHORS.tolist(), SSD_SCORES.tolist()):
            best = max(range(SSD_CLASSES), key=lambda c: scores[1 + c])
            if scores[1 + best] >= 0.5:
                expected.append((best, scores[1 + best], [(xc - w / 2) * width, (yc - h / 2) * height,
                                                          (xc + w / 2) * width, (yc + h / 2) * height]))
        expected.sort(key=lambda e: -e[1])
        assert len(expected) == 3
        assert_same(data["results"][0]["objects"], expected)


def test_ssd_without_the_op_read_by_pycorals_signature_order(models, images):
    from tfedge_device.detect import Detector

    detector = Detector(models["pycoral"])
    assert detector.layout.name == "ssd-postprocess"
    result = detector.detect(images[0], threshold=0.5)
    width, height = IMAGE_SIZES[0]
    assert [(o.label_id, round(o.score, 4)) for o in result.objects] == [(2, 0.8), (0, 0.55)]
    expected = [[0.2 * width, 0.1 * height, 0.6 * width, 0.5 * height],
                [0.5 * width, 0.5 * height, 0.8 * width, 0.9 * height]]
    for obj, box in zip(result.objects, expected):
        assert max(abs(a - b) for a, b in zip(obj.box, box)) <= PIXEL_TOLERANCE


def test_manifest_fit_and_box_units_are_followed(models, images, tmp_path):
    """A manifest's stretch overrides YOLO's letterbox default, and its box_units the rule on values (here
    wrongly: normalised boxes read as pixels, so the result differs from the model's own units)."""
    from PIL import Image
    from tfedge_device.detect import Detector
    from tfedge_device.manifest import write_manifest
    from tfedge_device.model import Model

    model = tmp_path / "yolo.tflite"
    model.write_bytes(models["yolo-uint8-first"].read_bytes())
    tensors = Model(model).describe()
    write_manifest(model, {"task": "object-detection", "inputs": tensors["inputs"], "outputs": tensors["outputs"],
                           "preprocess": {"image": {"height": 64, "width": 96, "channels": 3, "preset": "unit",
                                                    "fit": "stretch"}},
                           "detection": {"box_units": "pixels"}, "labels": ["cat", "dog", "bird"]})
    detector = Detector(model)
    result = detector.detect(images[1])
    expected = reference("yolo", raw_outputs(model, images[1], "stretch", (64, 96)), Image.open(images[1]).size,
                         (64, 96), "stretch", pixels=True)
    assert_same([o.to_dict() for o in result.objects], expected)
    assert max(o.box.xmax for o in result.objects) < 2  # normalised values taken as pixels: tiny boxes
    assert [o.label for o in result.objects][:2] == ["cat", "dog"]


# -- a real third-party detector on a real photo ---------------------------------------------------------
MEDIAPIPE_FACE = ROOT / ".cache" / "thirdparty" / "mediapipe" / "face_detection_short_range.tflite"
# The astronaut's face in skimage.data.astronaut() (512 x 512), annotated by eye: hairline to chin, ear to ear.
ASTRONAUT_FACE = (178, 78, 275, 180)


def blazeface_anchors() -> list:
    """MediaPipe's SsdAnchorsCalculator for face_detection_short_range.pbtxt, restated as loops: 128 x 128,
    strides 8, 16, 16, 16, 2 anchors per layer (aspect 1 and the interpolated scale), fixed size, offset 0.5;
    layers of the same stride share their cells."""
    strides, anchors, layer = [8, 16, 16, 16], [], 0
    while layer < len(strides):
        last = layer
        while last < len(strides) and strides[last] == strides[layer]:
            last += 1
        cells = math.ceil(128 / strides[layer])
        for y in range(cells):
            for x in range(cells):
                for _ in range(2 * (last - layer)):
                    anchors.append(((x + 0.5) / cells, (y + 0.5) / cells))
        layer = last
    return anchors


@pytest.fixture(scope="module")
def astronaut(tmp_path_factory):
    from PIL import Image
    from skimage import data

    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    Image.fromarray(data.astronaut()).save(path)
    return path


def test_mediapipe_face_detector_finds_the_astronauts_face(astronaut, tfedge_run):
    assert MEDIAPIPE_FACE.exists(), f"{MEDIAPIPE_FACE} is fetched by tools/setup (models/thirdparty.json)"
    data = detect_json(tfedge_run, MEDIAPIPE_FACE, astronaut, "-t", "0.5")
    assert data["layout"]["layout"] == "mediapipe-ssd"
    assert data["preprocess"]["preset"] == "mobilenet" and data["preprocess"]["fit"] == "letterbox"
    raw, logits = raw_outputs(MEDIAPIPE_FACE, astronaut, "letterbox", (128, 128), signed_unit=True)
    boxes, scores = [], []
    for (ax, ay), row, logit in zip(blazeface_anchors(), raw[0], logits[0, :, 0]):
        score = 1 / (1 + math.exp(-min(max(logit, -100), 100)))
        if score >= 0.5:
            cx, cy = ax * 128 + row[0], ay * 128 + row[1]  # x first (reverse_output_order), input pixels
            boxes.append([cx - row[2] / 2, cy - row[3] / 2, cx + row[2] / 2, cy + row[3] / 2])
            scores.append(score)
    expected = [(0, scores[i], to_original(boxes[i], (512, 512), (128, 128), "letterbox"))
                for i in loop_nms(boxes, scores, [0] * len(boxes), 0.45)]
    assert_same(data["results"][0]["objects"], expected)
    assert len(expected) == 1 and loop_iou(data["results"][0]["objects"][0]["box"], ASTRONAUT_FACE) > 0.7


def test_fit_flag_overrides_the_layout_default(models, images, tfedge_run):
    from PIL import Image

    data = detect_json(tfedge_run, models["e2e"], images[0], "--fit", "stretch")
    assert data["preprocess"]["fit"] == "stretch" and "--fit stretch" in data["preprocess"]["from"]
    expected = reference("e2e", raw_outputs(models["e2e"], images[0], "stretch", (64, 96)),
                         Image.open(images[0]).size, (64, 96), "stretch")
    assert_same(data["results"][0]["objects"], expected)


def test_detect_pixels_equals_detect_on_the_file(models, images):
    """An image held in memory (the host's evaluation path) gives the file's objects; a float array is refused."""
    from PIL import Image
    from tfedge_device.detect import Detector
    from tfedge_device.errors import BadInput

    detector = Detector(models["e2e"])
    from_file = detector.detect(images[1]).objects
    in_memory = detector.detect_pixels(np.asarray(Image.open(images[1]).convert("RGB"))).objects
    assert len(from_file) == 2 and in_memory == from_file
    with pytest.raises(BadInput, match="uint8"):
        detector.detect_pixels(np.zeros((20, 30, 3), np.float32))


# -- labels, drawing, the pycoral output ----------------------------------------------------------------
def test_coco_style_labels_with_gaps_and_pycoral_text_output(models, images, tfedge_run, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("0  person\n2  car\n")  # id 1 missing, as in COCO label maps
    result = tfedge_run("detect", models["ssd"], "-i", images[0], "-l", labels, "-t", "0.5", "-c", "3")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "----INFERENCE TIME----" and len([x for x in lines if x.endswith("ms")]) == 3
    results = lines[lines.index("-------RESULTS--------") + 1:]
    assert [line.split(":")[0] for line in results] == ["person", "car", "1"]
    assert results[0].startswith("person: 0.90000 (")


@pytest.mark.parametrize("member, text", [
    ("metadata.json", '{"task": "detect", "names": {"0": "person", "1": "bicycle", "2": "car"}}'),
    ("meta.txt", "{'task': 'detect', 'names': {0: 'person', 1: 'bicycle', 2: 'car'}}"),  # tflite-support's form
])
def test_class_names_embedded_by_an_ultralytics_export_are_the_labels(models, images, tmp_path, member, text):
    """Ultralytics appends a zip archive holding its metadata to the .tflite; its `names` label the classes."""
    import zipfile

    from tfedge_device.detect import Detector

    model = tmp_path / "yolov8n_float32.tflite"
    model.write_bytes(models["yolo-float-first"].read_bytes())
    with zipfile.ZipFile(model, "a") as archive:  # as Ultralytics' exporter does
        archive.writestr(member, text)
    detector = Detector(model)
    assert detector.labels_origin == "embedded Ultralytics metadata"
    assert [o.label for o in detector.detect(images[0]).objects] == ["person", "bicycle", "car", "bicycle", "car"]


def test_output_draws_boxes_on_the_original_image(models, images, tfedge_run, tmp_path):
    from PIL import Image
    from tfedge_device.draw import colour

    out = tmp_path / "drawn.png"
    data = detect_json(tfedge_run, models["ssd"], images[0], "-t", "0.5", "-o", out)
    with Image.open(out) as image:
        assert image.size == IMAGE_SIZES[0]
        obj = data["results"][0]["objects"][0]
        x, y = round(obj["box"][0]), round((obj["box"][1] + obj["box"][3]) / 2)  # left edge, halfway down
        assert image.convert("RGB").getpixel((x, y)) == colour(obj["id"])
    several = detect_json(tfedge_run, models["ssd"], images, "-o", tmp_path / "folder")
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == sorted(p.name for p in images)
    assert several["drawn"] == [str(tmp_path / "folder" / p.name) for p in images]


# -- NMS against a plain loop ---------------------------------------------------------------------------
def test_nms_equals_the_greedy_loop_on_random_boxes():
    from tfedge_device.nms import nms

    rng = np.random.default_rng(18)
    for trial in range(30):
        n = int(rng.integers(1, 300))
        corners = rng.uniform(-20, 200, (n, 2))
        boxes = np.concatenate([corners, corners + rng.uniform(1, 80, (n, 2))], 1).astype(np.float32)
        scores = rng.random(n).astype(np.float32)
        classes = rng.integers(0, int(rng.integers(1, 6)), n)
        threshold = float(rng.choice([0.3, 0.45, 0.7]))
        want = loop_nms(boxes.tolist(), scores.tolist(), classes.tolist(), threshold)
        assert nms(boxes, scores, classes, threshold, max_detections=10**6).tolist() == want, trial
    # crowds: jittered copies of a few large boxes (their pairs grow as n^2, so greedy steps thin them first)
    from tfedge_device import nms as nms_module

    for trial in range(3):
        centres = rng.uniform(100, 300, (4, 2))[rng.integers(0, 4, 700)] + rng.normal(0, 3, (700, 2))
        sizes = rng.uniform(150, 250, (4, 2))[rng.integers(0, 4, 700)] * rng.uniform(0.9, 1.1, (700, 2))
        crowd = np.concatenate([centres - sizes / 2, centres + sizes / 2], 1).astype(np.float32)
        scores = rng.random(700).astype(np.float32)
        assert nms_module._sweep(crowd, 0.45)[3][-1] > nms_module._pair_budget(700)  # the greedy path is taken
        want = loop_nms(crowd.tolist(), scores.tolist(), [0] * 700, 0.45)
        assert nms(crowd, scores, None, 0.45, max_detections=10**6).tolist() == want, trial
    # a suppression chain: each box overlaps the next; greedy keeps every other one
    chain = np.array([[i * 3.0, 0, i * 3.0 + 10, 10] for i in range(12)], np.float32)  # IoU 7/13 with the next
    chain_scores = np.linspace(1, 0.5, 12).astype(np.float32)
    want = loop_nms(chain.tolist(), chain_scores.tolist(), [0] * 12, 0.45)
    assert want == list(range(0, 12, 2))
    assert nms(chain, chain_scores, np.zeros(12, int), 0.45).tolist() == want


# -- bad inputs -----------------------------------------------------------------------------------------
def test_a_model_of_no_detection_layout_is_refused(models, images, tfedge_run):
    result = tfedge_run("detect", models["not-detection"], "-i", images[0])
    assert_clean_error(result, 2, "not a detection model", "[1, 10]")


def test_a_corrupt_image_is_refused_and_nothing_drawn(models, images, tfedge_run, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0" + bytes(50))
    result = tfedge_run("detect", models["ssd"], "-i", images[0], broken, "-o", tmp_path / "out")
    assert_clean_error(result, 2, "cannot read image", "broken.jpg")
    assert not (tmp_path / "out").exists()


def test_labels_that_do_not_fit_are_refused(models, images, tfedge_run, tmp_path):
    short = tmp_path / "two.txt"
    short.write_text("cat\ndog\n")
    assert_clean_error(tfedge_run("detect", models["yolo-float-first"], "-i", images[0], "-l", short), 2,
                       "2 labels", "3 classes")
    assert_clean_error(tfedge_run("detect", models["ssd"], "-i", images[0], "-l", short), 2,
                       "2 labels", "3 classes")
    one = tmp_path / "one.txt"
    one.write_text("cat\n")  # the end-to-end model does not say its class count: refused at its class id 1
    assert_clean_error(tfedge_run("detect", models["e2e"], "-i", images[0], "-l", one), 2, "1 labels",
                       "class id 1")


def test_letterbox_placement_round_trips():
    """The Placement of a letterboxed image maps the image's own corners back to its corners."""
    from PIL import Image
    from tfedge_device.preprocess import ImageSpec, fit_image

    for width, height in ((150, 70), (45, 120), (96, 64), (1000, 3)):
        fitted, placement = fit_image(Image.new("RGB", (width, height)), ImageSpec(64, 96, 3, fit="letterbox"))
        assert fitted.size == (96, 64)
        inner = [placement.pad_x, placement.pad_y, placement.pad_x + width * placement.scale_x,
                 placement.pad_y + height * placement.scale_y]
        back = placement.to_original(np.array([inner]))[0]
        assert max(abs(a - b) for a, b in zip(back, [0, 0, width, height])) <= 1.0
        assert math.isclose(placement.scale_x, min(64 / height, 96 / width))
