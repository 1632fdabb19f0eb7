"""MGAN (paper 004 Eq. 4; paper 000 section 2): the loss terms against hand-computed values, and
the architecture the method is defined by (shared trunk, same z, classifier head on D's trunk)."""
import numpy as np
import pytest
import tensorflow as tf
from helpers import log_softmax, softplus, tiny_model, training_step

from tfgan_mix.methods.mgan import generator_cross_entropy


def test_generator_cross_entropy_is_minus_log_c_of_the_true_generator():
    logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.5], [0.0, 1.0, 3.0]]], np.float32)  # (1, K=3, K)
    expected = [-log_softmax(logits[0, k])[k] for k in range(3)]
    np.testing.assert_allclose(generator_cross_entropy(tf.constant(logits)).numpy()[0], expected, rtol=1e-6)
    assert expected[1] == pytest.approx(np.log(3.0))  # an undecided classifier costs log K


def test_architecture_shares_the_trunk_and_adds_a_classifier_head():
    model = tiny_model("mgan", beta=0.7)
    k = model.config.num_generators
    assert model.generators.shared_trunk
    assert model.generators.head[0].shape[0] == k  # one first layer per generator
    assert all(len(kernel.shape) == 2 for kernel, _ in model.generators.trunk_layers)  # the rest shared
    assert model.discriminator.output_shape == (None, 1 + k)  # D's logit and C's K logits, one trunk
    assert set(map(id, model.discriminator_variables)).isdisjoint(map(id, model.generator_variables))


def test_losses_match_equation_4_by_hand():
    """Every generator gets the same z; each term is the average over the K generators of
    D's and C's losses on that generator's fake (the expectation over the uniform r)."""
    model = tiny_model("mgan", beta=0.7)
    k = model.config.num_generators
    real = tf.constant(np.random.default_rng(0).normal(size=(5, 2)), tf.float32)
    step = training_step(model, 5, (1, 2), real=real)
    noise = step.noise

    # By hand: run each generator on z separately (its head + the shared trunk) through D.
    z = noise["z"].numpy()
    per_gen = [model.generators(tf.constant(z))[:, i] for i in range(k)]
    fake_out = np.stack([model.discriminator(x).numpy() for x in per_gen], axis=1)  # (B, K, 1+K)
    real_out = model.discriminator(real).numpy()
    adv, cls = fake_out[..., 0], fake_out[..., 1:]
    ce = np.stack([-log_softmax(cls[:, i])[:, i] for i in range(k)], axis=1)  # -log C_i(G_i(z))

    d = {n: v.numpy() for n, v in model.discriminator_losses(step).items()}
    g = {n: v.numpy() for n, v in model.generator_losses(step).items()}
    np.testing.assert_allclose(d["d_adv"], softplus(-real_out[:, 0]) + softplus(adv).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(d["d_cls"], ce.mean(axis=1), rtol=1e-5)  # C's own loss: no beta
    np.testing.assert_allclose(g["g_adv"], softplus(-adv).mean(axis=1), rtol=1e-5)  # non-saturating
    np.testing.assert_allclose(g["g_cls"], 0.7 * ce.mean(axis=1), rtol=1e-5)  # beta * classifier CE


def test_minimax_loss_gives_log_one_minus_d():
    model = tiny_model("mgan", beta=0.7, loss="minimax")
    step = training_step(model, 4, (3, 4))
    adv, _ = model.all_fake_heads(step.noise)
    g = model.generator_losses(step)["g_adv"].numpy()
    np.testing.assert_allclose(g, -softplus(adv.numpy()).mean(axis=1), rtol=1e-5)


def test_classifier_term_pushes_generators_apart():
    """The gradient of beta * CE on the generators' first layers: with beta = 0 only the
    adversarial term acts; the classifier term adds a gradient that differs per generator."""
    model = tiny_model("mgan", beta=0.7)
    step = training_step(model, 8, (5, 6))
    with tf.GradientTape() as tape:
        g_cls = tf.reduce_mean(model.generator_losses(step)["g_cls"])
    head_grad = tape.gradient(g_cls, model.generators.head[0]).numpy()
    assert np.abs(head_grad).max() > 0
    assert not np.allclose(head_grad[0], head_grad[1])


def test_needs_two_generators_and_nonnegative_beta():
    with pytest.raises(ValueError, match=">= 2 generators"):
        tiny_model("mgan", num_generators=1)
    with pytest.raises(ValueError, match="beta"):
        tiny_model("mgan", beta=-1.0)
