"""`tfedge-run serve`: TensorFlow Serving's REST API on the device, with real HTTP clients (the standard
library's http.client, and curl), real interpreters, real digits. Outputs are compared with the CLI's and with
the one inference path (tfedge_device.model.Model) run in this process.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import DIGITS, VENV_BIN, run_command
from tfedge_device.model import Model


class Served:
    """A `tfedge-run serve` process on a free loopback port."""

    def __init__(self, tmp: Path, *args):
        port_file = tmp / f"port-{time.monotonic_ns()}"
        self.log = tmp / f"serve-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen([str(VENV_BIN / "tfedge-run"), "serve", *map(str, args), "--port", "0",
                                      "--port-file", str(port_file)], stdout=subprocess.DEVNULL,
                                     stderr=self.log.open("w"))
        deadline = time.monotonic() + 60
        while not port_file.exists():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    def request(self, method: str, path: str, body=None, headers=None, connection=None):
        """-> (status, headers, parsed JSON body)."""
        own = connection is None
        connection = connection or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers = {"Content-Type": "application/json", **(headers or {})}
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        if own:
            connection.close()
        return response.status, dict(response.getheaders()), json.loads(data)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def digits_bundle(digits_int8, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("serve") / "digits.tfedge"
    result = run_command("tfedge", "bundle", digits_int8, "-o", out, "--sample", DIGITS / "images" / "digit_3.png")
    assert result.returncode == 0, result
    return out


@pytest.fixture(scope="module")
def server(digits_int8, digits_float, tmp_path_factory):
    served = Served(tmp_path_factory.mktemp("served"), digits_int8, f"float={digits_float}", "--threads", "2")
    yield served
    assert served.stop() == 0


@pytest.fixture(scope="module")
def test_images(digits_test):
    x, y = digits_test
    return x[:16], y[:16]


def reference(model_path: Path, batch: np.ndarray) -> np.ndarray:
    model = Model(model_path)
    return np.stack([model.predict(example[None])[0][0] for example in batch])


def test_status_and_metadata(server, digits_int8):
    status, _, body = server.request("GET", "/v1/models/digits_int8")
    assert status == 200
    version = body["model_version_status"][0]
    assert version["state"] == "AVAILABLE"
    import hashlib

    assert version["version"] == hashlib.sha256(digits_int8.read_bytes()).hexdigest()[:16]
    status, _, meta = server.request("GET", "/v1/models/digits_int8/metadata")
    assert status == 200
    signature = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]
    (input_name, tensor), = signature["inputs"].items()
    assert input_name == tensor["name"] == "image"  # the SignatureDef's name (the Keras Input's), not the tensor's
    assert [int(d["size"]) for d in tensor["tensor_shape"]["dim"]] == [1, 8, 8, 1]
    assert tensor["dtype"] == "DT_FLOAT" and tensor["tfedge_quantization"]["dtype"] == "int8"
    (output_name, out), = signature["outputs"].items()
    assert output_name == out["name"] == "output_0"
    assert [int(d["size"]) for d in out["tensor_shape"]["dim"]] == [1, 10]
    assert meta["model_spec"]["version"] == version["version"]


def test_predict_row_and_columnar_match_the_inference_path(server, digits_int8, digits_float, test_images):
    x, y = test_images
    for name, path in (("digits_int8", digits_int8), ("float", digits_float)):
        expected = reference(path, x)
        status, _, rows = server.request("POST", f"/v1/models/{name}:predict", {"instances": x.tolist()})
        assert status == 200, rows
        np.testing.assert_allclose(np.asarray(rows["predictions"]), expected, atol=1e-6)
        status, _, columns = server.request("POST", f"/v1/models/{name}:predict", {"inputs": x.tolist()})
        assert status == 200, columns
        np.testing.assert_allclose(np.asarray(columns["outputs"]), expected, atol=1e-6)
        # named forms: the signature's input name as TF Serving clients send it
        (input_name,) = server.request("GET", f"/v1/models/{name}/metadata")[2]["metadata"]["signature_def"][
            "signature_def"]["serving_default"]["inputs"]
        status, _, named = server.request("POST", f"/v1/models/{name}:predict",
                                          {"instances": [{input_name: row} for row in x[:3].tolist()]})
        assert status == 200, named
        np.testing.assert_allclose(np.asarray(named["predictions"]), expected[:3], atol=1e-6)
    assert (expected.argmax(1) == y).mean() >= 0.9  # the float model really classifies these digits


def test_predict_equals_tfedge_run_run(server, digits_int8, test_images, tfedge_run, tmp_path):
    """TF Serving's row format answers what `tfedge-run run MODEL --input x.npy --json` prints, value for value."""
    x, _ = test_images
    status, _, rows = server.request("POST", "/v1/models/digits_int8:predict", {"instances": x[:3].tolist()})
    assert status == 200, rows
    for i in range(3):
        np.save(tmp_path / f"x{i}.npy", x[i:i + 1])
        result = tfedge_run("run", digits_int8, "--input", tmp_path / f"x{i}.npy", "--json")
        assert result.returncode == 0, result
        (output,) = json.loads(result.stdout)["outputs"]
        assert rows["predictions"][i] == output["output_0"]["values"][0]


