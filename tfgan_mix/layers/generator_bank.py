"""K generators evaluated as one layer: stacked kernels and one batch matmul per layer.

Every generator has the same architecture, so layer ``l`` of all K generators is one kernel of
shape ``(K, in, out)`` and the whole bank runs as one batch matmul per layer: no Python loop over K
(the pattern of keras-hub's ``MixtralMoeExperts``).

Speed. Written as ``einsum('bki,kio->bko')`` over ``(B, K, ...)`` activations, the bank lost to a
Python loop over K generators at every K without XLA (loop/bank 0.76-1.13 in BENCHMARKS.md's speed
section of 2026-11-28), because TensorFlow's einsum kernel transposes ``(B, K, in)`` to ``(K, B, in)``
before its batch matmul and the result back afterwards, in every layer (tf2onnx writes the same
transposes into the ONNX graph). So the bank runs K-major: activations are ``(K, B, ...)``
from the heads (the shared noise broadcast into one batch matmul) to the samples, every per-generator
layer is a plain batch matmul (``layers.stacked.kmajor_dense``), and only the samples are transposed
to the public ``(B, K, ...)``. What the bank always gives is one static-shape graph whatever K is
(XLA, TPUs, ONNX) and stacked weights that export as a few tensors.

Structure (shared by both backbones), with ``units = (h0, h1, ...)``:

    head:  z -> h0            linear, always one per generator   (MGAN's/PGMGAN's per-generator input
                                                                 layer; HMoG's linear leaves, Eq. 7)
    trunk: act -> h1 -> act -> ... -> output (+ output activation)

With ``shared_trunk=True`` every trunk layer is shared by the K generators (MGAN, PGMGAN, MoG and
HMoG share everything but the input layer); otherwise each generator owns its trunk too. Keeping
``head`` and ``trunk`` separately callable lets MoG/HMoG mix the K head outputs before the trunk.

The ``dcgan`` backbone's trunk is a reshape to a small feature map followed by
(act, nearest-neighbour upsampling x2, 3x3 conv) blocks and a final 3x3 conv to the image
channels. A per-generator conv is run for all K at once as one batch matmul over the 3x3 patches of
every pixel. The stacked weights and their products are ``layers.stacked``, shared with
``DiscriminatorBank`` (which still runs the einsum form).
"""
import math

import keras
import tensorflow as tf

from tfgan_mix.layers.activations import get_activation
from tfgan_mix.layers.stacked import add_stacked_dense, kmajor_conv3x3, kmajor_dense, patches3x3, stacked_dense


