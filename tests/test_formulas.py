"""Formulas checked against numbers worked out by hand (or written out with numpy from the paper).

* NPGAN (paper 000, Algorithm 1): the soft loss D_fake = sum_i pi^i D(G_i(z)) on a tiny example,
  and NP trained as its own player after D and G (section 3).
* Minibatch discrimination (Salimans et al. 2016, section 3.2), which paper 000's toy D uses.
* HMoG / MoG gating (paper 004): leaf probabilities of a depth-2 soft binary tree (Eqs. 5-6), the
  recursive combination of Eq. 6, and MoG's gated sum of linear leaves (Eqs. 6-7).
"""
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import moved, snapshot, tiny_model, training_step

from tfgan_mix.backbones import build_discriminator
from tfgan_mix.core import Step
from tfgan_mix.core.base import SALTS_PER_STEP
from tfgan_mix.layers import SoftBinaryTree
from tfgan_mix.layers.minibatch import MinibatchDiscrimination
from tfgan_mix.losses import get_loss_family
from tfgan_mix.methods.npgan import NPGANConfig, soft_generator_loss


# ---------------------------------------------------------------------- NPGAN, Algorithm 1
def _hand_example():
    """Two z, two generators. z_1: D(G_1) = sigmoid(0) = 0.5, D(G_2) = sigmoid(ln 3) = 0.75,
    pi = (0.2, 0.8): D_fake = 0.1 + 0.6 = 0.7. z_2: D = (sigmoid(ln 4), sigmoid(-ln 4)) = (0.8, 0.2),
    pi = (0.5, 0.5): D_fake = 0.5."""
    logits = tf.constant([[0.0, math.log(3.0)], [math.log(4.0), -math.log(4.0)]])
    prior = tf.constant([[0.2, 0.8], [0.5, 0.5]])
    return logits, prior, np.array([0.7, 0.5])


def test_npgan_soft_fake_score_is_the_prior_weighted_d():
    logits, prior, d_fake = _hand_example()
    mixed = get_loss_family("minimax").mix(logits, prior)
    np.testing.assert_allclose(tf.sigmoid(mixed).numpy(), d_fake, rtol=1e-6)


@pytest.mark.parametrize("loss, expected", [
    ("minimax", [math.log(0.3), math.log(0.5)]),  # Algorithm 1 literally: log(1 - D_fake), minimised by G and NP
    ("ns", [-math.log(0.7), -math.log(0.5)]),  # the non-saturating form: -log D_fake
])
def test_npgan_generator_and_noise_prior_loss_by_hand(loss, expected):
    logits, prior, _ = _hand_example()
    np.testing.assert_allclose(soft_generator_loss(get_loss_family(loss), logits, prior).numpy(), expected, rtol=1e-5)


def test_npgan_discriminator_loss_by_hand():
    """D maximises L = log D_real + log(1 - D_fake): our per-example loss is -L. D_real = sigmoid(ln 4) = 0.8."""
    logits, prior, _ = _hand_example()
    family = get_loss_family("minimax")
    real_logits = tf.constant([math.log(4.0), math.log(4.0)])
    got = family.discriminator(real_logits, family.mix(logits, prior)).numpy()
    np.testing.assert_allclose(got, [-(math.log(0.8) + math.log(0.3)), -(math.log(0.8) + math.log(0.5))], rtol=1e-5)


