"""Adversarial losses as pure per-example tensor functions.

Every function returns one loss value per example (shape ``(B,)``); the training step averages
them over the *global* batch (``tf.nn.compute_average_loss``) so that gradients summed across
replicas equal the single-device gradient. Logits are the discriminator's raw outputs.
"""
import dataclasses

import tensorflow as tf


# --- non-saturating / minimax (Goodfellow et al. 2014, "Generative Adversarial Nets", Eq. 1) ---
def sigmoid_discriminator_loss(real_logits, fake_logits):
    """-log D(x) - log(1 - D(G(z))) with D = sigmoid(logit): softplus(-r) + softplus(f)."""
    return tf.nn.softplus(-real_logits) + tf.nn.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits):
    """-log D(G(z)) = softplus(-f) (Goodfellow et al. 2014, section 3, the practical variant)."""
    return tf.nn.softplus(-fake_logits)


def minimax_generator_loss(fake_logits):
    """log(1 - D(G(z))) = -softplus(f): the literal minimax objective of Eq. 1."""
    return -tf.nn.softplus(fake_logits)


# --- Wasserstein (Arjovsky et al. 2017, Eq. 3; with gradient penalty Gulrajani et al. 2017) ---
def wasserstein_discriminator_loss(real_logits, fake_logits):
    """Critic minimises D(G(z)) - D(x) (the negated Kantorovich-Rubinstein estimate)."""
    return fake_logits - real_logits


def wasserstein_generator_loss(fake_logits):
    """Generator minimises -D(G(z))."""
    return -fake_logits


# --- hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018, Eq. 16-17) ---
def hinge_discriminator_loss(real_logits, fake_logits):
    """max(0, 1 - D(x)) + max(0, 1 + D(G(z)))."""
    return tf.nn.relu(1.0 - real_logits) + tf.nn.relu(1.0 + fake_logits)


def gradient_penalty(critic, real, fake, epsilon):
    """(||grad_x D(x_hat)||_2 - 1)^2 per example, x_hat = eps x + (1 - eps) x_fake.

    Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Eq. 3 (without lambda).
    ``epsilon`` has shape ``(B,)`` with values in [0, 1]; ``critic`` maps a batch to logits ``(B,)``.
    """
    return tf.square(interpolate_gradient_norms(critic, real, fake, epsilon) - 1.0)


def interpolate_gradient_norms(critic, real, fake, epsilon):
    """||grad_x D(x_hat)||_2 per example at x_hat = eps x + (1 - eps) x_fake: what gradient penalties penalise."""
    eps = tf.reshape(epsilon, [-1] + [1] * (len(real.shape) - 1))
    interpolated = eps * real + (1.0 - eps) * fake
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = critic(interpolated)
    grads = tape.gradient(scores, interpolated)
    return tf.sqrt(tf.reduce_sum(tf.reshape(tf.square(grads), [tf.shape(grads)[0], -1]), axis=1) + 1e-12)


def per_discriminator_gradient_penalty(critic, x_hat):
    """(||grad_x D_j(x_hat)||_2 - 1)^2 for inputs ``(N, n_D, *shape)`` meant for D_j, ``(N, n_D)``.

    Gulrajani et al. 2017, Eq. 3 (paper 001 Eq. 3), without lambda, for a bank of n_D critics
    (MIX+GAN, MIX-GAN). Each score depends only on its own input, so the gradient of their sum gives
    every per-input gradient in one backward pass.
    """
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = critic(x_hat)
    grads = tape.gradient(scores, x_hat)  # a non-scalar target: the gradient of its sum
    squares = tf.reduce_sum(tf.reshape(tf.square(grads), [tf.shape(grads)[0], grads.shape[1], -1]), axis=-1)
    return tf.square(tf.sqrt(squares + 1e-12) - 1.0)


# --- entropy terms ---
def categorical_entropy(probs):
    """H(p) = -sum_c p_c log p_c over the last axis, from probabilities (log clamped at 1e-12, so an
    exact 0 contributes 0).

    Paper 002 (Partition-Guided GANs), Eq. 5: the partitioner's confidence term alpha mean_i H(S(x_i))
    and its balance term beta H(mean_i S(x_i)).
    """
    return -tf.reduce_sum(probs * tf.math.log(tf.maximum(probs, 1e-12)), axis=-1)


def entropy_from_log_probs(log_probs):
    """H(r) = -sum_c r_c log r_c from log-probabilities (every axis summed: one distribution).

    Khayatkhoei et al. 2018 (DMWGAN-PL, compared in paper 000): the entropy bonus -beta_t H(r) on the
    learned prior r over generators.
    """
    return -tf.reduce_sum(tf.exp(log_probs) * log_probs)


def entropy_regularizer(log_weights):
    """-(1/n) sum_k log p_k, from log-probabilities: the cross-entropy of the uniform distribution
    against p, smallest (log n) when p is uniform.

    Paper 001 (MIX+GAN, Arora et al. 2017), Eqs. 7-8: the terms that pull the mixture weights of the
    discriminators (v) and of the generators (w) towards uniform.
    """
    return -tf.reduce_mean(log_weights)


def mix_sigmoid_logits(logits, weights):
    """Logit of sum_i w_i sigmoid(l_i): NPGAN Algorithm 1's D_fake = sum_i pi_i D(G_i(z)).

    Mixing happens in probability space, as in the paper; returning the equivalent logit
    log(D_fake) - log(1 - D_fake) lets every sigmoid loss apply unchanged. Computed with
    log-sum-exp so it stays finite for saturated logits. ``logits``, ``weights``: ``(B, K)``.
    """
    log_w = tf.math.log(tf.maximum(weights, 1e-30))
    log_p = tf.reduce_logsumexp(log_w + tf.math.log_sigmoid(logits), axis=1)
    log_not_p = tf.reduce_logsumexp(log_w + tf.math.log_sigmoid(-logits), axis=1)
    return log_p - log_not_p


def mix_scores(logits, weights):
    """sum_i w_i D(G_i(z)) for critics whose output is a score (Wasserstein, hinge)."""
    return tf.reduce_sum(weights * logits, axis=1)


@dataclasses.dataclass(frozen=True)
class LossFamily:
    """A named pair of player losses plus how a soft mixture of fakes combines D's outputs."""

    name: str
    discriminator: callable
    generator: callable
    mix: callable


LOSS_FAMILIES = {
    "ns": LossFamily("ns", sigmoid_discriminator_loss, non_saturating_generator_loss, mix_sigmoid_logits),
    "minimax": LossFamily("minimax", sigmoid_discriminator_loss, minimax_generator_loss, mix_sigmoid_logits),
    "wasserstein": LossFamily(
        "wasserstein", wasserstein_discriminator_loss, wasserstein_generator_loss, mix_scores
    ),
    "hinge": LossFamily("hinge", hinge_discriminator_loss, wasserstein_generator_loss, mix_scores),
}


def get_loss_family(name):
    try:
        return LOSS_FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSS_FAMILIES)}") from None
