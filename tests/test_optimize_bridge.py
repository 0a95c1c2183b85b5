"""Keras 3 -> tf_keras bridge: same weights, outputs equal (max abs diff reported), unbridgeable layers named.

In-process and without tfmot (the bridge does not import it)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tfedge.errors import BadInput


def test_digits_sequential_bridges_with_equal_outputs(digits_dir, digits_test):
    from tfedge.optimize.keras_bridge import load_trainable

    x, _ = digits_test
    bridged = load_trainable(digits_dir / "digits.keras", [x[:32]])
    assert bridged.origin == "keras3-bridge" and bridged.max_abs_diff <= 1e-5
    assert type(bridged.model).__module__.startswith("tf_keras")
    assert [layer.name for layer in bridged.model.layers][-1] == "probabilities"
    assert bridged.model.count_params() == 38282


def test_functional_graph_with_branches_batchnorm_and_depthwise():
    import keras

    from tfedge.optimize.keras_bridge import bridge

    keras.utils.set_random_seed(1)
    inputs = keras.Input((12, 12, 3), name="pixels")
    trunk = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    trunk = keras.layers.BatchNormalization()(trunk)
    trunk = keras.layers.ReLU(6.0)(trunk)
    branch = keras.layers.DepthwiseConv2D(3, padding="same")(trunk)
    branch = keras.layers.LeakyReLU(negative_slope=0.1)(branch)
    merged = keras.layers.Add()([trunk, branch])
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.ZeroPadding2D()(merged))
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(pooled), name="branchy")
    # non-trivial BatchNorm statistics, so a wrong weight order would show
    batchnorm = model.layers[2]
    batchnorm.set_weights([w + np.random.default_rng(0).uniform(0.1, 1, w.shape) for w in batchnorm.get_weights()])
    check = np.random.default_rng(2).uniform(0, 1, (8, 12, 12, 3)).astype(np.float32)
    bridged = bridge(model, [check])
    assert bridged.max_abs_diff <= 1e-5
    np.testing.assert_allclose(bridged.model.predict(check, verbose=0), model.predict(check, verbose=0), atol=1e-5)
    assert bridged.layers == len(model.layers) - 1  # every layer but the InputLayer is rebuilt


def test_unbridgeable_layers_are_all_named():
    import keras

    from tfedge.optimize.keras_bridge import bridge, unbridgeable_layers

    @keras.saving.register_keras_serializable("tfedge_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2

    inputs = keras.Input((4,))
    hidden = Doubler(name="doubler")(keras.layers.Dense(3, name="dense_ok")(inputs))
    outputs = keras.layers.Activation("relu")(keras.ops.abs(hidden))
    model = keras.Model(inputs, outputs)
    problems = unbridgeable_layers(model)
    # every problem named, in layer order, and nothing else (dense_ok and the Activation bridge fine)
    assert len(problems) == 2 and problems[0] == "doubler (Doubler: not a standard layer)", problems
    assert re.fullmatch(r"absolute(_\d+)? \(Absolute: a keras\.ops call\)", problems[1]), problems  # auto-named
    with pytest.raises(BadInput, match="cannot be bridged"):
        bridge(model)


def test_bridge_cli_error_exit_2(tfedge, tmp_path):
    import keras

    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.ops.sin(flat))
    path = tmp_path / "ops.keras"
    keras.Model(inputs, outputs).save(path)
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 8, 8, 1), np.float32), y=np.arange(4))
    from conftest import assert_clean_error

    result = tfedge("prune", path, "--data", tmp_path / "d.npz", "-o", tmp_path / "out.h5")
    assert_clean_error(result, 2, "cannot be bridged", "keras.ops")
    assert not (tmp_path / "out.h5").exists()
