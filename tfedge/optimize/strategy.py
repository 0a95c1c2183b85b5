"""`--strategy default|mirrored|multiworker`: which tf.distribute strategy the training steps run under.

TensorFlow's own distributed runtime, not a home-made one: `mirrored` replicates the model on every local
device (GPUs, or logical CPU devices) and all-reduces gradients; `multiworker` does the same across machines
described by the `TF_CONFIG` environment variable (every worker runs the same command with its own task
index; see https://www.tensorflow.org/guide/distributed_training#setting_up_the_tf_config_environment_variable).
Create the strategy before any other TensorFlow work: MultiWorkerMirroredStrategy must start the
collective runtime before the eager context is initialised.
"""

from __future__ import annotations

import json
import logging
import os

from ..errors import BadInput
from ..tf_loader import tensorflow

log = logging.getLogger(__name__)


def _default():
    return tensorflow().distribute.get_strategy()


def _mirrored():
    return tensorflow().distribute.MirroredStrategy()


def read_tf_config() -> dict:
    """TF_CONFIG, checked: {"cluster": {"worker": [host:port, ...]}, "task": {"type": "worker", "index": i}}."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        raise BadInput("--strategy multiworker needs the TF_CONFIG environment variable",
                       hint='e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                            '"task": {"type": "worker", "index": 0}}\'')
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInput(f"TF_CONFIG is not valid JSON: {err}") from None
    workers = (config.get("cluster") or {}).get("worker") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(workers, list) or not workers or not all(isinstance(w, str) and ":" in w for w in workers):
        raise BadInput("TF_CONFIG needs cluster.worker: a non-empty list of host:port")
    if not isinstance(task, dict) or task.get("type") not in ("worker", "chief") \
            or not isinstance(task.get("index"), int) or not 0 <= task["index"] < len(workers) + 1:
        raise BadInput("TF_CONFIG needs task: {\"type\": \"worker\", \"index\": N} with N inside cluster.worker")
    return config


def _multiworker():
    config = read_tf_config()
    tf = tensorflow()
    log.info("multi-worker training: %d worker(s), this is %s %d", len(config["cluster"]["worker"]),
             config["task"]["type"], config["task"]["index"])
    return tf.distribute.MultiWorkerMirroredStrategy()


STRATEGIES = {"default": _default, "mirrored": _mirrored, "multiworker": _multiworker}


def get_strategy(name: str = "default"):
    """A tf.distribute.Strategy by name (see STRATEGIES)."""
    if name not in STRATEGIES:
        raise BadInput(f"unknown --strategy {name!r}", hint=f"choose one of {', '.join(STRATEGIES)}")
    strategy = STRATEGIES[name]()
    log.info("training under %s with %d replica(s)", type(strategy).__name__, strategy.num_replicas_in_sync)
    return strategy


def is_chief() -> bool:
    """True for the process that writes outputs (every worker trains; only the chief saves)."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return True
    task = json.loads(text).get("task", {})
    return task.get("type") == "chief" or (task.get("type") == "worker" and task.get("index") == 0
                                            and "chief" not in json.loads(text).get("cluster", {}))
