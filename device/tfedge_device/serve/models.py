"""The models a server holds: each name -> its current version, a pool of interpreters, and a watch on its path
so a redeployed bundle swaps in without dropping a request.

A TFLite interpreter is not thread-safe: every version owns `workers` Worker objects (one interpreter each, per
task used) in a queue; a request takes one, runs, and puts it back. A new version is loaded completely (bundle
checksums verified, interpreters built) before it replaces the old one; requests that hold a worker of the
old version finish on it, and the old version is dropped when the last one returns.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..bundle import is_bundle, open_model_path
from ..errors import BadInput
from ..model import Model
from .tfserving import RequestError

log = logging.getLogger(__name__)

def fingerprint(path: Path) -> tuple:
    """Changes whenever a deploy swaps the bundle (a new directory inode, a new SHA256SUMS) or the file."""
    try:
        stat = path.stat()
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        sums = path / "SHA256SUMS"
        if path.is_dir() and sums.exists():
            sums_stat = sums.stat()
            key += (sums_stat.st_ino, sums_stat.st_mtime_ns)
        return key
    except OSError:
        return ()


def version_of(path: Path, model_path: Path) -> str:
    """The bundle's hash (of its SHA256SUMS, which names every file's hash) or the model file's."""
    source = path / "SHA256SUMS" if path.is_dir() else (path if is_bundle(path) else model_path)
    return hashlib.sha256(source.read_bytes()).hexdigest()[:16]


def _batched(array: np.ndarray, spec) -> np.ndarray:
    """A row-format example gets the batch dimension back (when the input has one)."""
    return array[None] if len(spec.shape) == array.ndim + 1 else array


def _unbatched(array: np.ndarray, spec) -> np.ndarray:
    return array[0] if len(spec.shape) >= 1 and spec.shape[0] in (1, -1) and array.shape[:1] == (1,) else array


class Worker:
    """One interpreter per task (created when the task is first asked for), used by one request at a time."""

    def __init__(self, version: Version):
        self.version = version
        self.tasks: dict[str, object] = {}

    def task(self, name: str):
        if name not in self.tasks:
            self.tasks[name] = self.version.build(name)
        return self.tasks[name]

    def predict(self, form: str, values) -> list:
        """Row form: [per-example {name: array}] -> [per-example [output arrays]]; columnar: {name: array with
        batch} -> [output arrays with batch]. A batch-1 model runs the examples one by one.
        A stateful model (resource variables) starts every request from its initial state, and the request's
        examples run in order through this one interpreter, carrying the state (a keyword spotter's frames):
        requests are independent, whichever pooled interpreter takes them."""
        model: Model = self.task("predict")
        if model.stateful:
            model.reset_state()
        names = self.version.input_names
        if form == "row":
            return [[_unbatched(out, spec) for out, spec in zip(
                        self._run(model, [_batched(example[name], spec) for name, spec in zip(names, model.inputs)]),
                        model.outputs)]
                    for example in values]
        arrays = [values[name] for name in names]
        batches = {array.shape[0] if array.ndim else None for array in arrays}
        if len(batches) != 1 or None in batches:
            raise RequestError("\"inputs\" values must share their first (batch) dimension")
        if all(spec.shape and spec.shape[0] in (1, -1) for spec in model.inputs):
            per_example = [self._run(model, [array[i:i + 1] for array in arrays]) for i in range(batches.pop())]
            return [np.concatenate([example[k] for example in per_example]) for k in range(len(model.outputs))]
        return self._run(model, arrays)

    @staticmethod
    def _run(model: Model, arrays: list[np.ndarray]) -> list[np.ndarray]:
        try:
            if any(spec.dynamic for spec in model.inputs):  # allocated at each request's shapes
                shapes = [tuple(array.shape) for array in arrays]
                if not model.allocated or shapes != model.input_shapes:
                    model.allocate(shapes)
            elif not model.allocated:
                model.allocate()
            return model.predict(*arrays)
        except BadInput as err:  # wrong shape or dtype for the model
            raise RequestError(err.message) from None