def test_classify_equals_the_cli(server, digits_int8, tfedge_run):
    image = DIGITS / "images" / "digit_3.png"
    cli = tfedge_run("classify", digits_int8, "--input", image, "--json")
    assert cli.returncode == 0, cli
    expected = json.loads(cli.stdout)["results"][0]["classes"]
    raw = server.request("POST", "/v1/models/digits_int8:classify", image.read_bytes(),
                         {"Content-Type": "image/png"})
    as_json = server.request("POST", "/v1/models/digits_int8:classify",
                             {"image": {"b64": base64.b64encode(image.read_bytes()).decode()}, "top_k": 3})
    boundary = "tfedgeboundary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"d.png\"\r\n"
                 f"Content-Type: image/png\r\n\r\n").encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    form = server.request("POST", "/v1/models/digits_int8:classify", multipart,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    for status, _, body in (raw, as_json, form):
        assert status == 200, body
        assert body["results"][0]["classes"][:3] == expected[:3]
        assert body["results"][0]["classes"][0]["label"] == "3"


def test_curl_the_documented_request(server, digits_int8, test_images):
    assert shutil.which("curl"), "curl is a Debian package tools/setup installs"
    x, _ = test_images
    body = json.dumps({"instances": x[:2].tolist()})
    completed = subprocess.run(["curl", "-s", "-d", body, "-X", "POST",
                                f"http://127.0.0.1:{server.port}/v1/models/digits_int8:predict"],
                               capture_output=True, text=True, timeout=60, check=True)
    np.testing.assert_allclose(np.asarray(json.loads(completed.stdout)["predictions"]),
                               reference(digits_int8, x[:2]), atol=1e-6)


BAD_REQUESTS = [
    # (method, path, body, headers, status, words in the error)
    ("POST", "/v1/models/digits_int8:predict", b"{not json", {}, 400, "not valid JSON"),
    ("POST", "/v1/models/digits_int8:predict", {"rows": []}, {}, 400, "instances"),
    ("POST", "/v1/models/digits_int8:predict", {"instances": [], "inputs": []}, {}, 400, "exactly one"),
    ("POST", "/v1/models/digits_int8:predict", {"instances": [[1, 2, 3]]}, {}, 400, "shape"),
    ("POST", "/v1/models/digits_int8:predict", {"instances": [["a"] * 8]}, {}, 400, "numbers"),
    ("POST", "/v1/models/digits_int8:predict", {"instances": [[[0.0]] * 8, [[0.0]] * 3]}, {}, 400, "shape"),
    ("POST", "/v1/models/digits_int8:predict", {"inputs": {"nope": [1]}}, {}, 400, "unknown: nope"),
    ("POST", "/v1/models/nosuch:predict", {"instances": [1]}, {}, 404, "not served here"),
    ("POST", "/v1/models/digits_int8:explode", {"instances": [1]}, {}, 404, "unknown method"),
    ("GET", "/v2/anything", None, {}, 404, "no such endpoint"),
    ("POST", "/v1/models/digits_int8:classify", b"\x89PNG\r\n\x1a\nbroken", {"Content-Type": "image/png"}, 400,
     "cannot read image"),
    ("POST", "/v1/models/digits_int8:classify", {"image": {"b64": "@@@"}}, {}, 400, "base64"),
    ("POST", "/v1/models/digits_int8:classify", {"image": "aGk=", "top_k": 0}, {}, 400, "top_k"),
    ("POST", "/v1/models/digits_int8:embed", {"sentences": ["hi"]}, {}, 400, "not"),
    ("GET", "/v1/models/digits_int8/versions/123", None, {}, 404, "has version"),
    ("PUT", "/v1/models/digits_int8", b"", {}, 501, "Unsupported method"),
]


@pytest.mark.parametrize("method, path, body, headers, status, words", BAD_REQUESTS,
                         ids=[f"{i}-{row[-1][:20]}" for i, row in enumerate(BAD_REQUESTS)])
def test_bad_requests_get_a_4xx_and_one_line(server, method, path, body, headers, status, words):
    got, _, answer = server.request(method, path, body, headers)
    assert got == status, answer
    assert set(answer) == {"error"} and "\n" not in answer["error"], answer
    assert words.lower() in answer["error"].lower(), answer
    assert server.request("GET", "/v1/models/digits_int8")[0] == 200  # still serving


def test_body_limit_token_and_loopback(digits_int8, tmp_path):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    served = Served(tmp_path, digits_int8, "--max-body", 1000, "--token-file", token)
    try:
        assert served.request("GET", "/v1/models/digits_int8")[0] == 401
        status, headers, body = served.request("GET", "/v1/models/digits_int8",
                                               headers={"Authorization": "Bearer wrong"})
        assert status == 401 and headers.get("WWW-Authenticate") == "Bearer" and "token" in body["error"]
        auth = {"Authorization": "Bearer s3cret"}
        assert served.request("GET", "/v1/models/digits_int8", headers=auth)[0] == 200
        status, _, body = served.request("POST", "/v1/models/digits_int8:predict",
                                         {"instances": [[[0.0]] * 8] * 50}, auth)
        assert status == 413 and "--max-body" in body["error"]
        assert served.request("GET", "/v1/models/digits_int8", headers=auth)[0] == 200
    finally:
        assert served.stop() == 0
    assert "reachable from other machines" not in served.log.read_text()


def test_bad_command_lines(digits_int8, tmp_path, tfedge_run):
    from conftest import assert_clean_error

    assert_clean_error(tfedge_run("serve", tmp_path / "absent.tflite"), 2, "model not found")
    assert_clean_error(tfedge_run("serve", digits_int8, f"a={digits_int8}", f"a={digits_int8}"), 2,
                       "two models named")
    assert_clean_error(tfedge_run("serve", digits_int8, "--token-file", tmp_path / "none"), 2, "--token-file")
    assert_clean_error(tfedge_run("serve", digits_int8, "--port", "70000"), 2, "not a port")


def _load(served: Served, name: str, x: np.ndarray, clients: int, per_client: int, answers: list, errors: list,
          stop: threading.Event | None = None):
    """`clients` threads, each with a keep-alive connection, sending `per_client` single-image predicts."""

    def client(number):
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
        for i in range(per_client):
            if stop is not None and stop.is_set():
                break
            k = (number * per_client + i) % len(x)
            try:
                status, _, body = served.request("POST", f"/v1/models/{name}:predict",
                                                 {"instances": [x[k].tolist()]}, connection=connection)
            except (OSError, http.client.HTTPException) as err:
                errors.append(repr(err))
                connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
                continue
            if status != 200:
                errors.append((status, body))
            else:
                answers.append((k, np.asarray(body["predictions"][0])))
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    return threads


def test_concurrent_clients_get_correct_answers(server, digits_int8, test_images):
    x, _ = test_images
    expected = reference(digits_int8, x)
    answers, errors = [], []
    for thread in _load(server, "digits_int8", x, clients=32, per_client=10, answers=answers, errors=errors):
        thread.join()
    assert errors == []
    assert len(answers) == 320
    for k, scores in answers:
        np.testing.assert_allclose(scores, expected[k], atol=1e-6)


def test_a_redeployed_bundle_swaps_in_without_dropping_requests(digits_int8, digits_float, tmp_path, test_images):
    """The deploy's atomic swap (rename of a complete bundle directory) 10 times during load: every request
    answered, every answer exactly one bundle's output."""
    x, _ = test_images
    bundles = []
    for name, model in (("a", digits_int8), ("b", digits_float)):
        out = tmp_path / f"{name}.tfedge"
        assert run_command("tfedge", "bundle", model, "-o", out).returncode == 0
        bundles.append(out)
    expected = [reference(digits_int8, x), reference(digits_float, x)]
    import hashlib

    hashes = [hashlib.sha256((bundle / "SHA256SUMS").read_bytes()).hexdigest()[:16] for bundle in bundles]
    assert hashes[0] != hashes[1]
    live = tmp_path / "live.tfedge"
    shutil.copytree(bundles[0], live)
    served = Served(tmp_path, f"digits={live}", "--threads", "2", "--reload-interval", "0.05")
    versions = [served.request("GET", "/v1/models/digits")[2]["model_version_status"][0]["version"]]
    answers, errors, stop = [], [], threading.Event()
    threads = _load(served, "digits", x, clients=8, per_client=100000, answers=answers, errors=errors, stop=stop)
    try:
        for swap in range(10):
            incoming = tmp_path / f"incoming{swap}"
            shutil.copytree(bundles[(swap + 1) % 2], incoming)
            aside = tmp_path / f"aside{swap}"
            live.rename(aside)  # deploy_remote's rename-aside fallback: the path is briefly absent
            incoming.rename(live)
            shutil.rmtree(aside)
            deadline = time.monotonic() + 20
            while versions[-1] != hashes[(swap + 1) % 2]:
                assert time.monotonic() < deadline, f"swap {swap}: the new bundle was not picked up"
                time.sleep(0.02)
                versions.append(served.request("GET", "/v1/models/digits")[2]["model_version_status"][0]["version"])
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        assert served.stop() == 0
    assert errors == []
    assert versions[0] == hashes[0] and set(versions) == set(hashes)
    assert len(answers) > 100
    matched = [any(np.allclose(scores, ref[k], atol=1e-6) for ref in expected) for k, scores in answers]
    assert all(matched)
    from_b = sum(np.allclose(scores, expected[1][k], atol=1e-6) and not np.allclose(scores, expected[0][k], atol=1e-6)
                 for k, scores in answers)
    assert from_b > 0  # the swapped-in bundle did answer
    assert "now serving version" in served.log.read_text()


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory) -> Path:
    """A float model that takes ~tens of ms per inference (large dense layers), to fill the queue."""
    import keras
    import tensorflow as tf

    inputs = keras.Input((1024,), batch_size=1)
    x = inputs
    for _ in range(12):
        x = keras.layers.Dense(1024)(x)
    model = keras.Model(inputs, x)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    path = tmp_path_factory.mktemp("slow") / "slow.tflite"
    path.write_bytes(converter.convert())
    return path