def test_npgan_model_loss_is_algorithm_1_on_its_own_networks():
    """The model's NP loss, rebuilt from D(G_i(z)) and NP(z) evaluated one generator at a time."""
    model = tiny_model("npgan", loss="minimax", minibatch_discrimination=False)
    step = training_step(model, 6, (2, 0))
    noise = step.noise
    outputs = model.generators(noise["z"]).numpy()  # (B, K, 2)
    d = np.stack([tf.sigmoid(model.discriminate(outputs[:, i])).numpy() for i in range(outputs.shape[1])], 1)
    pi = model.noise_prior(noise["z"]).numpy()
    expected = np.log(1.0 - np.sum(pi * d, axis=1))
    got = model.noise_prior_losses(step)["np_adv"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_npgan_noise_prior_is_a_third_player_updated_after_d_and_g(tmp_path):
    """Section 3: NP is optimised on the GAN loss with G and D fixed, by its own optimizer. With SGD,
    after one train step NP's change is -lr times the gradient of its loss at the *updated* D and
    G (it moves last) and at its own initial weights; NP is not among the generators' variables."""
    lr = 0.1
    model = tiny_model("npgan", compile_kwargs={"d_optimizer": keras.optimizers.SGD(0.05),
                                                "g_optimizer": keras.optimizers.SGD(0.05),
                                                "np_optimizer": keras.optimizers.SGD(lr)})
    np_vars = model.noise_prior_variables
    assert np_vars and not {id(v) for v in np_vars} & {id(v) for v in model.generator_variables}
    assert not {id(v) for v in np_vars} & {id(v) for v in model.discriminator_variables}
    np_before = snapshot(np_vars)
    g_before = snapshot(model.generator_variables)
    real = np.random.default_rng(0).normal(size=(16, 2)).astype("float32")
    model.fit(tf.data.Dataset.from_tensor_slices(real).batch(16, drop_remainder=True), epochs=1, verbose=0)
    assert [int(o.iterations.numpy()) for o in (model.d_optimizer, model.g_optimizer, model.np_optimizer)] == [1, 1, 1]
    assert moved(g_before, model.generator_variables)
    np_after = snapshot(np_vars)
    for v, b in zip(np_vars, np_before):  # back to NP's initial weights; D and G stay updated
        v.assign(b)
    noise = model.draw_training_noise(16, tf.constant(0, tf.int64), SALTS_PER_STEP - 2)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.noise_prior_losses(Step(tf.constant(real), noise))["np_adv"])
    for after, b, g in zip(np_after, np_before, tape.gradient(loss, np_vars)):
        np.testing.assert_allclose(after, b - lr * g.numpy(), rtol=1e-4, atol=1e-6)
    # NP's optimizer is saved and restored with the model.
    for v, a in zip(np_vars, np_after):
        v.assign(a)
    path = os.path.join(tmp_path, "npgan.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    assert int(restored.np_optimizer.iterations.numpy()) == 1
    assert isinstance(restored.np_optimizer, keras.optimizers.SGD)


def test_npgan_offers_minibatch_discrimination_as_section_4_1_off_by_default():
    assert NPGANConfig().minibatch_discrimination is False  # measured: more off-manifold samples with it
    on = tiny_model("npgan", minibatch_discrimination=True)
    assert any(isinstance(layer, MinibatchDiscrimination) for layer in on.discriminator.layers)
    off = tiny_model("npgan")
    assert not any(isinstance(layer, MinibatchDiscrimination) for layer in off.discriminator.layers)
    other = tiny_model("mgan")  # other methods keep their plain discriminator
    assert not any(isinstance(layer, MinibatchDiscrimination) for layer in other.discriminator.layers)


def test_npgan_refuses_a_bad_noise_prior_rate():
    with pytest.raises(ValueError, match="noise_prior_learning_rate"):
        NPGANConfig(noise_prior_learning_rate=-1.0)


# ---------------------------------------------------------------------- minibatch discrimination
def test_minibatch_features_by_hand():
    """A = 1 feature, B = 2 kernels of C = 1: M_i = (f_i, 2 f_i). For f = (0, 1, 3), averaged over
    the N - 1 = 2 others: o(x_1) = (e^-1 + e^-3, e^-2 + e^-6) / 2, o(x_2) = (e^-1 + e^-2, e^-2 + e^-4) / 2,
    o(x_3) = (e^-3 + e^-2, e^-6 + e^-4) / 2."""
    layer = MinibatchDiscrimination(num_kernels=2, kernel_dim=1)
    layer.build((None, 1))
    layer.kernel.assign([[1.0, 2.0]])
    out = layer(tf.constant([[0.0], [1.0], [3.0]])).numpy()
    e = np.exp
    expected = np.array([[0.0, (e(-1) + e(-3)) / 2, (e(-2) + e(-6)) / 2],
                         [1.0, (e(-1) + e(-2)) / 2, (e(-2) + e(-4)) / 2],
                         [3.0, (e(-3) + e(-2)) / 2, (e(-6) + e(-4)) / 2]])
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-7)


def test_minibatch_discrimination_in_the_mlp_discriminator_and_bad_sizes():
    d = build_discriminator((2,), units=(8,), minibatch_discrimination=True, minibatch_kernels=4, minibatch_kernel_dim=2)
    assert d(tf.zeros([5, 2])).shape == (5, 1)
    layer = d.get_layer("minibatch_discrimination")
    assert (layer.num_kernels, layer.kernel_dim) == (4, 2) and layer.kernel.shape == (8, 8)
    with pytest.raises(ValueError, match="num_kernels >= 1"):
        MinibatchDiscrimination(num_kernels=0)


