"""Export rewrites: the same function as a keras-hub transformer layer, traced as a graph LiteRT runs faster.

Applied only while the converter's graph is traced (`rewritten(model)`); the source model itself, and so the
reference every conversion is verified against, is left as keras-hub built it. Each rewrite is exact up to
float summation order (tested against the unrewritten model):

  attention   Keras' MultiHeadAttention computes K.Q^T, transposes the [heads, T, T] scores, masks them with a
              `where` before the softmax and again after it. Rewritten: Q.K^T (no transpose of the scores) and
              the padding mask added as a -1e9 bias (one broadcast ADD); the second `where` only zeroed
              probabilities that are already exactly 0. On MiniLM at 128 tokens the two SELECT_V2 over
              [12, 128, 128] per layer cost 4x the softmax itself (LiteRT runs them outside XNNPACK).
  dense       A Dense or EinsumDense on [batch, T, features] with a dynamic T: Keras traces a tensordot whose
              reshapes the converter cannot see through, so the bias stays a separate ADD and every layer
              adds SHAPE/GATHER/REDUCE_PROD/PACK ops. Rewritten as one matmul on the flattened kernel + bias
              (FULLY_CONNECTED with the bias fused), then a reshape with constant dimensions.
"""

from __future__ import annotations

import contextlib
import math
import types
from collections.abc import Callable
from dataclasses import dataclass

LARGE_NEGATIVE = -1e9  # what Keras' Softmax puts at masked positions (float32)


def _attention(self, query, key, value, attention_mask=None, training=None, return_attention_scores=False,
               use_causal_mask=False):
    """MultiHeadAttention._compute_attention for query/key/value [B, T, N, H], attention over axis 1."""
    from keras import ops

    if return_attention_scores or use_causal_mask or (training and self._dropout > 0.0):  # export is inference
        return type(self)._compute_attention(self, query, key, value, attention_mask, training,
                                             return_attention_scores, use_causal_mask)
    query = ops.multiply(query, ops.cast(self._inverse_sqrt_key_dim, query.dtype))
    scores = ops.matmul(ops.transpose(query, (0, 2, 1, 3)), ops.transpose(key, (0, 2, 3, 1)))  # [B, N, T, S]
    if attention_mask is not None:  # [B, T, S] or [B, 1, S]: True where attention is allowed
        allowed = ops.cast(ops.expand_dims(attention_mask, 1), scores.dtype)
        scores = ops.add(scores, ops.multiply(ops.subtract(1.0, allowed), LARGE_NEGATIVE))
    probabilities = ops.softmax(scores, axis=-1)
    output = ops.matmul(probabilities, ops.transpose(value, (0, 2, 1, 3)))  # [B, N, T, H]
    return ops.transpose(output, (0, 2, 1, 3)), None


def _attention_applies(layer) -> bool:
    from keras.layers import MultiHeadAttention

    needed = ("_attention_axes", "_inverse_sqrt_key_dim", "_dropout")  # Keras internals the rewrite reads
    return (isinstance(layer, MultiHeadAttention) and all(hasattr(layer, name) for name in needed)
            and tuple(layer._attention_axes or ()) == (1,) and not getattr(layer, "_flash_attention", False))


def _dense(self, inputs, training=None):
    """Dense / EinsumDense on [B, T, C] -> [B, T, *out]: matmul on the [C, prod(out)] kernel, bias, reshape."""
    from keras import ops

    if len(inputs.shape) != 3 or inputs.shape[0] is None:  # e.g. a head on a pooled [B, C] vector
        return type(self).call(self, inputs, training=training)
    out_dims = tuple(self.kernel.shape[1:])
    width = math.prod(out_dims)
    y = ops.matmul(ops.reshape(inputs, (-1, self.kernel.shape[0])), ops.reshape(self.kernel, (-1, width)))
    if self.bias is not None:
        y = ops.add(y, ops.reshape(self.bias, (width,)))
    y = ops.reshape(y, (inputs.shape[0], -1) + out_dims)
    if self.activation is not None:
        y = self.activation(y)
    return y


def _dense_applies(layer) -> bool:
    from keras.layers import Dense, EinsumDense

    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        return False
    if getattr(layer, "kernel", None) is None:  # not built
        return False
    bias = getattr(layer, "bias", None)
    if bias is not None and math.prod(bias.shape) != math.prod(layer.kernel.shape[1:]):
        return False  # an EinsumDense bias over some output axes only: the flat bias would not line up
    if isinstance(layer, Dense):
        return True
    # EinsumDense projecting the last axis of a rank-3 input: "abc,cd...->abd..." (keras-hub's Q/K/V)
    return isinstance(layer, EinsumDense) and _projects_last_axis(layer.equation)


def _projects_last_axis(equation: str) -> bool:
    inputs, output = equation.replace(" ", "").split("->")
    x, kernel = inputs.split(",")
    return (len(x) == 3 and kernel[0] == x[-1] and output == x[:-1] + kernel[1:]
            and x[-1] not in output and len(set(kernel)) == len(kernel))


@dataclass(frozen=True)
class Rewrite:
    name: str
    applies: Callable  # layer -> bool
    method: str  # the layer method replaced while tracing
    replacement: Callable


REWRITES = (
    Rewrite("attention", _attention_applies, "_compute_attention", _attention),
    Rewrite("dense", _dense_applies, "call", _dense),
)


@contextlib.contextmanager
def rewritten(model, names=None):
    """Within the block, matching sublayers of `model` run their rewritten method -> {rewrite name: count}.
    `names` limits the rewrites to those named (default: all)."""
    patched, counts = [], {}
    for layer in model._flatten_layers(include_self=False, recursive=True):  # each layer once
        for rewrite in REWRITES:
            if names is not None and rewrite.name not in names:
                continue
            if rewrite.applies(layer):
                object.__setattr__(layer, rewrite.method, types.MethodType(rewrite.replacement, layer))
                patched.append((layer, rewrite.method))
                counts[rewrite.name] = counts.get(rewrite.name, 0) + 1
                break
    try:
        yield counts
    finally:
        for layer, method in patched:
            object.__delattr__(layer, method)
