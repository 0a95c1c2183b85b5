"""`tfedge-run stream`: a generated video (real digits from scikit-learn, scaled up, moving) through the digits
classifier and the SSD detector; each frame's result equals classify/detect on the same decoded frame; the
annotated video is written; bad input and a missing camera are one-line errors."""

from __future__ import annotations

import json

import cv2  # opencv-python-headless: the device's stream extra, which tools/setup installs
import numpy as np
import pytest
from conftest import assert_clean_error

FRAMES = 24


def write_digits_video(path, x, count, fourcc="MJPG"):
    """`count` frames of 96x96, each a real held-out digit of `x` scaled up (a camera filmed the test set).
    MJPG is a camera's codec; FFV1 is lossless, so every platform decodes the same pixels (MJPG does not:
    ffmpeg's aarch64 and x86-64 IDCTs differ in the last bit)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (96, 96))
    assert writer.isOpened()
    for i in range(count):
        digit = cv2.resize((x[i, :, :, 0] * 255).astype(np.uint8), (96, 96), interpolation=cv2.INTER_NEAREST)
        writer.write(np.repeat(digit[..., None], 3, axis=2))
    writer.release()
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory, digits_test):
    x, y = digits_test
    return write_digits_video(tmp_path_factory.mktemp("stream") / "digits.avi", x, FRAMES), y[:FRAMES]


def decoded_frames(path):
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def test_classify_stream_equals_per_frame_classify(video, digits_int8, tfedge_run, tmp_path):
    from tfedge_device.classify import Classifier

    path, labels = video
    out = tmp_path / "annotated.avi"
    result = tfedge_run("stream", digits_int8, "--video", path, "--json-lines", "--every", "2", "-o", out)
    assert result.returncode == 0, result
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in records] == list(range(0, FRAMES, 2))  # in order, every 2nd frame
    classifier = Classifier(digits_int8)
    frames = decoded_frames(path)
    assert len(frames) == FRAMES
    correct = 0
    for record in records:
        expected = classifier.classify_pixels(frames[record["frame"]])
        assert record["results"] == [p.to_dict() for p in expected.classes]
        correct += record["results"][0]["label"] == str(labels[record["frame"]])
    assert correct >= len(records) * 0.9  # the model does read the digits in the frames
    assert "frames/s" in result.stderr and "pipelined" in result.stderr
    written = decoded_frames(out)
    assert len(written) == len(records) and written[0].shape == (96, 96, 3)
    assert not np.array_equal(written[0], frames[0])  # the label was drawn


def test_detect_stream_and_sequential_agree(video, tfedge_run, tmp_path):
    from test_device_detect import ssd_model

    model = tmp_path / "ssd.tflite"
    model.write_bytes(ssd_model())
    path, _ = video
    runs = {}
    for flag in ((), ("--sequential",)):
        result = tfedge_run("stream", model, "--video", path, "--task", "detect", "--json-lines", "-t", "0.25",
                            "--max-frames", "5", *flag)
        assert result.returncode == 0, result
        runs[flag] = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["frame"] for r in runs[()]] == [0, 1, 2, 3, 4]
    strip = [[{k: v for k, v in r.items() if k != "inference_ms"} for r in run] for run in runs.values()]
    assert strip[0] == strip[1]
    assert len(runs[()][0]["results"]) >= 3 and all(len(o["box"]) == 4 for o in runs[()][0]["results"])


def test_bad_sources(digits_int8, tfedge_run, tmp_path):
    assert_clean_error(tfedge_run("stream", digits_int8, "--video", tmp_path / "none.mp4"), 2, "video not found")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    assert_clean_error(tfedge_run("stream", digits_int8, "--video", junk), 2, "cannot read video")
    broken_avi = tmp_path / "broken.avi"  # a RIFF header OpenCV's own AVI parser complains about on stderr
    broken_avi.write_bytes(b"RIFF\x00\x00\x00\x00AVI LIST\x10\x00\x00\x00junkjunkjunkjunk")
    broken = tfedge_run("stream", digits_int8, "--video", broken_avi)
    assert_clean_error(broken, 2, "cannot read video broken.avi")
    assert len(broken.stderr.strip().splitlines()) == 1, broken
    assert_clean_error(tfedge_run("stream", digits_int8), 2, "--video FILE or --camera N")
    no_camera = tfedge_run("stream", digits_int8, "--camera", "57")
    assert_clean_error(no_camera, 3, "no camera 57")
    assert len(no_camera.stderr.strip().splitlines()) == 1, no_camera  # OpenCV's own WARN lines silenced
    assert_clean_error(tfedge_run("stream", digits_int8, "--video", junk, "-o", tmp_path / "x.gif"), 2, ".avi")
