"""Stacked kernels: layer l of K same-shaped networks as one weight ``(K, in, out)``, run as one einsum
(activations ``(B, K, ...)``) or one batch matmul (the K-major layout ``(K, B, ...)``).

The code ``GeneratorBank`` and ``DiscriminatorBank`` share: creating a stacked dense (or 3x3 conv)
weight with the initialisation of one Keras ``Dense`` per member, and running it for all K members
at once (no Python loop over K). A 3x3 convolution is an einsum over the 3x3 patches of every pixel,
built from shifted slices (XLA and ONNX handle those, unlike ExtractImagePatches).
"""
import math

import keras
import tensorflow as tf


def add_stacked_dense(layer, name, fan_in, fan_out, count=None):
    """Create ``{name}_kernel`` and ``{name}_bias`` on ``layer``: shapes ``(count, fan_in, fan_out)``
    and ``(count, fan_out)``, or ``(fan_in, fan_out)`` and ``(fan_out,)`` when ``count`` is None (one
    weight shared by every member). Kernels are Glorot uniform per member (Keras ``Dense``'s default),
    biases zero; the kernel is created first, which fixes what a seed draws. Returns (kernel, bias)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    lead = () if count is None else (count,)
    kernel = layer.add_weight(name=f"{name}_kernel", shape=(*lead, fan_in, fan_out),
                              initializer=keras.initializers.RandomUniform(-limit, limit))
    bias = layer.add_weight(name=f"{name}_bias", shape=(*lead, fan_out), initializer="zeros")
    return kernel, bias


def stacked_dense(x, kernel, bias, shared_input=False):
    """Member k's affine map on its own input: ``x`` (B, K, in), ``kernel`` (K, in, out) -> (B, K, out).
    With ``shared_input`` ``x`` is (B, in), fed to every member."""
    equation = "bi,kio->bko" if shared_input else "bki,kio->bko"
    return tf.einsum(equation, x, kernel) + bias


def kmajor_dense(x, kernel, bias, shared_input=False):
    """Member k's affine map in the K-major layout: ``x`` (K, N, in), ``kernel`` (K, in, out) ->
    (K, N, out), one plain batch matmul (no transposes around it, as an einsum over (B, K, in) needs
    without XLA and in ONNX). With ``shared_input`` ``x`` is (N, in), broadcast to every member."""
    if shared_input:
        x = x[None]  # (1, N, in): the batch matmul broadcasts it over the K members
    return tf.matmul(x, kernel) + bias[:, None, :]


def patches3x3(x):
    """(..., H, W, C) -> (..., H, W, 9C): the 3x3 'same' neighbourhood of every pixel (zero padding)."""
    rank = len(x.shape)
    pad = [[0, 0]] * (rank - 3) + [[1, 1], [1, 1], [0, 0]]
    padded = tf.pad(x, pad)
    h, w = x.shape[-3], x.shape[-2]
    shifted = [padded[..., dy : dy + h, dx : dx + w, :] for dy in range(3) for dx in range(3)]
    return tf.concat(shifted, axis=-1)


def stacked_conv3x3(x, kernel, bias, stride=1, shared_input=False):
    """A different 3x3 'same' convolution per member, all K at once: ``x`` (B, K, H, W, C), ``kernel``
    (K, 9C, out) -> (B, K, H', W', out). ``stride`` 2 keeps every other row and column (zero padding
    1, as a strided conv). With ``shared_input`` ``x`` is (B, H, W, C), fed to every member."""
    patches = patches3x3(x)
    if stride > 1:
        patches = patches[..., ::stride, ::stride, :]
    kernel, bias = tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype)
    equation = "bhwp,kpo->bkhwo" if shared_input else "bkhwp,kpo->bkhwo"
    return tf.einsum(equation, patches, kernel) + bias[None, :, None, None, :]


def kmajor_conv3x3(x, kernel, bias):
    """``stacked_conv3x3`` (stride 1) in the K-major layout: ``x`` (K, B, H, W, C), ``kernel``
    (K, 9C, out) -> (K, B, H, W, out), the 3x3 patches of every pixel through one batch matmul."""
    kernel, bias = tf.cast(kernel, x.dtype), tf.cast(bias, x.dtype)
    patches = patches3x3(x)  # (K, B, H, W, 9C)
    k, h, w = x.shape[0], x.shape[2], x.shape[3]
    out = kmajor_dense(tf.reshape(patches, [k, -1, patches.shape[-1]]), kernel, bias)
    return tf.reshape(out, [k, tf.shape(x)[1], h, w, kernel.shape[-1]])
