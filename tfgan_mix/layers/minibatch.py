"""Minibatch discrimination (Salimans et al. 2016, "Improved Techniques for Training GANs", section 3.2).

For features f(x_i) in R^A of every example in the batch and a learned tensor T in R^{A x B x C}:

    M_i = f(x_i) T                                 (B rows of C numbers)
    c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_1)
    o(x_i)_b = 1/(N - 1) sum_{j != i} c_b(x_i, x_j)

and the layer returns [f(x_i), o(x_i)] (A + B features), so the discriminator can see how close a
sample is to the rest of its batch: a collapsed generator's batch is easy to tell apart.

Departure (our choice): Salimans et al. sum over j; we average. The next layer's weights absorb the
constant N - 1, so the discriminators representable are the same, but o stays in [0, 1] whatever
the batch size: with the sum, a batch of 256 starts with o ~ 255 (T is small, so every c_b ~ 1),
the logit is dominated by that constant, and a sample's score would change with the size of the
batch it is scored in.

Distribution: under a ``tf.distribute`` strategy the sum over j runs over the *global* batch (the
projections M are all-gathered across replicas), so N replicas compute what one device computes
on the whole batch. Outside a replica context (building, export) the batch is the local one.
A sample's output depends on the rest of its batch, as in the paper.
"""
import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfgan_mix")
class MinibatchDiscrimination(keras.layers.Layer):
    """``(N, A)`` features -> ``(N, A + num_kernels)``: the features and the minibatch features o."""

    def __init__(self, num_kernels=5, kernel_dim=3, **kwargs):
        super().__init__(**kwargs)
        if int(num_kernels) < 1 or int(kernel_dim) < 1:
            raise ValueError(f"minibatch discrimination needs num_kernels >= 1 and kernel_dim >= 1, "
                             f"got {num_kernels} and {kernel_dim}")
        self.num_kernels = int(num_kernels)
        self.kernel_dim = int(kernel_dim)

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ValueError(f"minibatch discrimination needs flat features (N, A), got shape {tuple(input_shape)}")
        # T, stored as (A, B * C); small init so exp(-L1) starts away from 0 (Salimans et al.'s code: N(0, 0.05)).
        self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), self.num_kernels * self.kernel_dim),
                                      initializer=keras.initializers.RandomNormal(stddev=0.05))
        self.built = True

    def call(self, features):
        m = tf.reshape(tf.matmul(features, self.kernel), [-1, self.num_kernels, self.kernel_dim])  # (N, B, C)
        others = _global_batch(m)  # (N_global, B, C)
        l1 = tf.reduce_sum(tf.abs(m[:, None] - others[None]), axis=-1)  # (N, N_global, B)
        # The sum over all j includes j = i, whose term is exp(0) = 1: remove it, then average.
        others_count = tf.cast(tf.shape(others)[0] - 1, l1.dtype)
        o = (tf.reduce_sum(tf.exp(-l1), axis=1) - 1.0) / tf.maximum(others_count, 1.0)
        return tf.concat([features, tf.cast(o, features.dtype)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + self.num_kernels)

    def get_config(self):
        config = super().get_config()
        config.update(num_kernels=self.num_kernels, kernel_dim=self.kernel_dim)
        return config


def _global_batch(x):
    """``x`` all-gathered across replicas (replica-major) inside a strategy's replica context, else ``x``."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_gather(x, axis=0)