@keras.saving.register_keras_serializable(package="tfgan_mix")
class GeneratorBank(keras.layers.Layer):
    """K same-shaped generators as one layer.

    Args:
        num_generators: K.
        output_shape: shape of one sample, ``(d,)`` or ``(h, w, c)``.
        units: MLP backbone: widths of the head and hidden layers; dcgan backbone: the head width
            is implied, ``units`` is ignored.
        backbone: ``"mlp"`` or ``"dcgan"``.
        conv_filters: dcgan backbone: channels of the first feature map and of each upsampling block.
        shared_trunk: share every layer except the head across generators.
        activation: hidden activation name (``"leaky_relu"``, ``"relu"``, ...).
        output_activation: ``None`` (linear) or ``"tanh"`` (images in [-1, 1]).
    """

    def __init__(
        self,
        num_generators,
        output_shape,
        units=(200, 100, 20),
        backbone="mlp",
        conv_filters=(64, 32),
        shared_trunk=False,
        activation="leaky_relu",
        output_activation=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if backbone not in ("mlp", "dcgan"):
            raise ValueError(f"unknown generator backbone {backbone!r}; choose 'mlp' or 'dcgan'")
        self.num_generators = int(num_generators)
        self.sample_shape = tuple(int(s) for s in output_shape)
        self.units = tuple(int(u) for u in units)
        self.backbone = backbone
        self.conv_filters = tuple(int(f) for f in conv_filters)
        self.shared_trunk = bool(shared_trunk)
        self.activation = activation
        self.output_activation = output_activation
        self._act = get_activation(activation)
        self._out_act = get_activation(output_activation)
        if backbone == "dcgan":
            self._plan_conv_trunk()

    # ------------------------------------------------------------------ construction
    def _plan_conv_trunk(self):
        if len(self.sample_shape) != 3:
            raise ValueError(f"the dcgan backbone needs image samples (h, w, c), got {self.sample_shape}")
        h, w, _ = self.sample_shape
        # Upsample x2 while the spatial size stays integral, at most once per filter entry.
        ups = 0
        while ups < len(self.conv_filters) and h % 2 ** (ups + 1) == 0 and w % 2 ** (ups + 1) == 0 \
                and h // 2 ** (ups + 1) >= 2 and w // 2 ** (ups + 1) >= 2:
            ups += 1
        self._num_upsamples = ups
        self._base_hw = (h // 2**ups, w // 2**ups)
        self._base_channels = self.conv_filters[0]

    @property
    def head_width(self):
        if self.backbone == "mlp":
            return self.units[0]
        return self._base_hw[0] * self._base_hw[1] * self._base_channels

    def build(self, input_shape):
        latent_dim = int(input_shape[-1])
        k = self.num_generators
        self.head = add_stacked_dense(self, "head", latent_dim, self.head_width, count=k)
        trunk_count = None if self.shared_trunk else k
        self.trunk_layers = []
        if self.backbone == "mlp":
            widths = list(self.units) + [math.prod(self.sample_shape)]
            for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
                self.trunk_layers.append(add_stacked_dense(self, f"dense{i + 1}", fan_in, fan_out, trunk_count))
        else:
            channels = [self._base_channels] + list(self.conv_filters[1 : self._num_upsamples + 1])
            channels += [channels[-1]] * (self._num_upsamples + 1 - len(channels))
            channels.append(self.sample_shape[-1])
            for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
                self.trunk_layers.append(add_stacked_dense(self, f"conv{i + 1}", 9 * c_in, c_out, trunk_count))
        super().build(input_shape)

    # ------------------------------------------------------------------ forward
    def call(self, z):
        """All K generators' samples: ``(B, K, *output_shape)``.

        ``z`` is ``(B, latent)`` (the same noise to every generator) or ``(B, K, latent)``. Computed
        in the K-major layout (module doc): one transpose, of the samples, at the end.
        """
        return _batch_major(self._kmajor_trunk(self._kmajor_heads(z)))

    def heads(self, z):
        """The per-generator linear input layers: ``(B, K, head_width)``, in the compute dtype."""
        return _batch_major(self._kmajor_heads(z))

    def _kmajor_heads(self, z):
        """The heads in the K-major layout: ``(K, B, head_width)``."""
        kernel, bias = self._compute(*self.head)
        z = tf.cast(z, self.compute_dtype)
        if len(z.shape) == 3:  # a latent per generator: (B, K, latent) -> (K, B, latent)
            return kmajor_dense(_batch_major(z), kernel, bias)
        return kmajor_dense(z, kernel, bias, shared_input=True)

    def own_heads(self, z, index):
        """Each example's own generator's input layer only: ``z`` (B, latent), ``index`` (B,) ->
        (B, head_width), for hard-routed methods whose sample comes from one generator.

        With fewer latent dimensions than generators, each example's kernel is gathered and only
        its own head is computed: cost B*latent*width, whatever K is, and no more memory than all K
        heads' outputs (B*K*width). Otherwise all K heads are computed and one is kept (a one-hot
        sum, so gradients reach only the chosen head), which is then the cheaper of the two.
        """
        kernel, bias = self._compute(*self.head)
        z = tf.cast(z, self.compute_dtype)
        if z.shape[-1] < self.num_generators:
            return tf.einsum("bi,bih->bh", z, tf.gather(kernel, index)) + tf.gather(bias, index)
        heads = stacked_dense(z, kernel, bias, shared_input=True)
        return tf.einsum("bk,bkh->bh", tf.one_hot(index, self.num_generators, dtype=heads.dtype), heads)

    def _compute(self, *weights):
        # Explicit casts: MoG/HMoG call heads()/trunk() directly, outside Layer.__call__'s autocast.
        return [tf.cast(w, self.compute_dtype) for w in weights]

    def trunk(self, h, per_generator_axis=False):
        """Run the trunk on head outputs.

        ``h`` is ``(B, K, head_width)`` when ``per_generator_axis`` (each generator's own trunk, or the
        shared one applied to all K), or ``(B, head_width)``: one mixed representation per example
        (MoG/HMoG), which needs ``shared_trunk=True``.
        """
        if not per_generator_axis and not self.shared_trunk:
            raise ValueError("mixing head outputs before the trunk needs shared_trunk=True")
        if per_generator_axis:
            return _batch_major(self._kmajor_trunk(_batch_major(h)))
        return self._finish(self._run_trunk(tf.cast(h, self.compute_dtype)), [tf.shape(h)[0]])

    def _kmajor_trunk(self, h):
        """The trunk on K-major head outputs ``(K, B, head_width)`` -> samples ``(K, B, *output_shape)``."""
        return self._finish(self._run_trunk(tf.cast(h, self.compute_dtype)), [self.num_generators, tf.shape(h)[1]])

    def _finish(self, out, lead):
        # Samples leave in float32 whatever the compute dtype: losses, D's input and exports agree.
        return tf.cast(self._out_act(tf.reshape(out, lead + list(self.sample_shape))), tf.float32)

    def _run_trunk(self, h):
        return self._mlp_trunk(h) if self.backbone == "mlp" else self._conv_trunk(h)

    def _dense(self, x, kernel, bias):
        """A trunk layer on ``x`` (K, B, in) K-major, or (B, in) mixed (shared kernels only)."""
        kernel, bias = self._compute(kernel, bias)
        if len(kernel.shape) == 3:  # a kernel per generator: one batch matmul
            return kmajor_dense(x, kernel, bias)
        # A shared kernel over any leading axes (tensordot, not an '...' einsum: tf2onnx lacks ellipses).
        return tf.tensordot(x, kernel, axes=1) + bias

    def _mlp_trunk(self, h):
        for kernel, bias in self.trunk_layers:
            h = self._dense(self._act(h), kernel, bias)
        return h

    def _conv_trunk(self, h):
        bh, bw = self._base_hw
        lead = h.shape[:-1].as_list()
        lead = [tf.shape(h)[i] if d is None else d for i, d in enumerate(lead)]
        x = tf.reshape(h, lead + [bh, bw, self._base_channels])
        for i, (kernel, bias) in enumerate(self.trunk_layers):
            x = self._act(x)
            if i < self._num_upsamples:
                x = _upsample_nearest(x)
            x = self._dense(patches3x3(x), kernel, bias) if len(kernel.shape) == 2 \
                else kmajor_conv3x3(x, *self._compute(kernel, bias))
        return x

    def get_config(self):
        config = super().get_config()
        config.update(
            num_generators=self.num_generators,
            output_shape=list(self.sample_shape),
            units=list(self.units),
            backbone=self.backbone,
            conv_filters=list(self.conv_filters),
            shared_trunk=self.shared_trunk,
            activation=self.activation,
            output_activation=self.output_activation,
        )
        return config


def _batch_major(x):
    """Swap the first two axes: (K, B, ...) <-> (B, K, ...)."""
    return tf.transpose(x, [1, 0, *range(2, len(x.shape))])


def _upsample_nearest(x):
    """x2 nearest-neighbour upsampling of the last two spatial axes (..., H, W, C)."""
    x = tf.repeat(x, 2, axis=-3)
    return tf.repeat(x, 2, axis=-2)
