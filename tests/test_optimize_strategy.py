"""--strategy mirrored on CPU with two logical devices, in a subprocess (logical devices must be configured
before any TensorFlow op, and must not leak into other tests)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from conftest import DIGITS, ROOT

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import numpy as np
    from tfedge.tf_loader import tensorflow
    tf = tensorflow()
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfedge.optimize.common import OptimizeRequest
    from tfedge.optimize.prune import prune
    from tfedge.optimize.train import FitOptions
    out = Path(sys.argv[1])
    with np.load(sys.argv[2]) as data:
        np.savez(out / "train.npz", x=data["x"][:128], y=data["y"][:128])
    result = prune(OptimizeRequest(sys.argv[3], str(out / "train.npz"), out / "pruned.h5",
                                   strategy="mirrored", fit=FitOptions(epochs=2, batch_size=16, show_progress=False),
                                   options={"sparsity": 0.5}))
    print(json.dumps({"strategy": result["strategy"], "sparsity": result["prune"]["global"],
                      "devices": len(tf.config.list_logical_devices("CPU"))}))
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(DIGITS / "test.npz"),
                                str(DIGITS / "digits.keras")], check=False, capture_output=True, text=True,
                               cwd=ROOT, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["devices"] == 2
    assert result["strategy"] == {"name": "mirrored", "replicas": 2}
    assert abs(result["sparsity"] - 0.5) < 0.01
    assert (tmp_path / "pruned.h5").exists()


def test_multiworker_strategy_with_a_one_worker_cluster(tfedge, tmp_path):
    """MultiWorkerMirroredStrategy from TF_CONFIG (one worker on 127.0.0.1): the chief trains and writes OUT."""
    import socket

    import numpy as np

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with np.load(DIGITS / "test.npz") as data:
        np.savez(tmp_path / "train.npz", x=data["x"][:128], y=data["y"][:128])
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}"]}, "task": {"type": "worker", "index": 0}})
    result = tfedge("prune", DIGITS / "digits.keras", "--data", tmp_path / "train.npz", "--strategy", "multiworker",
                    "--epochs", "1", "--sparsity", "0.5", "-o", tmp_path / "pruned.h5", "--json",
                    env={"TF_CONFIG": tf_config}, timeout=300)
    assert result.returncode == 0, result
    figures = json.loads(result.stdout)
    assert figures["strategy"] == {"name": "multiworker", "replicas": 1}
    assert (tmp_path / "pruned.h5").exists()
