"""The HTTP server: TensorFlow Serving's REST API plus tfedge's tasks, on the standard library's
ThreadingHTTPServer (no dependency: the device package stays slim; docs/serve.md says why).

Routes:
  GET  /v1/models/NAME                      status (version = the bundle's hash)
  GET  /v1/models/NAME/metadata             the signature: inputs/outputs, dtypes, shapes
  POST /v1/models/NAME:predict              TF Serving's row ("instances") or columnar ("inputs") format
  POST /v1/models/NAME:classify             an image (JSON {"image": {"b64": ...}}, multipart/form-data, or a raw
                                            image/* body), or {"text": ...} for a text classifier
  POST /v1/models/NAME:detect               an image, as for :classify (options threshold, top_k, iou)
  POST /v1/models/NAME:embed                {"sentences": [...]}
  (/v1/models/NAME/versions/V... is accepted when V is the current version.)

Bounded and safe by default: loopback unless --host says otherwise; bodies over --max-body are refused (413);
at most --queue requests are admitted at once (the rest get 503 with Retry-After, never a hang); a request waits
at most --timeout seconds for an interpreter (then 503); an optional bearer token (401 without it). Every
refusal is TF Serving's `{"error": "..."}` with one line; never a traceback to the client. SIGTERM: stop
accepting, finish the requests in flight, exit 0.
"""

from __future__ import annotations

import hmac
import json
import logging
import queue
import re
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..errors import BadInput, TfedgeError
from . import tfserving
from .models import ServedModel
from .tfserving import RequestError

log = logging.getLogger(__name__)

ROUTE = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<rest>/metadata|:[a-z]+)?$")


class Limits:
    """What bounds the server: body size, admitted requests, wait for a worker, the bearer token."""

    def __init__(self, max_body: int, queue_size: int, timeout: float, token: str | None):
        self.max_body, self.queue_size, self.timeout, self.token = max_body, queue_size, timeout, token
        self.admitted = threading.BoundedSemaphore(queue_size)


class Server(ThreadingHTTPServer):
    """One thread per connection; inference bounded by Limits and each model's worker pool."""

    daemon_threads = False  # server_close() joins the request threads: in-flight requests finish
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128  # listen backlog (socketserver's default, 5, drops connects under load: 1 s retries)

    def __init__(self, address, models: dict[str, ServedModel], limits: Limits):
        self.models, self.limits = models, limits
        self.draining = self.stop_requested = False
        super().__init__(address, Handler)
        # Worker processes share this socket: each one's select wakes for a connection only one can accept. A
        # blocking accept left the others waiting in accept(), deaf to SIGTERM's drain (a hang seen 1 run in 5);
        # non-blocking, the loser's accept raises BlockingIOError, which socketserver ignores.
        self.socket.setblocking(False)

    def drain(self) -> None:
        """Refuse new requests (503) and end serve_forever at its next poll; server_close() then lets the
        in-flight ones finish. Safe in a signal handler: two assignments, no lock (a handler that started a
        thread could deadlock on threading's own lock, held by the main thread it interrupted mid-start)."""
        self.draining = True
        self.stop_requested = True

    def service_actions(self) -> None:  # serve_forever calls this after every poll
        if self.stop_requested:
            raise _Stopped


