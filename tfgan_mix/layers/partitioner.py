"""The space partitioner of PGMGAN (paper 002, "Partition-Guided GANs", sections 4.1-4.2).

    S(x) = softmax(f(x)),   [f_1(x), ..., f_k(x)] = W phi(x) + b

``phi`` is a stack of residual blocks B_t(x) = x + psi_t(x) on the flattened input (R^d -> R^d),
where psi_t is ``m`` dense layers, each spectral-normalised to a norm of at most L < 1, with
1-Lipschitz activations between them (ELU by default). Then for every block

    (1 - L^m) |x - y| <= |B_t(x) - B_t(y)|

so phi satisfies Theorem 3's condition c_0 |x - y| <= |phi(x) - phi(y)| with c_0 = (1 - L^m)^T
(section 4.2, after Behrmann et al.'s invertible ResNets). Theorem 3 then says the guide

    R_i(x) = sum_c (f_c(x) - f_i(x))_+                                    (Eq. 6)

has no local optimum outside its partition A_i = {x : R_i(x) = 0}, its gradient norm is bounded
below outside A_i, and every A_i is connected. (In phi-space R_i is a convex piecewise-linear
function; phi is a homeomorphism, so it adds no local optimum.)

Design notes:
* Dense layers on the flattened input rather than the paper's convolutions: the spectral norm of
  a dense kernel *is* its Lipschitz constant, so the bound is exact (a conv's reshaped-kernel
  norm only approximates the operator's).
* Spectral norms by power iteration (Miyato et al. 2018): one persistent vector u per kernel,
  refined by one iteration per forward pass with u and v held constant for the gradient. The
  stored u moves only through ``update_power_vectors`` (while the partitioner trains), so a
  frozen partitioner is a fixed deterministic function, identical in Keras, SavedModel and ONNX.
* A kernel is scaled by L / max(sigma, L): rescaled only when its norm exceeds L (Behrmann et al.).
* Layer j of all T blocks is one stacked kernel (T, in, out), so the spectral norms of every block
  come from one batched power iteration and the graph barely grows with T.
* Everything is vectorised over the k partitions: the guide is one broadcast, never a loop over k.
* Every weight is aggregated ``only_first_replica``: replicas hold identical copies, so the masked
  assignments that freeze the partitioner or copy the pretext trunk into it (``PGMGAN``) may run
  inside a replica context; the optimizer's updates are unaffected (they sum the gradients first).
"""
import math

import keras
import tensorflow as tf

from tfgan_mix.layers.activations import get_activation


_SAME_ON_EVERY_REPLICA = "only_first_replica"


def partition_guide(logits, index):
    """R_i(x) = sum_c relu(f_c(x) - f_i(x)) (paper 002, Eq. 6) for each row's partition i.

    ``logits`` (B, k), ``index`` (B,) int -> (B,). Zero exactly when f_i is the largest logit,
    i.e. x lies in A_i (Eq. 7). f_i is picked by a one-hot sum (no gather; exact, ONNX-friendly).
    """
    one_hot = tf.one_hot(index, logits.shape[-1], dtype=logits.dtype)
    own = tf.reduce_sum(logits * one_hot, axis=-1, keepdims=True)
    return tf.reduce_sum(tf.nn.relu(logits - own), axis=-1)


def nearest_neighbours(points, k):
    """Indices of each row's ``k`` nearest other rows (squared Euclidean): (N, d) -> (N, k).

    The k-NN graph of section 4.1, built inside a batch with static shapes (top_k compiles with XLA).
    """
    sq = tf.reduce_sum(tf.square(points), axis=-1)
    dist = sq[:, None] + sq[None, :] - 2.0 * tf.matmul(points, points, transpose_b=True)
    n = tf.shape(points)[0]
    dist += tf.linalg.diag(tf.fill([n], tf.constant(float("inf"), points.dtype)))  # never your own neighbour
    return tf.math.top_k(-dist, k=k).indices