def test_a_full_queue_answers_503_and_never_hangs(slow_model, tmp_path):
    served = Served(tmp_path, slow_model, "--threads", "1", "--queue", "1")
    barrier = threading.Barrier(8)
    results = []

    def client():
        barrier.wait()
        results.append(served.request("POST", "/v1/models/slow:predict", {"instances": [[0.5] * 1024] * 2}))

    threads = [threading.Thread(target=client) for _ in range(8)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
            assert not thread.is_alive()
    finally:
        assert served.stop() == 0
    statuses = sorted(status for status, _, _ in results)
    assert 200 in statuses and 503 in statuses, statuses
    for status, headers, body in results:
        if status == 503:
            assert headers.get("Retry-After") == "1" and "--queue" in body["error"]


def test_sigterm_finishes_requests_in_flight(slow_model, tmp_path):
    """A slow request (a batch of 300 through a model of a few ms) is in flight when SIGTERM comes: it is
    answered in full, new connections are refused, and the server exits 0."""
    served = Served(tmp_path, slow_model, "--threads", "1")
    batch = np.random.default_rng(0).random((300, 1024), dtype=np.float32)
    expected = reference(slow_model, batch)
    results, sent = [], threading.Event()
    body = json.dumps({"instances": batch.tolist()})

    def request():
        connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=60)
        connection.request("POST", "/v1/models/slow:predict", body, {"Content-Type": "application/json"})
        sent.set()
        response = connection.getresponse()
        results.append((response.status, None, json.loads(response.read()), time.monotonic()))

    inflight = threading.Thread(target=request)
    inflight.start()
    assert sent.wait(timeout=60)
    time.sleep(0.2)
    signalled = time.monotonic()
    served.proc.send_signal(signal.SIGTERM)
    inflight.join(timeout=60)
    assert served.proc.wait(timeout=60) == 0
    (status, _, body, answered), = results
    assert answered > signalled  # it was in flight when the signal came
    assert status == 200, body
    np.testing.assert_allclose(np.asarray(body["predictions"]), expected, rtol=1e-4, atol=1e-4)
    with pytest.raises(OSError):
        served.request("GET", "/v1/models/slow")
    log = served.log.read_text()
    assert "serve: SIGTERM: stopped (in-flight requests finished in" in log, log


