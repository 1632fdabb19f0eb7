"""The loss functions against their closed forms, at hand-computed points."""
import numpy as np
import pytest
import tensorflow as tf
from helpers import sigmoid

from tfgan_mix import losses

R = tf.constant([2.0, -1.0, 0.0])  # real logits
F = tf.constant([-3.0, 0.5, 0.0])  # fake logits


def test_sigmoid_discriminator_loss_is_binary_cross_entropy():
    expected = -np.log(sigmoid(R)) - np.log(1 - sigmoid(F))
    np.testing.assert_allclose(losses.sigmoid_discriminator_loss(R, F).numpy(), expected, rtol=1e-6)


def test_generator_losses():
    np.testing.assert_allclose(losses.non_saturating_generator_loss(F).numpy(), -np.log(sigmoid(F)), rtol=1e-6)
    np.testing.assert_allclose(losses.minimax_generator_loss(F).numpy(), np.log(1 - sigmoid(F)), rtol=1e-6)
    np.testing.assert_allclose(losses.wasserstein_generator_loss(F).numpy(), [3.0, -0.5, 0.0])


def test_wasserstein_and_hinge_discriminator_losses():
    np.testing.assert_allclose(losses.wasserstein_discriminator_loss(R, F).numpy(), [-5.0, 1.5, 0.0])
    # max(0, 1 - r) + max(0, 1 + f)
    np.testing.assert_allclose(losses.hinge_discriminator_loss(R, F).numpy(), [0.0, 3.5, 2.0])


def test_gradient_penalty_of_a_linear_critic():
    """D(x) = w.x has gradient w everywhere, so the penalty is (|w| - 1)^2 at every interpolate."""
    w = tf.constant([3.0, 4.0])
    real = tf.random.stateless_normal([5, 2], [0, 1])
    fake = tf.random.stateless_normal([5, 2], [0, 2])
    eps = tf.random.stateless_uniform([5], [0, 3])
    gp = losses.gradient_penalty(lambda x: tf.linalg.matvec(x, w), real, fake, eps)
    np.testing.assert_allclose(gp.numpy(), np.full(5, 16.0), rtol=1e-5)


def test_gradient_penalty_interpolates_with_epsilon():
    """D(x) = |x|^2 / 2 has gradient x: the penalty reveals where the interpolate sits."""
    real = tf.constant([[2.0, 0.0]])
    fake = tf.constant([[0.0, 0.0]])
    gp = losses.gradient_penalty(lambda x: 0.5 * tf.reduce_sum(x * x, axis=1), real, fake, tf.constant([0.25]))
    np.testing.assert_allclose(gp.numpy(), [(0.5 - 1.0) ** 2], rtol=1e-5)  # x_hat = (0.5, 0)


def test_mix_sigmoid_logits_mixes_probabilities():
    logits = tf.constant([[1.0, -2.0, 0.5], [30.0, -30.0, 0.0]])
    weights = tf.constant([[0.2, 0.5, 0.3], [0.5, 0.25, 0.25]])
    mixed = losses.mix_sigmoid_logits(logits, weights).numpy()
    p = (weights.numpy() * sigmoid(logits)).sum(axis=1)
    np.testing.assert_allclose(sigmoid(mixed), p, rtol=1e-5)
    assert np.all(np.isfinite(mixed))


def test_mix_with_one_hot_weights_is_that_logit():
    logits = tf.constant([[1.5, -2.0], [0.3, 4.0]])
    weights = tf.constant([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(losses.mix_sigmoid_logits(logits, weights).numpy(), [1.5, 4.0], rtol=1e-5)
    np.testing.assert_allclose(losses.mix_scores(logits, weights).numpy(), [1.5, 4.0])


def test_unknown_loss_family_is_named():
    with pytest.raises(ValueError, match="unknown loss 'l2'.*hinge"):
        losses.get_loss_family("l2")