@keras.saving.register_keras_serializable(package="tfgan_mix")
class LipschitzPartitioner(keras.layers.Layer):
    """S(x) = softmax(W phi(x) + b) with phi a stack of Lipschitz residual blocks.

    Args:
        num_partitions: k; 0 builds phi alone (the pretext network's trunk phi_0, section 4.1).
        blocks: T residual blocks (0: a linear partitioner, whose guide trivially has no local optima).
        layers_per_block: m dense layers in each psi_t.
        units: width of psi_t's hidden layers.
        lipschitz: L, the bound on every layer's spectral norm (< 1).
        activation: a 1-Lipschitz activation between psi_t's layers.
    """

    def __init__(self, num_partitions, blocks=20, layers_per_block=3, units=128, lipschitz=0.9,
                 activation="elu", **kwargs):
        super().__init__(**kwargs)
        if not 0.0 < float(lipschitz) < 1.0:
            raise ValueError(f"the partitioner's Lipschitz constant must lie in (0, 1) (Theorem 3), got {lipschitz}")
        if int(layers_per_block) < 1 or int(blocks) < 0:
            raise ValueError("the partitioner needs blocks >= 0 and layers_per_block >= 1")
        if int(num_partitions) < 0:
            raise ValueError(f"the partitioner needs num_partitions >= 0, got {num_partitions}")
        self.num_partitions = int(num_partitions)
        self.blocks = int(blocks)
        self.layers_per_block = int(layers_per_block)
        self.units = int(units)
        self.lipschitz = float(lipschitz)
        self.activation = activation
        self._act = get_activation(activation)

    def build(self, input_shape):
        d = math.prod(int(s) for s in input_shape[1:])
        self.input_dim = d
        widths = [d] + [self.units] * (self.layers_per_block - 1) + [d]
        # Layer j of all T blocks is one stacked kernel (T, in, out): the power iterations of every
        # block run as one batched op, so the graph does not grow with T.
        self.block_layers = []  # per layer position j: (kernel, bias, u)
        t = max(self.blocks, 1)  # zero blocks keep one unused slot so the weight structure is fixed
        for j, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            limit = math.sqrt(6.0 / (fan_in + fan_out))  # Glorot uniform, per block
            kernel = self.add_weight(name=f"dense{j}_kernel", shape=(t, fan_in, fan_out),
                                     initializer=keras.initializers.RandomUniform(-limit, limit),
                                     aggregation=_SAME_ON_EVERY_REPLICA)
            bias = self.add_weight(name=f"dense{j}_bias", shape=(t, fan_out), initializer="zeros",
                                   aggregation=_SAME_ON_EVERY_REPLICA)
            # The power-iteration vectors: identical on every replica (a function of the weights),
            # so the first replica's value stands for all.
            u = self.add_weight(name=f"dense{j}_u", shape=(t, fan_out), initializer="random_normal",
                                trainable=False, aggregation=_SAME_ON_EVERY_REPLICA)
            self.block_layers.append((kernel, bias, u))
        # W_0: random (section 4.1) but small, so the softmax starts unsaturated and every partition
        # alive; a larger start leaves some partitions empty for good (our choice, paper silent).
        if self.num_partitions:
            self.partition_kernel = self.add_weight(
                name="partition_kernel", shape=(d, self.num_partitions),
                initializer=keras.initializers.RandomNormal(stddev=0.01), aggregation=_SAME_ON_EVERY_REPLICA)
            self.partition_bias = self.add_weight(name="partition_bias", shape=(self.num_partitions,),
                                                  initializer="zeros", aggregation=_SAME_ON_EVERY_REPLICA)
        super().build(input_shape)

    @property
    def feature_variables(self):
        """phi's variables (kernels, biases and power-iteration vectors), in a fixed order."""
        return [v for layer in self.block_layers for v in layer]

    def copy_features_from(self, other, where):
        """phi <- other's phi (weights and power vectors) where ``where`` (a bool scalar) is true.

        Section 4.1's initialisation S_init(x) = softmax(W_0 phi_0(x)): phi starts as the pretext
        network's trunk phi_0. A masked assign (static control flow, replica-safe).
        """
        for mine, theirs in zip(self.feature_variables, other.feature_variables, strict=True):
            mine.assign(tf.where(where, theirs, mine))

    # ------------------------------------------------------------------ spectral normalisation
    @staticmethod
    def _power_step(kernel, u):
        """One power iteration on each of the T kernels (T, in, out): (sigma (T,), refined u (T, out)),
        without gradient through the vectors (Miyato et al. 2018, Algorithm 1)."""
        v = tf.math.l2_normalize(tf.einsum("tio,to->ti", kernel, u), axis=-1)
        u_new = tf.math.l2_normalize(tf.einsum("tio,ti->to", kernel, v), axis=-1)
        v, u_new = tf.stop_gradient(v), tf.stop_gradient(u_new)
        sigma = tf.reduce_sum(v * tf.einsum("tio,to->ti", kernel, u_new), axis=-1)  # v^T W u
        return sigma, u_new

    def normalized_kernel(self, kernel, u):
        """kernel * L / max(sigma, L) for each of the T kernels: spectral norms at most L."""
        sigma, _ = self._power_step(kernel, u)
        return kernel * (self.lipschitz / tf.maximum(sigma, self.lipschitz))[:, None, None]

    def normalized_kernels(self):
        """Every psi layer's kernel as used in the forward pass, (T, in, out) per layer position."""
        return [self.normalized_kernel(k, u)[: self.blocks] for k, _, u in self.block_layers]

    def update_power_vectors(self, active=True):
        """Store one more power iteration in each u, where ``active`` (a bool scalar) is true.

        Called once per partitioner update; a masked assign rather than a ``tf.cond`` so the step
        keeps static control flow (XLA) and works inside a replica context.
        """
        for kernel, _, u in self.block_layers:
            _, u_new = self._power_step(kernel, u)
            u.assign(tf.where(active, u_new, u))

    # ------------------------------------------------------------------ forward
    def features(self, x):
        """phi(x): the flattened input through the T Lipschitz residual blocks, (B, d)."""
        h = tf.reshape(x, [-1, self.input_dim])
        layers = [(self.normalized_kernel(k, u), b) for k, b, u in self.block_layers]
        for t in range(self.blocks):
            r = h
            for j, (kernel, bias) in enumerate(layers):
                if j > 0:
                    r = self._act(r)
                r = tf.matmul(r, kernel[t]) + bias[t]
            h = h + r
        return h

    def logits(self, x):
        """f(x) = W phi(x) + b: (B, k)."""
        if not self.num_partitions:
            raise ValueError("this partitioner was built with num_partitions=0 (phi only); it has no logits")
        return tf.matmul(self.features(x), self.partition_kernel) + self.partition_bias

    def call(self, x):
        """S(x): partition probabilities (B, k)."""
        return tf.nn.softmax(self.logits(x), axis=-1)

    def assign(self, x):
        """The partition of each x: argmax_i f_i(x), (B,) int32."""
        return tf.argmax(self.logits(x), axis=-1, output_type=tf.int32)

    def guide(self, x, index):
        """R_i(x) (Eq. 6) for each row's partition ``index``: (B,)."""
        return partition_guide(self.logits(x), index)

    def lower_lipschitz_bound(self):
        """c_0 = (1 - L^m)^T of Theorem 3 (given every layer's norm is at most L)."""
        return (1.0 - self.lipschitz**self.layers_per_block) ** self.blocks

    def get_config(self):
        config = super().get_config()
        config.update(num_partitions=self.num_partitions, blocks=self.blocks, layers_per_block=self.layers_per_block,
                      units=self.units, lipschitz=self.lipschitz, activation=self.activation)
        return config


