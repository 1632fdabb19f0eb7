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


# ---------------------------------------------------------------------- entropy terms
def test_categorical_entropy_hand_values():
    p = tf.constant([[0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(losses.categorical_entropy(p).numpy(), [1.5 * np.log(2), 0.0], atol=1e-6)
    assert float(losses.categorical_entropy(tf.fill([4], 0.25))) == pytest.approx(np.log(4), rel=1e-6)


def test_entropy_from_log_probs_is_the_categorical_entropy():
    p = np.array([0.8, 0.15, 0.05], np.float32)
    expected = -np.sum(p * np.log(p))
    assert float(losses.entropy_from_log_probs(tf.math.log(p))) == pytest.approx(expected, rel=1e-6)
    assert float(losses.categorical_entropy(p)) == pytest.approx(expected, rel=1e-6)


def test_entropy_regularizer_is_smallest_at_uniform_weights():
    """-(1/n) sum_k log p_k: log n at uniform p, larger for any other p (Jensen)."""
    assert float(losses.entropy_regularizer(tf.math.log(tf.fill([4], 0.25)))) == pytest.approx(np.log(4), rel=1e-6)
    p = np.array([0.7, 0.2, 0.1], np.float32)
    assert float(losses.entropy_regularizer(tf.math.log(p))) == pytest.approx(-np.mean(np.log(p)), rel=1e-6)
    assert float(losses.entropy_regularizer(tf.math.log(p))) > np.log(3)


def test_per_discriminator_gradient_penalty_of_linear_critics():
    """D_j(x) = w_j . x has gradient w_j on every input meant for D_j: penalty (|w_j| - 1)^2."""
    w = tf.constant([[3.0, 4.0], [0.6, 0.8]])  # norms 5 and 1
    x_hat = tf.random.stateless_normal([6, 2, 2], [0, 1])
    penalty = losses.per_discriminator_gradient_penalty(lambda x: tf.einsum("njd,jd->nj", x, w), x_hat)
    np.testing.assert_allclose(penalty.numpy(), np.tile([[16.0, 0.0]], [6, 1]), atol=1e-5)
