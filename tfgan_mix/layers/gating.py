"""Routers: networks that turn noise z into probabilities over K generators.

* ``SoftmaxGate``: an MLP (or a single linear map) followed by a softmax. NPGAN's noise-prior
  network NP(G_i | z) (paper 000, section 3) and MoG's flat softmax gating (paper 004, section III).
* ``SoftBinaryTree``: HMoG's soft binary decision tree (paper 004, Eqs. 5-6). Every internal node m
  computes sigma_m(z) = sigmoid(v_m z + v_m0), the probability of the left child; a leaf's
  probability is the product of the gate values on its root-to-leaf path. All nodes are one matmul
  and all paths one gather, so depth costs no Python loop in the forward pass.
"""
import keras
import numpy as np
import tensorflow as tf

from tfgan_mix.layers.activations import get_activation


@keras.saving.register_keras_serializable(package="tfgan_mix")
class SoftmaxGate(keras.layers.Layer):
    """p(G_i | z) = softmax(MLP(z))_i over ``num_experts`` generators."""

    def __init__(self, num_experts, hidden_units=(), activation="leaky_relu", **kwargs):
        kwargs.setdefault("dtype", "float32")  # probabilities in float32 under mixed precision
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = activation
        self.hidden = [keras.layers.Dense(u, name=f"hidden{i}", dtype=self.dtype_policy)
                       for i, u in enumerate(self.hidden_units)]
        self.out = keras.layers.Dense(self.num_experts, name="logits", dtype=self.dtype_policy)
        self._act = get_activation(activation)

    def logits(self, z):
        h = z
        for layer in self.hidden:
            h = self._act(layer(h))
        return self.out(h)

    def call(self, z):
        return tf.nn.softmax(self.logits(z), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(num_experts=self.num_experts, hidden_units=list(self.hidden_units), activation=self.activation)
        return config


def tree_paths(depth):
    """For a complete binary tree: (node index, direction) along each leaf's root-to-leaf path.

    Nodes are numbered breadth-first (root 0, children of m are 2m+1 and 2m+2); direction is +1
    for "left" (probability sigma) and -1 for "right" (probability 1 - sigma = sigmoid(-a)).
    Returns two int arrays of shape ``(2**depth, depth)``.
    """
    leaves = 2**depth
    nodes = np.zeros((leaves, depth), dtype=np.int32)
    signs = np.zeros((leaves, depth), dtype=np.float32)
    for leaf in range(leaves):
        node = 0
        for level in range(depth):
            goes_left = (leaf >> (depth - 1 - level)) & 1 == 0
            nodes[leaf, level] = node
            signs[leaf, level] = 1.0 if goes_left else -1.0
            node = 2 * node + (1 if goes_left else 2)
    return nodes, signs


@keras.saving.register_keras_serializable(package="tfgan_mix")
class SoftBinaryTree(keras.layers.Layer):
    """Leaf probabilities of a soft binary tree of ``depth`` levels (2**depth leaves).

    pi_leaf(z) = prod_{m on path} sigma_m(z)^[left] (1 - sigma_m(z))^[right]   (paper 004, Eqs. 5-6)
    computed in log space as sum log_sigmoid(+-a_m) for stability.
    """

    def __init__(self, depth, **kwargs):
        kwargs.setdefault("dtype", "float32")  # probabilities in float32 under mixed precision
        super().__init__(**kwargs)
        if int(depth) < 1:
            raise ValueError(f"tree depth must be >= 1, got {depth}")
        self.depth = int(depth)
        self.nodes = keras.layers.Dense(2**self.depth - 1, name="gates", dtype=self.dtype_policy)
        # numpy, not tf.constant: made into constants inside each traced graph rather than captured
        # as external tensors, which SavedModel would have to track and tf2onnx would turn into inputs.
        self._path_nodes, self._path_signs = tree_paths(self.depth)

    @property
    def num_leaves(self):
        return 2**self.depth

    def gate_values(self, z):
        """sigma_m(z) for every internal node m: ``(B, 2**depth - 1)``."""
        return tf.sigmoid(self.nodes(z))

    def call(self, z):
        activations = self.nodes(z)  # (B, M): v_m z + v_m0, Eq. 5
        along_paths = tf.gather(activations, self._path_nodes, axis=1)  # (B, L, depth)
        log_probs = tf.reduce_sum(tf.math.log_sigmoid(along_paths * self._path_signs), axis=-1)
        return tf.exp(log_probs)

    def get_config(self):
        config = super().get_config()
        config.update(depth=self.depth)
        return config