@keras.saving.register_keras_serializable(package="tfgan_mix")
class ProjectionHead(keras.layers.Layer):
    """The pretext head h = W2 sigma(W1 phi_0(x)) of paper 002, section 4.1 (sigma = ReLU).

    Float32, and its weights aggregated like the partitioner's (masked assignments inside a
    replica context freeze it exactly once the pretext phase ends).
    """

    def __init__(self, units, dim, **kwargs):
        super().__init__(**kwargs)
        self.units, self.dim = int(units), int(dim)

    def build(self, input_shape):
        d = int(input_shape[-1])
        glorot = keras.initializers.GlorotUniform
        self.w1 = self.add_weight(name="w1", shape=(d, self.units), initializer=glorot(),
                                  aggregation=_SAME_ON_EVERY_REPLICA)
        self.b1 = self.add_weight(name="b1", shape=(self.units,), initializer="zeros",
                                  aggregation=_SAME_ON_EVERY_REPLICA)
        self.w2 = self.add_weight(name="w2", shape=(self.units, self.dim), initializer=glorot(),
                                  aggregation=_SAME_ON_EVERY_REPLICA)
        self.b2 = self.add_weight(name="b2", shape=(self.dim,), initializer="zeros",
                                  aggregation=_SAME_ON_EVERY_REPLICA)
        super().build(input_shape)

    def call(self, features):
        return tf.matmul(tf.nn.relu(tf.matmul(features, self.w1) + self.b1), self.w2) + self.b2

    def get_config(self):
        return {**super().get_config(), "units": self.units, "dim": self.dim}
