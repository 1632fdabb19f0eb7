"""GeneratorBank equals K separate generators, DiscriminatorBank n_D separate discriminators; routers
give valid, correctly structured probabilities."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_mix.core.base import choose_from_uniform, select_generator
from tfgan_mix.layers import DiscriminatorBank, GeneratorBank, SoftBinaryTree, SoftmaxGate
from tfgan_mix.layers.gating import tree_paths

K, LATENT, BATCH = 3, 5, 4


def _leaky(x):
    return tf.nn.leaky_relu(x, alpha=0.2)


def _mlp_reference(bank, z, k):
    """Generator k on its own: plain matmuls over that generator's slice of the stacked kernels."""
    kernel, bias = bank.head
    h = tf.matmul(z, kernel[k]) + bias[k]
    for kernel, bias in bank.trunk_layers:
        per_gen = len(kernel.shape) == 3
        h = tf.matmul(_leaky(h), kernel[k] if per_gen else kernel) + (bias[k] if per_gen else bias)
    return tf.reshape(h, [-1, *bank.sample_shape])


def _conv_reference(bank, z, k):
    """Generator k with library ops: Dense head, nearest UpSampling2D, tf.nn.conv2d 'SAME'."""
    kernel, bias = bank.head
    bh, bw = bank._base_hw
    x = tf.reshape(tf.matmul(z, kernel[k]) + bias[k], [-1, bh, bw, bank._base_channels])
    upsample = keras.layers.UpSampling2D(interpolation="nearest")
    for i, (kernel, bias) in enumerate(bank.trunk_layers):
        x = _leaky(x)
        if i < bank._num_upsamples:
            x = upsample(x)
        per_gen = len(kernel.shape) == 3
        w, b = (kernel[k], bias[k]) if per_gen else (kernel, bias)
        c_in = x.shape[-1]
        x = tf.nn.conv2d(x, tf.reshape(w, [3, 3, c_in, -1]), strides=1, padding="SAME") + b
    return tf.tanh(x)


def _bank(backbone, shared_trunk):
    if backbone == "mlp":
        bank = GeneratorBank(K, (2,), units=(6, 7), shared_trunk=shared_trunk)
    else:
        bank = GeneratorBank(K, (8, 8, 2), backbone="dcgan", conv_filters=(4, 3),
                             shared_trunk=shared_trunk, output_activation="tanh")
    bank.build((None, LATENT))
    # Non-zero biases, so a bias wired to the wrong generator would show.
    for v in bank.trainable_variables:
        v.assign(tf.random.stateless_normal(v.shape, [1, len(v.name)]) * 0.3)
    return bank


@pytest.mark.parametrize("shared_trunk", [False, True], ids=["own-trunk", "shared-trunk"])
@pytest.mark.parametrize("backbone", ["mlp", "dcgan"])
def test_bank_matches_a_loop_over_separate_generators(backbone, shared_trunk):
    bank = _bank(backbone, shared_trunk)
    reference = _mlp_reference if backbone == "mlp" else _conv_reference
    z = tf.random.stateless_uniform([BATCH, LATENT], [0, 1], -1, 1)
    weights = tf.random.stateless_normal([BATCH, K, *bank.sample_shape], [0, 2])  # a loss touching every output

    with tf.GradientTape() as tape:
        together = bank(z)
        loss_together = tf.reduce_sum(together * weights)
    grads_together = tape.gradient(loss_together, bank.trainable_variables)

    with tf.GradientTape() as tape:
        apart = tf.stack([reference(bank, z, k) for k in range(K)], axis=1)
        loss_apart = tf.reduce_sum(apart * weights)
    grads_apart = tape.gradient(loss_apart, bank.trainable_variables)

    assert together.shape == (BATCH, K, *bank.sample_shape)
    np.testing.assert_allclose(together.numpy(), apart.numpy(), rtol=1e-5, atol=1e-5)
    for var, g1, g2 in zip(bank.trainable_variables, grads_together, grads_apart):
        np.testing.assert_allclose(g1.numpy(), g2.numpy(), rtol=1e-4, atol=1e-5, err_msg=var.name)


