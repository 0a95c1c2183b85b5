"""`tfedge-run serve MODEL_OR_BUNDLE|NAME=PATH ... [--host 127.0.0.1] [--port 8501] [--threads N]`: serve models
over HTTP with TensorFlow Serving's REST API (GET /v1/models/NAME, /metadata; POST :predict) plus tfedge's
:classify and :embed. See docs/serve.md.
"""

from __future__ import annotations

import argparse

from .options import positive


def add_arguments(parser) -> None:
    parser.add_argument("models", nargs="+", metavar="MODEL",
                        help="A .tflite or bundle, or NAME=PATH (name in URLs; default: bundle/file stem).")
    parser.add_argument("--host", default="127.0.0.1",
                        help="Address to bind (default 127.0.0.1, loopback only; 0.0.0.0 for every interface).")
    parser.add_argument("--port", type=int, default=8501, help="Port (default 8501, TF Serving's REST port; 0: any).")
    parser.add_argument("--threads", type=positive, default=1,
                        help="Interpreters per model and process, each used by one request at a time (default 1).")
    parser.add_argument("--workers", type=positive, default=1,
                        help="Server processes sharing the port (default 1); small models scale over cores with "
                             "processes (request handling holds Python's GIL).")
    parser.add_argument("--max-body", type=positive, default=16 * 1024 * 1024, metavar="BYTES",
                        help="Largest request body accepted (default 16 MiB; larger: 413).")
    parser.add_argument("--queue", type=positive, default=64,
                        help="Requests admitted at once; more get 503 with Retry-After (default 64).")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="Seconds a request waits for a free interpreter before 503 (default 30).")
    parser.add_argument("--token-file", help="A file holding a bearer token every request must send.")
    parser.add_argument("--reload-interval", type=float, default=1.0,
                        help="Seconds between checks for a redeployed bundle (default 1).")
    parser.add_argument("--port-file", help=argparse.SUPPRESS)  # tests: the bound port when --port 0


def _token(path: str | None) -> str | None:
    from ..errors import BadInput

    if path is None:
        return None
    try:
        token = open(path, encoding="utf-8").read().strip()  # noqa: SIM115 - read once
    except OSError as err:
        raise BadInput(f"cannot read --token-file {path}: {err.strerror}") from None
    if not token or any(ch.isspace() for ch in token):
        raise BadInput(f"--token-file {path} must hold one token (no spaces)")
    return token


def run(args) -> int:
    import ipaddress
    import logging
    import socket

    from ..errors import BadInput
    from ..serve.models import ServedModel, parse_model_args
    from ..serve.server import Limits, serve

    log = logging.getLogger("tfedge_device.serve")
    if not 0 <= args.port <= 65535:
        raise BadInput(f"--port {args.port} is not a port number")
    if args.timeout <= 0 or args.reload_interval <= 0:
        raise BadInput("--timeout and --reload-interval must be > 0")
    token = _token(args.token_file)
    try:
        address = ipaddress.ip_address(socket.gethostbyname(args.host))
    except (OSError, ValueError):
        raise BadInput(f"--host {args.host} is not an address of this machine") from None
    if not address.is_loopback:
        log.warning("tfedge-run serve: listening on %s, reachable from other machines%s", args.host,
                    "" if token else "; anyone who can reach it can use it (--token-file to require a token)")
    pairs = parse_model_args(args.models)

    def load_models():
        return {name: ServedModel(name, path, args.threads) for name, path in pairs}

    limits = Limits(args.max_body, args.queue, args.timeout, token)

    def ready(port: int) -> None:
        if args.port_file:
            with open(args.port_file + ".tmp", "w") as handle:
                handle.write(str(port))
            import os

            os.replace(args.port_file + ".tmp", args.port_file)

    return serve(load_models, args.host, args.port, limits, args.reload_interval, args.workers, ready)
