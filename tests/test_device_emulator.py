"""tfedge-run on an emulated Raspberry Pi 4 (tools/pi-emulator: qemu-user Cortex-A72, Debian arm64 Python 3.11,
aarch64 LiteRT/numpy/pillow/OpenCV/tokenizers wheels): the digits int8 model classifies the digits images, the
frames of a video streamed through it and TF Serving requests exactly as on x86-64; the real MiniLM embeds
within a cosine of x86-64's.

The emulator is built on first use (about a minute, cached in .cache/pi-emulator); the tests are skipped, with
the tool's reason, where the machine cannot build it (no Debian apt, not x86-64 Linux, no mirror).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.emulator]
TOOL = ROOT / "tools" / "pi-emulator"


@pytest.fixture(scope="module")
def emulator():
    """Run `tools/pi-emulator ARGS` -> CompletedProcess; builds (or reuses) the emulator first."""
    built = subprocess.run(
        [sys.executable, TOOL, "build"], capture_output=True, text=True, timeout=1200, check=False
    )
    if built.returncode == 3:
        pytest.skip(built.stderr.strip().splitlines()[-1])
    assert built.returncode == 0, built.stderr

    def run(*args, env=None):
        return subprocess.run([sys.executable, TOOL, *map(str, args)], capture_output=True, text=True, timeout=600,
                              check=False, env=None if env is None else {**os.environ, **env})

    return run


def test_emulated_pi4_is_aarch64_with_litert(emulator, digits_int8):
    result = emulator("tfedge-run", "info", digits_int8, "--json")
    assert result.returncode == 0, result.stderr
    runtime = json.loads(result.stdout)["runtime"]
    assert (
        runtime["machine"] == "aarch64"
        and runtime["runtime"] == "litert"
        and runtime["python"].startswith("3.11")
    )


def test_emulated_python_starts_emulated_children(emulator):
    """sys.executable is the emulator's launcher, so guard.py's probe (a child Python) runs as on a Pi."""
    child = "import subprocess, sys; print(subprocess.check_output([sys.executable, '-c', 'import platform; print(platform.machine())'], text=True))"
    result = emulator("python", "-c", child)
    assert result.returncode == 0 and result.stdout.split() == ["aarch64"], result


def test_emulated_classify_equals_x86(emulator, digits_int8, digits_dir, tfedge_run):
    args = ["classify", digits_int8, "-i", digits_dir / "images", "-k", "10", "-t", "0", "--json"]
    arm = emulator("tfedge-run", *args)
    assert arm.returncode == 0, arm.stderr
    x86 = tfedge_run(*args)
    assert x86.returncode == 0, x86
    arm_results, x86_results = json.loads(arm.stdout)["results"], json.loads(x86.stdout)["results"]
    assert [r["image"] for r in arm_results] == [r["image"] for r in x86_results]
    assert [r["classes"] for r in arm_results] == [
        r["classes"] for r in x86_results
    ]  # ids and scores, exactly
    assert [r["classes"][0]["id"] for r in arm_results] == list(range(10))


def test_emulated_bad_image_is_the_same_one_line_error(emulator, digits_int8, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    result = emulator("tfedge-run", "classify", digits_int8, "-i", tmp_path / "empty.png")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        (
            "tfedge-run: error: cannot read image empty.png: cannot identify "
            f"image file '{tmp_path / 'empty.png'}'"
        )
    ]


def test_emulated_pi4_doctor_reads_the_pi_and_is_ready_for_cpu_inference(emulator):
    result = emulator("tfedge-run", "doctor", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    checks = {row["name"]: row for row in report["checks"]}
    assert report["ready"] is True and checks["runtime"]["facts"]["runtime"] == "litert"
    assert checks["userland"]["facts"] == {"userland": "aarch64", "pointer_bits": 64, "platform": "linux-aarch64",
                                           "architecture": "64bit", "kernel": "aarch64"}
    assert checks["python"]["facts"]["version"].startswith("3.11.")
    cpu = checks["cpu"]["facts"]  # the Pi 4's /proc/cpuinfo (the emulator's sysroot)
    assert cpu["model"] == "Raspberry Pi 4 Model B Rev 1.1" and cpu["isa"] == "arm" and "asimd" in cpu["simd"]
    edgetpu = emulator("tfedge-run", "doctor", "--edgetpu")
    assert edgetpu.returncode == 3 and "FAIL  libedgetpu" in edgetpu.stdout, edgetpu.stdout + edgetpu.stderr
    assert edgetpu.stderr.strip().splitlines()[-1].startswith("tfedge-run: error: not ready: libedgetpu")


def test_emulated_pi4_streams_a_video_as_x86_does(emulator, digits_int8, digits_test, tfedge_run, tmp_path):
    from test_stream import decoded_frames, write_digits_video
    from tfedge_device.classify import Classifier

    x, labels = digits_test
    video = write_digits_video(tmp_path / "digits.avi", x, 6, fourcc="FFV1")  # lossless: same pixels on both
    args = ["stream", digits_int8, "--video", video, "--json-lines", "--every", "2", "--max-frames", "6"]
    arm = emulator("tfedge-run", *args, env={"TFEDGE_PROBE": "always"})  # guard's child Python runs emulated too
    assert arm.returncode == 0, arm.stderr
    assert "pipelined" in arm.stderr and "cannot probe" not in arm.stderr, arm.stderr
    records = [json.loads(line) for line in arm.stdout.splitlines()]
    summary = json.loads(arm.stderr.strip().splitlines()[-1])["summary"]
    assert [r["frame"] for r in records] == [0, 2, 4] and summary["frames_processed"] == 3
    x86 = tfedge_run(*args)
    assert x86.returncode == 0, x86
    drop = ("inference_ms",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in records] == [
        {k: v for k, v in json.loads(line).items() if k not in drop} for line in x86.stdout.splitlines()
    ]
    classifier, frames = Classifier(digits_int8), decoded_frames(video)
    for record in records:  # each equals classify on that frame, and reads the digit filmed
        assert record["results"] == [p.to_dict() for p in classifier.classify_pixels(frames[record["frame"]]).classes]
        assert record["results"][0]["label"] == str(labels[record["frame"]])
    no_camera = emulator("tfedge-run", "stream", digits_int8, "--camera", "0")  # a Pi without a camera: the fix
    assert no_camera.returncode == 3, no_camera.stderr
    (line,) = no_camera.stderr.strip().splitlines()
    assert line.startswith("tfedge-run: error: no camera 0") and "video` group" in line


def test_emulated_pi4_serves_tf_serving_requests_as_x86_does(emulator, digits_int8, digits_test, tmp_path):
    """`tfedge-run serve` on the emulated Pi: a real HTTP client on the host gets, for TF Serving's row format,
    the outputs the x86-64 inference path gives."""
    import http.client
    import time

    from tfedge_device.model import Model

    port_file = tmp_path / "port"
    server = subprocess.Popen([sys.executable, TOOL, "tfedge-run", "serve", digits_int8, "--port", "0",
                               "--port-file", port_file], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists():
            assert server.poll() is None and time.monotonic() < deadline, server.stderr.read()
            time.sleep(0.2)
        x = digits_test[0][:4]
        connection = http.client.HTTPConnection("127.0.0.1", int(port_file.read_text()), timeout=120)
        connection.request("POST", "/v1/models/digits_int8:predict", json.dumps({"instances": x.tolist()}),
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert response.status == 200, answer
        model = Model(digits_int8)
        assert answer["predictions"] == [model.predict(x[i:i + 1])[0][0].tolist() for i in range(4)]
    finally:
        server.terminate()
        assert server.wait(timeout=60) == 0


def test_emulated_pi4_embeds_with_the_real_minilm_close_to_x86(emulator, minilm_dynamic, tfedge_run):
    """The text path on aarch64 (the tokenizers wheel, length-adaptive inputs, dynamic-range kernels) on the real
    all-MiniLM-L6-v2: ARM's int8 kernels are not x86's, so embeddings agree to a cosine, not bit for bit."""
    from text_fixtures import PAIR, PUBLISHED, sentences

    model, _ = minilm_dynamic
    texts = [*PAIR, *sentences()[1::2][:2]]  # the model card's pair and two held-out sentences
    args = ["embed", model, *(arg for text in texts for arg in ("--text", text)), "--json"]
    arm = emulator("tfedge-run", *args)
    assert arm.returncode == 0, arm.stderr
    x86 = tfedge_run(*args)
    assert x86.returncode == 0, x86
    arm, x86 = json.loads(arm.stdout), json.loads(x86.stdout)
    assert arm["dim"] == x86["dim"] == 384 and arm["length_adaptive"] and arm["texts"] == texts
    import numpy as np

    a, b = np.asarray(arm["embeddings"]), np.asarray(x86["embeddings"])
    cosines = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cosines.min() > 0.998, cosines
    assert abs(arm["cosine"][0][1] - PUBLISHED) < 0.015  # still the model card's similarity
