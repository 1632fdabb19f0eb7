"""n_D discriminators evaluated as one layer, with mixture weights over them (MIX+GAN, paper 001).

The same stacked-kernel code as ``GeneratorBank`` (``layers.stacked``): layer l of all
discriminators is one kernel ``(n_D, in, out)`` and runs as one einsum, so nothing loops over n_D.
"""
import math

import keras
import tensorflow as tf

from tfgan_mix.layers.activations import get_activation
from tfgan_mix.layers.component_split import ComponentSplit
from tfgan_mix.layers.stacked import add_stacked_dense, stacked_conv3x3, stacked_dense


@keras.saving.register_keras_serializable(package="tfgan_mix")
class DiscriminatorBank(keras.layers.Layer):
    """n_D same-shaped discriminators as one layer, plus their mixture weights v = softmax(b).

    Layer l of all discriminators is one kernel ``(n_D, in, out)`` (an einsum per layer, as in
    ``GeneratorBank``). Backbones: ``mlp`` (Dense + activation) and ``dcgan`` (3x3 convs with
    stride 2 as patch einsums, then a linear read-out), the shapes of ``backbones.build_discriminator``.

    ``call(x)`` -> ``(B, 1 + n_D)``: column 0 is the mixed critic D(x) = sum_j v_j D_j(x) (Eq. 5),
    columns 1.. are the D_j(x) (the package's "column 0 is adversarial" convention).
    ``scores(x)``: every D_j on a shared batch, ``(B, n_D)``. ``per_discriminator(x)``: x is
    ``(N, n_D, *sample_shape)`` and D_j sees only ``x[:, j]``, ``(N, n_D)``.

    ``learn_weights=False`` keeps v uniform (scalable MIX-GAN). ``groups`` > 1 splits the
    discriminators round-robin into groups with their own kernels, group g holding discriminators
    g, g + groups, ...; with ``devices`` each group lives on ``devices[g % len(devices)]``
    (paper 001 section V: D_j on device j mod n).
    """

    def __init__(self, num_discriminators, sample_shape, units=(1024, 1024, 1024), backbone="mlp",
                 conv_filters=(32, 64), activation="leaky_relu", learn_weights=True, groups=1, devices=(),
                 **kwargs):
        super().__init__(**kwargs)
        if backbone not in ("mlp", "dcgan"):
            raise ValueError(f"unknown discriminator backbone {backbone!r}; choose 'mlp' or 'dcgan'")
        self.num_discriminators = int(num_discriminators)
        self.sample_shape = tuple(int(s) for s in sample_shape)
        self.units = tuple(int(u) for u in units)
        self.backbone = backbone
        self.conv_filters = tuple(int(f) for f in conv_filters)
        self.activation = activation
        self.learn_weights = bool(learn_weights)
        self.devices = tuple(devices)
        self.split = ComponentSplit(self.num_discriminators, groups, self.devices)
        self._act = get_activation(activation)
        self.build((None, *self.sample_shape))

    def build(self, input_shape):
        if self.built:
            return
        self.mixture_logits = self.add_weight(name="mixture_logits", shape=(self.num_discriminators,),
                                              initializer="zeros", trainable=self.learn_weights)
        self.group_layers = []  # per group: [(kernel, bias)] per layer, stacked over the group's members
        for g, members in enumerate(self.split.members):
            with self.split.device_scope(g, placed=True):
                self.group_layers.append([add_stacked_dense(self, f"g{g}_layer{i}", fan_in, fan_out, len(members))
                                          for i, (fan_in, fan_out) in enumerate(self._layer_shapes())])
        self.built = True

    def _layer_shapes(self):
        """(fan_in, fan_out) of every layer of one discriminator; a conv layer's fan_in is 9 C_in."""
        if self.backbone == "mlp":
            widths = [math.prod(self.sample_shape), *self.units, 1]
            return list(zip(widths[:-1], widths[1:]))
        h, w, c = self.sample_shape
        channels = [c, *self.conv_filters]
        shapes = [(9 * c_in, c_out) for c_in, c_out in zip(channels[:-1], channels[1:])]
        for _ in self.conv_filters:
            h, w = (h + 1) // 2, (w + 1) // 2
        return shapes + [(h * w * channels[-1], 1)]

    # ------------------------------------------------------------------ mixture weights
    def mixture_weights(self):
        """v = softmax(b), ``(n_D,)``."""
        return tf.nn.softmax(self.mixture_logits)

    def log_mixture_weights(self):
        return tf.nn.log_softmax(self.mixture_logits)

    # ------------------------------------------------------------------ forward
    def call(self, x):
        scores = self.scores(x)
        mixed = tf.reduce_sum(scores * self.mixture_weights(), axis=1, keepdims=True)  # Eq. 5
        return tf.concat([mixed, scores], axis=1)

    def scores(self, x, placed=False):
        """Every D_j on the same batch: ``(B, *sample_shape)`` -> ``(B, n_D)``."""
        return self.split.apply(lambda g, xg: self._net(xg, self.group_layers[g], False), x, False, placed)

    def per_discriminator(self, x, placed=False):
        """D_j on its own inputs: ``(N, n_D, *sample_shape)`` -> ``(N, n_D)``."""
        return self.split.apply(lambda g, xg: self._net(xg, self.group_layers[g], True), x, True, placed)

    def _net(self, x, kernels, per_discriminator):
        shared = not per_discriminator  # the first layer feeds one batch to every discriminator
        if self.backbone == "mlp":
            lead = 2 if per_discriminator else 1
            h = tf.reshape(x, [-1, *x.shape[1:lead], math.prod(self.sample_shape)])
            for i, (kernel, bias) in enumerate(kernels):
                h = stacked_dense(h, kernel, bias, shared_input=(i == 0 and shared))
                if i < len(kernels) - 1:
                    h = self._act(h)
            return h[..., 0]
        h = x
        for i, (kernel, bias) in enumerate(kernels[:-1]):
            h = self._act(stacked_conv3x3(h, kernel, bias, stride=2, shared_input=(i == 0 and shared)))
        if len(kernels) == 1 and shared:  # no conv layer: the read-out sees the raw input
            h = tf.tile(h[:, None], [1, kernels[-1][0].shape[0], 1, 1, 1])
        h = tf.reshape(h, [-1, h.shape[1], math.prod(h.shape[2:])])
        kernel, bias = kernels[-1]
        return stacked_dense(h, kernel, bias)[..., 0]

    def get_config(self):
        config = super().get_config()
        config.update(num_discriminators=self.num_discriminators, sample_shape=list(self.sample_shape),
                      units=list(self.units), backbone=self.backbone, conv_filters=list(self.conv_filters),
                      activation=self.activation, learn_weights=self.learn_weights, groups=self.split.groups,
                      devices=list(self.devices))
        return config