def test_worker_processes_share_the_port_and_stop_together(digits_int8, tmp_path, test_images):
    x, _ = test_images
    served = Served(tmp_path, digits_int8, "--workers", "2")
    answers, errors = [], []
    for thread in _load(served, "digits_int8", x, clients=8, per_client=20, answers=answers, errors=errors):
        thread.join()
    workers = subprocess.run(["pgrep", "-P", str(served.proc.pid)], capture_output=True, text=True, check=False)
    assert len(workers.stdout.split()) == 2, workers
    assert served.stop() == 0
    assert errors == [] and len(answers) == 160
    expected = reference(digits_int8, x)
    for k, scores in answers:
        np.testing.assert_allclose(scores, expected[k], atol=1e-6)
    log = served.log.read_text()
    assert log.count("SIGTERM: stopped (in-flight") == 2, log  # both workers drained
    assert "SIGTERM passed on to the workers: stopped (every worker finished" in log, log


def test_the_shared_listening_socket_never_blocks_a_worker_in_accept():
    """Worker processes share the listening socket and each one's select wakes for every connection: with a
    blocking socket the one that lost the race sat in accept(), deaf to SIGTERM (the test above hung 1 run in 5).
    Non-blocking, the loser's accept raises BlockingIOError, which socketserver ignores."""
    from tfedge_device.serve.server import Limits, Server

    server = Server(("127.0.0.1", 0), {}, Limits(1024, 4, 1.0, None))
    try:
        assert server.socket.getblocking() is False
        assert server._handle_request_noblock() is None  # nothing to accept: returns at once, no hang
    finally:
        server.server_close()