def test_generators_are_independent_when_trunks_are_not_shared():
    bank = _bank("mlp", shared_trunk=False)
    z = tf.random.stateless_uniform([BATCH, LATENT], [0, 3], -1, 1)
    with tf.GradientTape() as tape:
        out = bank(z)[:, 1]  # only generator 1's output
    grads = tape.gradient(out, bank.trainable_variables)
    for g in grads:
        g = g.numpy()
        assert np.all(g[[0, 2]] == 0) and np.any(g[1] != 0)


def test_per_generator_noise_input_matches_shared_noise():
    bank = _bank("mlp", shared_trunk=True)
    z = tf.random.stateless_uniform([BATCH, LATENT], [0, 4], -1, 1)
    tiled = tf.tile(z[:, None], [1, K, 1])
    np.testing.assert_allclose(bank(z).numpy(), bank(tiled).numpy(), rtol=1e-6)


def test_mixing_before_the_trunk_needs_a_shared_trunk():
    bank = _bank("mlp", shared_trunk=False)
    with pytest.raises(ValueError, match="shared_trunk=True"):
        bank.trunk(tf.zeros([2, 6]))


@pytest.mark.parametrize("latent", [2, 12], ids=["gathered-kernels", "all-heads"])
def test_own_heads_equal_the_chosen_heads_and_train_only_them(latent):
    """Both paths of own_heads (latent < K gathers each example's kernel; otherwise all K heads and
    a one-hot pick) give heads(z)[b, index_b], and the gradient reaches only the chosen heads."""
    bank = GeneratorBank(8, (2,), units=(6, 5), shared_trunk=True)
    batch = 10
    z = tf.random.stateless_normal([batch, latent], [0, 5])
    bank(z)
    index = tf.constant(np.arange(batch) % 5, tf.int32)  # heads 5..7 are never chosen
    with tf.GradientTape() as tape:
        own = bank.own_heads(z, index)
        total = tf.reduce_sum(tf.square(own))
    expected = bank.heads(z).numpy()[np.arange(batch), index.numpy()]
    np.testing.assert_allclose(own.numpy(), expected, rtol=1e-5, atol=1e-6)
    kernel_grad = tf.convert_to_tensor(tape.gradient(total, bank.head[0])).numpy()
    used = np.abs(kernel_grad).sum(axis=(1, 2)) > 0
    np.testing.assert_array_equal(used, np.arange(8) < 5)


def test_bad_backbone_is_named():
    with pytest.raises(ValueError, match="unknown generator backbone 'resnet'"):
        GeneratorBank(2, (2,), backbone="resnet")
    with pytest.raises(ValueError, match="needs image samples"):
        GeneratorBank(2, (2,), backbone="dcgan")


def test_bank_survives_serialisation():
    bank = _bank("dcgan", shared_trunk=True)
    clone = GeneratorBank.from_config(bank.get_config())
    clone.build((None, LATENT))
    clone.set_weights(bank.get_weights())
    z = tf.random.stateless_uniform([BATCH, LATENT], [0, 5], -1, 1)
    np.testing.assert_array_equal(bank(z).numpy(), clone(z).numpy())


# ---------------------------------------------------------------------- discriminator bank
N_D = 3


def _discriminator_bank(backbone, groups=1):
    if backbone == "mlp":
        bank = DiscriminatorBank(N_D, (2,), units=(6, 7), groups=groups)
    else:
        bank = DiscriminatorBank(N_D, (5, 6, 2), backbone="dcgan", conv_filters=(4, 3), groups=groups)
    for v in bank.trainable_variables:  # non-zero biases, so a bias wired to the wrong D_j would show
        v.assign(tf.random.stateless_normal(v.shape, [2, len(v.name)]) * 0.3)
    return bank