# ---------------------------------------------------------------------- paper 004 gating
def _tree_depth2():
    """Three gates, node m's activation a_m = v_m z (z one number, no bias): v = (0, ln 3, -ln 4)."""
    tree = SoftBinaryTree(depth=2)
    tree(tf.zeros([1, 1]))  # builds the gates
    tree.nodes.kernel.assign([[0.0, math.log(3.0), -math.log(4.0)]])
    tree.nodes.bias.assign([0.0, 0.0, 0.0])
    return tree


def test_soft_binary_tree_leaf_probabilities_by_hand():
    """z = 1: sigma_0 = 1/2, sigma_1 = sigmoid(ln 3) = 3/4, sigma_2 = sigmoid(-ln 4) = 1/5 (Eq. 5).
    Leaves left-left, left-right, right-left, right-right: (1/2 3/4, 1/2 1/4, 1/2 1/5, 1/2 4/5).
    z = 0: every gate is 1/2, every leaf 1/4."""
    probs = _tree_depth2()(tf.constant([[1.0], [0.0]])).numpy()
    np.testing.assert_allclose(probs[0], [3 / 8, 1 / 8, 1 / 10, 4 / 10], rtol=1e-6)
    np.testing.assert_allclose(probs[1], [0.25] * 4, rtol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), [1.0, 1.0], rtol=1e-6)


def test_soft_binary_tree_sums_to_one_for_any_z():
    tree = SoftBinaryTree(depth=3)
    probs = tree(tf.random.stateless_normal([64, 5], [1, 2]) * 4.0).numpy()
    assert np.all(probs > 0)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(64), rtol=1e-5)


def test_eq_6_recursion_equals_the_leaf_probability_mixture():
    """Eq. 6 at z = 1 with leaf outputs G = (10, 20, 30, 40):
    x_1 = 3/4 10 + 1/4 20 = 12.5, x_2 = 1/5 30 + 4/5 40 = 38, root = 1/2 12.5 + 1/2 38 = 25.25;
    the same as sum_leaf pi_leaf G_leaf with the tree's leaf probabilities."""
    leaves = np.array([10.0, 20.0, 30.0, 40.0])
    probs = _tree_depth2()(tf.constant([[1.0]])).numpy()[0]
    assert float(probs @ leaves) == pytest.approx(25.25, rel=1e-6)


def test_mog_output_is_trunk_of_softmax_gated_linear_leaves():
    """Paper 004, Eqs. 6-7 for the flat gate: h(z) = sum_m g_m(z) (W_m z + w_m0) with g = softmax(V z + v_0),
    written out with numpy from the model's variables; the sample is the shared trunk of h."""
    model = tiny_model("mog", generator_units=(4, 8))
    z = np.random.default_rng(1).normal(size=(5, model.config.latent_dim)).astype("float32")
    kernel, bias = (v.numpy() for v in model.generators.head)  # (K, d, h), (K, h)
    leaves = np.einsum("bd,kdh->bkh", z, kernel) + bias[None]  # Eq. 7
    a = z @ model.gate.out.kernel.numpy() + model.gate.out.bias.numpy()
    g = np.exp(a - a.max(axis=1, keepdims=True))
    g /= g.sum(axis=1, keepdims=True)
    h = np.einsum("bk,bkh->bh", g, leaves)  # Eq. 6 at the root of a depth-1 tree
    samples, index = model.generate({"z": tf.constant(z)})
    np.testing.assert_allclose(samples.numpy(), model.generators.trunk(tf.constant(h)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(index.numpy(), g.argmax(axis=1))


def test_npgan_minibatch_features_compare_each_generator_batch_with_its_own():
    """With minibatch discrimination, D's logit for G_i(z_j) depends only on G_i's batch: changing
    another generator's outputs leaves it unchanged (one pooled batch of B K fakes would not)."""
    model = tiny_model("npgan")
    noise = model.sample_noise(8, tf.constant([4, 0], tf.int64))
    outputs = model.generators(noise["z"])
    logits, _ = model.mixed_logits(noise)
    expected = np.stack([model.discriminate(outputs[:, i]).numpy() for i in range(outputs.shape[1])], 1)
    np.testing.assert_allclose(logits.numpy(), expected, rtol=1e-5, atol=1e-5)
