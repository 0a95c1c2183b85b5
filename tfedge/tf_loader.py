"""Import TensorFlow quietly, and silence native output (the converter prints hundreds of lines).

Name Keras explicitly: `keras` is Keras 3 and `tf_keras` is Keras 2. Never use `tf.keras`: importing
tensorflow_model_optimization sets TF_USE_LEGACY_KERAS=1, which changes what `tf.keras` means.
"""

from __future__ import annotations

import functools
import os

from tfedge_device.quiet import quiet_native

from .errors import EnvironmentMissing


@functools.cache
def tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # bit-reproducible CPU results
    try:
        with quiet_native():
            import tensorflow as tf
    except ImportError as err:
        raise EnvironmentMissing(f"TensorFlow is not installed ({err})", hint="run tools/setup") from None
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    return tf