def test_detect_equals_the_cli(tmp_path, tfedge_run):
    """:detect on the SSD model of test_device_detect (the real TFLite_Detection_PostProcess op) answers what
    `tfedge-run detect --json` prints, boxes in the uploaded image's pixels."""
    from PIL import Image
    from test_device_detect import ssd_model

    model = tmp_path / "ssd.tflite"
    model.write_bytes(ssd_model())
    image = tmp_path / "wide.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (90, 200, 3), dtype=np.uint8)).save(image)
    cli = tfedge_run("detect", model, "--input", image, "--json", "-t", "0.25")
    assert cli.returncode == 0, cli
    expected = json.loads(cli.stdout)["results"][0]["objects"]
    assert len(expected) >= 3
    served = Served(tmp_path, model)
    try:
        status, _, body = served.request("POST", "/v1/models/ssd:detect",
                                         {"image": base64.b64encode(image.read_bytes()).decode(), "threshold": 0.25})
        assert status == 200, body
        assert body["results"][0]["objects"] == expected
        status, _, body = served.request("POST", "/v1/models/ssd:detect", {"text": "hello"})
        assert status == 400 and "takes images" in body["error"]
    finally:
        assert served.stop() == 0


def test_a_real_dynamic_input_model_takes_each_request_at_its_shape(tmp_path):
    """openWakeWord's melspectrogram front-end (signature [-1, -1], another project's model, fetched by
    tools/setup): each :predict runs at the request's shape, equal to a bare LiteRT interpreter resized so."""
    from ai_edge_litert.interpreter import Interpreter

    model = Path(__file__).resolve().parents[1] / ".cache" / "thirdparty" / "pyopen-wakeword" / "melspectrogram.tflite"
    assert model.is_file(), "run tools/setup: it fetches the third-party models"
    audio = np.sin(np.linspace(0, 400 * np.pi, 2560, dtype=np.float32)) * 1000
    served = Served(tmp_path, f"mel={model}")
    try:
        for samples in (1280, 2560):
            interpreter = Interpreter(model_path=str(model))
            index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(index, [1, samples])
            interpreter.allocate_tensors()
            interpreter.set_tensor(index, audio[None, :samples])
            interpreter.invoke()
            expected = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
            status, _, body = served.request("POST", "/v1/models/mel:predict", {"inputs": audio[None, :samples].tolist()})
            assert status == 200, body
            np.testing.assert_allclose(np.asarray(body["outputs"]), expected, rtol=1e-5, atol=1e-4)
        status, _, meta = served.request("GET", "/v1/models/mel/metadata")
        (tensor,) = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"].values()
        assert [int(d["size"]) for d in tensor["tensor_shape"]["dim"]] == [-1, -1]
    finally:
        assert served.stop() == 0


def test_a_stateful_model_starts_every_request_from_its_initial_state(tmp_path):
    """A model with resource variables (a running total): a request's examples carry the state in order; the next
    request, on whichever pooled interpreter, starts again from zero (not from the last client's total)."""
    from test_device_run import state_model

    model = state_model(tmp_path / "state.tflite")
    served = Served(tmp_path, model, "--threads", "2")
    try:
        steps = [[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0], [0.5, 0.5, 0.5, 0.5]]
        running = np.cumsum(steps, axis=0).tolist()
        for _ in range(3):
            status, _, answer = served.request("POST", "/v1/models/state:predict", {"instances": steps})
            assert status == 200, answer
            assert answer == {"predictions": running}
    finally:
        assert served.stop() == 0