class _Stopped(Exception):
    """Ends serve_forever from inside its own loop (drain was asked)."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections
    server_version = "tfedge-serve"
    timeout = 15  # an idle keep-alive connection is closed after this many seconds
    server: Server

    # -- plumbing -----------------------------------------------------------------------------------------------
    def setup(self):
        super().setup()
        # headers and body go out as two writes: without TCP_NODELAY, Nagle holds the body until the client's
        # delayed ACK (~40 ms per request on Linux)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):
        log.debug("%s %s", self.address_string(), format % args)

    def send_json(self, status: int, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.server.draining:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":  # an HTTP/1.0 client that asked for keep-alive (ab -k)
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        self.wfile.write(data)

    def send_error_json(self, status: int, message: str, headers: dict | None = None) -> None:
        self.send_json(status, {"error": " ".join(str(message).split())}, headers)

    def send_error(self, code, message=None, explain=None):  # the base class's HTML errors, as JSON
        self.close_connection = True
        self.send_error_json(code, message or HTTPStatus(code).phrase)

    def authorized(self) -> bool:
        token = self.server.limits.token
        if token is None:
            return True
        given = self.headers.get("Authorization", "")
        return given.startswith("Bearer ") and hmac.compare_digest(given[7:].strip().encode(), token.encode())

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise RequestError("chunked bodies are not accepted: send Content-Length", 411)
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("a POST needs Content-Length", 411)
        try:
            length = int(length)
        except ValueError:
            self.close_connection = True
            raise RequestError("Content-Length is not a number") from None
        if length > self.server.limits.max_body:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise RequestError(f"body of {length} bytes is over the limit of {self.server.limits.max_body} "
                               "(--max-body)", 413)
        return self.rfile.read(length)

    # -- routing ------------------------------------------------------------------------------------------------
    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def handle_request(self, method: str) -> None:
        try:
            if self.server.draining:
                raise RequestError("the server is shutting down", 503)
            if not self.authorized():
                self.send_error_json(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
                return
            match = ROUTE.match(self.path.split("?", 1)[0])
            if not match:
                raise RequestError(f"no such endpoint: {method} {self.path[:100]}", 404)
            served = self.server.models.get(match["name"])
            if served is None:
                raise RequestError(f"model {match['name']!r} is not served here (serving: "
                                   f"{', '.join(sorted(self.server.models))})", 404)
            version = served.current
            if match["version"] and match["version"] != version.version:
                raise RequestError(f"model {served.name} has version {version.version}, not {match['version']}", 404)
            rest = match["rest"] or ""
            if method == "GET" and rest in ("", "/metadata"):
                self.send_json(200, tfserving.status_body(version.version) if not rest else self.metadata(served, version))
            elif method == "POST" and rest.startswith(":"):
                self.infer(served, rest[1:])
            else:
                raise RequestError(f"{method} is not allowed on {self.path[:100]}", 405)
        except RequestError as err:
            self.send_error_json(err.status, err.message, {"Retry-After": "1"} if err.status == 503 else None)
        except TfedgeError as err:  # the model or input cannot be used: the client's request is the problem
            self.send_error_json(400, err.one_line())
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as err:
            log.exception("internal error on %s", self.path)
            self.send_error_json(500, f"internal error: {type(err).__name__}")

    # -- endpoints ----------------------------------------------------------------------------------------------
    @staticmethod
    def metadata(served: ServedModel, version) -> dict:
        model = version.probe_model
        inputs = [tfserving.tensor_info(name, spec) for name, spec in zip(version.input_names, model.inputs)]
        outputs = [tfserving.tensor_info(name, spec) for name, spec in zip(version.output_names, model.outputs)]
        return tfserving.metadata_body(served.name, version.version, inputs, outputs,
                                       {**version.describe(), "swaps": served.swaps})

    def infer(self, served: ServedModel, verb: str) -> None:
        if verb not in VERBS:
            raise RequestError(f"unknown method :{verb} (use :{', :'.join(sorted(VERBS))})", 404)
        body = self.read_body()
        limits = self.server.limits
        if not limits.admitted.acquire(blocking=False):
            raise RequestError(f"busy: {limits.queue_size} requests already admitted (--queue)", 503)
        try:
            version = served.current  # the version this request runs on to the end, even if a swap comes
            try:
                worker = version.pool.get(timeout=limits.timeout)
            except queue.Empty:
                raise RequestError(f"no interpreter free within {limits.timeout:g} s (--timeout)", 503) from None
            try:
                answer = VERBS[verb](worker, version, body, self.headers.get("Content-Type", ""))
            finally:
                version.pool.put(worker)
        finally:
            limits.admitted.release()
        self.send_json(200, answer)


def _json_body(body: bytes):
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(f"the body is not valid JSON: {err}") from None


def predict(worker, version, body: bytes, content_type: str) -> dict:
    spec_dtypes = [spec.dtype for spec in version.probe_model.inputs]
    form, values = tfserving.parse_predict(_json_body(body), version.input_names, spec_dtypes)
    return tfserving.predict_response(form, worker.predict(form, values), version.output_names)


def _image_bytes(body: bytes, content_type: str) -> list[bytes]:
    """The images of a :classify request: raw image/* body, multipart/form-data files, or JSON base64."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind.startswith("image/") or kind == "application/octet-stream":
        return [body]
    if kind == "multipart/form-data":
        from email.parser import BytesParser
        from email.policy import HTTP

        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        parts = [part.get_payload(decode=True) for part in message.iter_parts()] if message.is_multipart() else []
        parts = [part for part in parts if part]
        if not parts:
            raise RequestError("multipart/form-data body has no file part")
        return parts
    raise RequestError("send an image as image/* or multipart/form-data, or JSON {\"image\": {\"b64\": ...}}")


def _items(body: bytes, content_type: str, texts_allowed: bool) -> tuple[dict, list, list]:
    """(options, texts, images) of a :classify/:detect request: JSON with base64 images (or texts), or the
    image itself as the body (image/*, multipart/form-data)."""
    if content_type.split(";", 1)[0].strip().lower() != "application/json" and body[:1] not in (b"{", b"["):
        return {}, [], _image_bytes(body, content_type)
    options = _json_body(body)
    if not isinstance(options, dict):
        raise RequestError("the JSON body must be an object")
    texts = options.get("texts") or ([options["text"]] if "text" in options else [])
    images = options.get("images") or ([options["image"]] if "image" in options else [])
    if texts and not texts_allowed:
        raise RequestError("this method takes images (\"image\"/\"images\", base64)")
    if bool(texts) == bool(images):
        raise RequestError("give \"image\"/\"images\" (base64)" + (" or \"text\"/\"texts\"" if texts_allowed else ""))
    images = [tfserving.decode_b64(image if isinstance(image, dict) else {"b64": image}) for image in images]
    return options, texts, images


def _number(options: dict, key: str, default, kind=float, low=0.0):
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)) \
            or value < low:
        raise RequestError(f"{key} must be {'an integer' if kind is int else 'a number'} >= {low:g}")
    return value


def classify(worker, version, body: bytes, content_type: str) -> dict:
    from ..commands.classify import summarize

    options, texts, images = _items(body, content_type, texts_allowed=True)
    top_k, threshold = _number(options, "top_k", 5, int, 1), _number(options, "threshold", 0.1)
    classifier = worker.task("classify-text" if texts else "classify")
    results = [classifier.classify(item, top_k, threshold) for item in (texts or images)]
    if not texts:
        for number, result in enumerate(results):
            result.item = f"image {number}"
    return {**classifier.describe(), "top_k": top_k, "threshold": threshold, "count": 1,
            "results": [result.to_dict() for result in results],
            "summary": summarize(results, "texts" if texts else "images")}


def detect(worker, version, body: bytes, content_type: str) -> dict:
    from ..commands.classify import summarize
    from ..detect import IOU_THRESHOLD, THRESHOLD, TOP_K

    options, _, images = _items(body, content_type, texts_allowed=False)
    threshold, top_k = _number(options, "threshold", THRESHOLD), _number(options, "top_k", TOP_K, int, 1)
    iou = _number(options, "iou", IOU_THRESHOLD)
    detector = worker.task("detect")
    results = [detector.detect(image, threshold, top_k, iou) for image in images]
    for number, result in enumerate(results):
        result.image = f"image {number}"
    return {**detector.describe(), "threshold": threshold, "top_k": top_k, "iou": iou, "count": 1,
            "results": [result.to_dict() for result in results], "summary": summarize(results)}


def embed(worker, version, body: bytes, content_type: str) -> dict:
    from ..commands.embed import embed_texts

    request = _json_body(body)
    sentences = request.get("sentences") if isinstance(request, dict) else None
    if not isinstance(sentences, list) or not sentences or not all(isinstance(s, str) and s for s in sentences):
        raise RequestError("give {\"sentences\": [\"...\", ...]} (non-empty strings)")
    return embed_texts(worker.task("embed"), sentences, version.model_path)


VERBS = {"predict": predict, "classify": classify, "detect": detect, "embed": embed}


def serve(load_models, host: str, port: int, limits: Limits, reload_interval: float, workers: int = 1,
          ready=None) -> int:
    """Serve until SIGTERM/SIGINT, watching the models' paths for swaps. `load_models()` -> {name: ServedModel}
    is called once to check them before binding, then in each worker process when `workers` > 1 (the
    listening socket is shared: the kernel spreads connections; request handling in Python holds the GIL, so
    small models scale over cores with processes, not threads). Returns the exit code."""
    import os

    models = load_models()  # a model that does not load is exit 2 before anything listens
    try:
        server = Server((host, port), models, limits)
    except OSError as err:
        raise BadInput(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    bound_host, bound_port = server.server_address[:2]
    log.warning("tfedge-run serve: http://%s:%d/v1/models/{%s} (%s; %d worker process%s x %d interpreter%s)",
                bound_host, bound_port, ",".join(sorted(models)),
                ", ".join(f"{n} {m.current.version}" for n, m in models.items()),
                workers, "es" if workers > 1 else "", models and next(iter(models.values())).workers,
                "s" if next(iter(models.values())).workers > 1 else "")
    if workers == 1:
        if ready is not None:
            ready(bound_port)
        return _run(server, models, reload_interval)
    del models
    server.models = {}
    children = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: its own interpreters, its own watch, the shared socket
            code = 1
            try:
                server.models = load_models()
                code = _run(server, server.models, reload_interval)
            except BaseException:
                log.exception("tfedge-run serve: worker %d failed", os.getpid())
            finally:
                os._exit(code)
        children.append(pid)
    return _supervise(server, children, ready, bound_port)


def _supervise(server: Server, children: list[int], ready, port: int) -> int:
    """The parent of worker processes: passes SIGTERM/SIGINT on, waits for every worker, exits 0 when all did."""
    import os
    import signal

    alive = set(children)

    signalled = []  # said after the workers ended: logging from a signal handler is unsafe (logging docs)

    def forward(signum, frame):
        signalled.append(signal.Signals(signum).name)
        for pid in alive:
            os.kill(pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    if ready is not None:
        ready(port)
    failed = 0
    try:
        while alive:
            pid, status = os.waitpid(-1, 0)
            alive.discard(pid)
            code = os.waitstatus_to_exitcode(status)
            if code != 0:
                failed += 1
                log.warning("tfedge-run serve: worker %d ended with %d; %d left", pid, code, len(alive))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.socket.close()
    log.warning("tfedge-run serve: %sstopped (every worker finished its requests in flight)",
                f"{signalled[0]} passed on to the workers: " if signalled else "")
    return 0 if not failed else 1


def _run(server: Server, models: dict[str, ServedModel], reload_interval: float) -> int:
    """One process serving until a signal: the watch thread reloads swapped bundles."""
    import signal

    stop = threading.Event()

    signalled = []  # said after serve_forever returns: logging from a signal handler is unsafe (logging docs)

    def on_signal(signum, frame):  # lock-free: the interrupted main thread may hold any lock (see drain)
        signalled.append(signal.Signals(signum).name)
        server.drain()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}

    def watch():
        while not stop.wait(reload_interval):
            for served in models.values():
                served.reload_if_changed()

    threading.Thread(target=watch, name="tfedge-serve-watch", daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.2)
    except _Stopped:
        pass
    finally:
        stop.set()
        started = time.perf_counter()
        server.server_close()  # joins the request threads: in-flight requests are answered
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.warning("tfedge-run serve: %sstopped (in-flight requests finished in %.2f s)",
                    f"{signalled[0]}: " if signalled else "", time.perf_counter() - started)
    return 0