def _discriminator_reference(bank, x, j):
    """D_j on its own with library ops: matmuls, or tf.nn.conv2d with stride 2 and zero padding 1."""
    (layers,) = bank.group_layers
    if bank.backbone == "mlp":
        h = tf.reshape(x, [x.shape[0], -1])
        for i, (kernel, bias) in enumerate(layers):
            h = tf.matmul(h, kernel[j]) + bias[j]
            if i < len(layers) - 1:
                h = _leaky(h)
        return h[:, 0]
    h = x
    for kernel, bias in layers[:-1]:
        w = tf.reshape(kernel[j], [3, 3, h.shape[-1], -1])
        h = _leaky(tf.nn.conv2d(h, w, strides=2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]) + bias[j])
    kernel, bias = layers[-1]
    return (tf.matmul(tf.reshape(h, [h.shape[0], -1]), kernel[j]) + bias[j])[:, 0]


@pytest.mark.parametrize("backbone", ["mlp", "dcgan"])
def test_discriminator_bank_matches_a_loop_over_separate_discriminators(backbone):
    bank = _discriminator_bank(backbone)
    shape = bank.sample_shape
    x = tf.random.stateless_normal([BATCH, *shape], [0, 3])
    expected = np.stack([_discriminator_reference(bank, x, j).numpy() for j in range(N_D)], axis=1)
    np.testing.assert_allclose(bank.scores(x).numpy(), expected, rtol=1e-5, atol=1e-5)
    # Each D_j on its own inputs.
    own = tf.random.stateless_normal([BATCH, N_D, *shape], [0, 4])
    expected_own = np.stack([_discriminator_reference(bank, own[:, j], j).numpy() for j in range(N_D)], axis=1)
    np.testing.assert_allclose(bank.per_discriminator(own).numpy(), expected_own, rtol=1e-5, atol=1e-5)
    # call: column 0 is the v-weighted mixture (Eq. 5), then every D_j.
    bank.mixture_logits.assign([0.5, -1.0, 0.2])
    v = tf.nn.softmax(bank.mixture_logits).numpy()
    out = bank(x).numpy()
    np.testing.assert_allclose(out[:, 1:], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out[:, 0], expected @ v, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone", ["mlp", "dcgan"])
def test_discriminator_bank_groups_are_a_round_robin_split(backbone):
    """Two groups hold D_0, D_2 and D_1; with the single group's weights split that way, the scores agree."""
    single, grouped = _discriminator_bank(backbone), _discriminator_bank(backbone, groups=2)
    for layer, pair in enumerate(single.group_layers[0]):
        for which, variable in enumerate(pair):
            whole = variable.numpy()
            grouped.group_layers[0][layer][which].assign(whole[[0, 2]])
            grouped.group_layers[1][layer][which].assign(whole[[1]])
    x = tf.random.stateless_normal([BATCH, *single.sample_shape], [1, 3])
    np.testing.assert_allclose(grouped.scores(x).numpy(), single.scores(x).numpy(), rtol=1e-6)


def test_discriminator_bank_weights_keep_their_order_names_and_initialisation():
    """The creation order fixes what a seed draws: v's logits, then per group and layer kernel and bias.
    Kernels are Glorot uniform per discriminator, biases and logits zero."""
    bank = DiscriminatorBank(2, (4,), units=(5,), groups=2)
    names = [v.name for v in bank.weights]
    assert names == ["mixture_logits", "g0_layer0_kernel", "g0_layer0_bias", "g0_layer1_kernel", "g0_layer1_bias",
                     "g1_layer0_kernel", "g1_layer0_bias", "g1_layer1_kernel", "g1_layer1_bias"]
    assert [tuple(v.shape) for v in bank.group_layers[0][0]] == [(1, 4, 5), (1, 5)]
    kernel = bank.group_layers[0][0][0].numpy()
    assert 0 < np.abs(kernel).max() <= np.sqrt(6.0 / (4 + 5))
    assert not np.any(bank.mixture_logits.numpy()) and not np.any(bank.group_layers[1][1][1].numpy())


def test_discriminator_bank_survives_serialisation():
    bank = _discriminator_bank("dcgan")
    clone = DiscriminatorBank.from_config(bank.get_config())
    clone.set_weights(bank.get_weights())
    x = tf.random.stateless_normal([BATCH, *bank.sample_shape], [3, 3])
    np.testing.assert_array_equal(bank(x).numpy(), clone(x).numpy())
    with pytest.raises(ValueError, match="unknown discriminator backbone 'resnet'"):
        DiscriminatorBank(2, (2,), backbone="resnet")


# ---------------------------------------------------------------------- routers
def test_softmax_gate_gives_distributions():
    gate = SoftmaxGate(4, hidden_units=(8,))
    probs = gate(tf.random.stateless_normal([16, 3], [1, 1])).numpy()
    assert probs.shape == (16, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)


def test_tree_paths_of_depth_two():
    nodes, signs = tree_paths(2)
    # Leaves left to right: LL, LR, RL, RR through root 0 and nodes 1 (left child), 2 (right child).
    np.testing.assert_array_equal(nodes, [[0, 1], [0, 1], [0, 2], [0, 2]])
    np.testing.assert_array_equal(signs, [[1, 1], [1, -1], [-1, 1], [-1, -1]])


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_soft_tree_leaf_probabilities_are_path_products(depth):
    tree = SoftBinaryTree(depth)
    z = tf.random.stateless_normal([6, 3], [2, depth])
    probs = tree(z).numpy()
    gates = tree.gate_values(z).numpy()
    nodes, signs = tree_paths(depth)
    expected = np.ones((6, 2**depth))
    for leaf in range(2**depth):
        for node, sign in zip(nodes[leaf], signs[leaf]):
            expected[:, leaf] *= gates[:, node] if sign > 0 else 1 - gates[:, node]
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_tree_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        SoftBinaryTree(0)


# ---------------------------------------------------------------------- choosing a generator
def test_choose_from_uniform_follows_the_inverse_cdf():
    probs = tf.constant([[0.2, 0.5, 0.3]] * 5)
    u = tf.constant([0.0, 0.19, 0.2, 0.69, 0.999])
    np.testing.assert_array_equal(choose_from_uniform(probs, u).numpy(), [0, 0, 1, 1, 2])


def test_choose_from_uniform_takes_one_distribution_for_every_row():
    u = tf.constant([0.0, 0.19, 0.2, 0.69, 0.999])
    np.testing.assert_array_equal(choose_from_uniform(tf.constant([0.2, 0.5, 0.3]), u).numpy(), [0, 0, 1, 1, 2])


def test_choose_from_uniform_matches_the_probabilities():
    probs = tf.constant([[0.1, 0.6, 0.3]] * 100_000)
    u = tf.random.stateless_uniform([100_000], [0, 7])
    counts = np.bincount(choose_from_uniform(probs, u).numpy(), minlength=3) / 100_000
    np.testing.assert_allclose(counts, [0.1, 0.6, 0.3], atol=0.01)


def test_select_generator_routes_gradients_to_the_chosen_one_only():
    outputs = tf.Variable(tf.random.stateless_normal([4, 3, 2], [0, 9]))
    index = tf.constant([2, 0, 1, 2])
    with tf.GradientTape() as tape:
        chosen = select_generator(outputs, index)
        total = tf.reduce_sum(chosen)
    np.testing.assert_array_equal(chosen.numpy(), outputs.numpy()[np.arange(4), index.numpy()])
    grad = tape.gradient(total, outputs).numpy()
    np.testing.assert_array_equal(grad.sum(axis=2) > 0, np.eye(3, dtype=bool)[index.numpy()])