@dataclass
class Version:
    """One loaded version of a served model: path, hash, manifest and its pool of workers."""

    path: Path
    workers: int
    threads: int | None = 1
    model_path: Path = field(init=False)
    manifest: dict | None = field(init=False)
    version: str = field(init=False)

    def __post_init__(self):
        opened = open_model_path(self.path, edgetpu=False if is_bundle(self.path) else None)
        self.model_path, self.manifest, self.edgetpu = opened.model_path, opened.manifest, opened.edgetpu
        self.version = version_of(self.path, self.model_path)
        self.pool: queue.Queue[Worker] = queue.Queue()
        first = Worker(self)
        self.probe_model: Model = first.task("predict")  # loads now: a broken version never goes live
        # TF Serving's names: the SignatureDef's (the converter writes them), else the tensor names
        self.input_names = [spec.key for spec in self.probe_model.inputs]
        self.output_names = [spec.key for spec in self.probe_model.outputs]
        self.pool.put(first)
        for _ in range(self.workers - 1):  # every interpreter built now, while the version's files exist: a
            worker = Worker(self)          # deploy swaps the bundle directory away once a newer one is live
            worker.task("predict")
            self.pool.put(worker)

    def build(self, task: str):
        if task == "predict":
            return Model(self.model_path, threads=self.threads, edgetpu=self.edgetpu, allocate=False)
        if task == "classify":
            from ..classify import Classifier

            return Classifier(self.model_path, threads=self.threads, edgetpu=self.edgetpu)
        if task == "detect":
            from ..detect import Detector

            return Detector(self.model_path, threads=self.threads, edgetpu=self.edgetpu)
        if task == "classify-text":
            from ..text import TextClassifier

            return TextClassifier(self.model_path, threads=self.threads)
        if task == "embed":
            from ..text import TextModel

            return TextModel(self.model_path, threads=self.threads)
        raise RequestError(f"unknown task {task!r}", status=404)

    @property
    def task(self) -> str | None:
        return (self.manifest or {}).get("task")

    def describe(self) -> dict:
        model = self.probe_model
        return {"model_file": str(self.model_path), "task": self.task, "version": self.version,
                "runtime": f"{model.runtime.name} {model.runtime.version}", "workers": self.workers}


class ServedModel:
    """A name, the path it serves (a .tflite or a bundle) and its current Version; `watch()` reloads on change."""

    def __init__(self, name: str, path: Path, workers: int, threads: int | None = 1):
        self.name, self.path, self.workers, self.threads = name, Path(path), workers, threads
        self._lock = threading.Lock()
        self._seen = fingerprint(self.path)
        self.current = Version(self.path, workers, threads)
        self.swaps = 0

    def reload_if_changed(self) -> bool:
        """Load the new version when the path changed; keep the old one (and say why) when it does not load."""
        seen = fingerprint(self.path)
        if not seen or seen == self._seen:
            return False
        try:
            new = Version(self.path, self.workers, self.threads)
        except (BadInput, OSError, ValueError) as err:  # mid-swap or a broken deploy: keep serving the old one
            log.warning("%s: %s changed but does not load (%s); still serving version %s", self.name, self.path,
                        getattr(err, "message", err), self.current.version)
            return False
        with self._lock:
            old, self.current, self._seen = self.current, new, seen
            self.swaps += 1
        if new.version != old.version:
            log.warning("%s: now serving version %s (was %s)", self.name, new.version, old.version)
        return True


def parse_model_args(specs: list[str]) -> list[tuple[str, Path]]:
    """`PATH` or `NAME=PATH` -> (name, path); the name defaults to the bundle's name or the file's stem."""
    pairs, names = [], set()
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or os.path.exists(spec):
            name, path = "", spec
        path = Path(path)
        if not path.exists():
            raise BadInput(f"model not found: {path}")
        name = name or path.name.split(".")[0]
        if not name or "/" in name or ":" in name:
            raise BadInput(f"model name {name!r} cannot be used in a URL (give NAME=PATH)")
        if name in names:
            raise BadInput(f"two models named {name!r}: give NAME=PATH for one of them")
        names.add(name)
        pairs.append((name, path))
    if not pairs:
        raise BadInput("no model given", hint="tfedge-run serve MODEL.tflite|BUNDLE [NAME=PATH ...]")
    return pairs
