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
