"""dmwgan_pl: one-sided gradient penalty, the encoder's MI term on the generator actually used,
and the learned prior r fitted to Q's posterior on real data (and only by that term)."""
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model, toy_batches, training_step

from tfgan_mix.methods.dmwgan_pl import DMWGANPLConfig, entropy, one_sided_gradient_penalty, prior_cross_entropy


def _step(model):
    """8 rows of training noise and standard normal real data (the prior's loss reads real data)."""
    return training_step(model, 8, (0, 0), real=tf.random.stateless_normal([8, 2], [0, 1]))


@pytest.mark.parametrize("slope, expected", [(0.5, 0.0), (1.0, 0.0), (3.0, 4.0)])
def test_one_sided_penalty_on_a_linear_critic(slope, expected):
    """D(x) = a . x has gradient a everywhere: penalty max(0, |a| - 1)^2 (two-sided would give
    0.25 for |a| = 0.5)."""
    a = tf.constant([0.6, 0.8]) * slope
    critic = lambda x: tf.reduce_sum(x * a, axis=-1)  # noqa: E731
    real, fake = tf.ones([3, 2]), tf.zeros([3, 2])
    penalty = one_sided_gradient_penalty(critic, real, fake, tf.constant([0.1, 0.5, 0.9])).numpy()
    np.testing.assert_allclose(penalty, [expected] * 3, atol=1e-5)


def test_prior_cross_entropy_and_entropy_hand_values():
    posterior = tf.constant([[1.0, 0.0], [0.5, 0.5]])
    log_prior = tf.math.log(tf.constant([0.8, 0.2]))
    np.testing.assert_allclose(prior_cross_entropy(posterior, log_prior).numpy(),
                               [-np.log(0.8), -(0.5 * np.log(0.8) + 0.5 * np.log(0.2))], rtol=1e-6)
    assert abs(float(entropy(log_prior)) + 0.8 * np.log(0.8) + 0.2 * np.log(0.2)) < 1e-6


def test_generators_are_drawn_from_the_learned_prior():
    model = tiny_model("dmwgan_pl")
    model.prior.zeta.assign([0.0, 0.0, 10.0, 0.0])  # r puts (almost) all mass on generator 2
    noise = model.sample_noise(64, tf.constant([1, 1], tf.int64))
    _, index = model.generate(noise)
    assert np.all(index.numpy() == 2)
    np.testing.assert_allclose(model.route(noise).numpy()[0], tf.nn.softmax(model.prior.scale * model.prior.zeta))


def test_info_term_is_q_cross_entropy_on_the_generator_used():
    model = tiny_model("dmwgan_pl")
    step = _step(model)
    fake, index = model.generate(step.noise, training=True)
    expected = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=index, logits=model.encoder_logits(fake))
    np.testing.assert_allclose(model.generator_losses(step)["g_info"].numpy(), expected.numpy(), rtol=1e-5)


def test_prior_is_learned_only_from_q_on_real_data():
    """d L_r / d zeta = scale * (r - mean_x Q(. | x_real)) (entropy weight 0); the GAN and MI terms
    give zeta no gradient (c is drawn, not differentiated), and L_r gives Q no gradient."""
    model = tiny_model("dmwgan_pl", prior_entropy_weight=0.0)
    model.prior.zeta.assign([0.3, -0.2, 0.1, 0.0])
    step = _step(model)
    encoder_vars = [v for layer in model.encoder_hidden + [model.encoder_out] for v in layer.trainable_variables]
    with tf.GradientTape(persistent=True) as tape:
        terms = model.generator_losses(step)
        prior_loss = tf.reduce_mean(terms["g_prior"])
        game = tf.reduce_mean(terms["g_adv"] + terms["g_info"])
    grad = tape.gradient(prior_loss, model.prior.zeta).numpy()
    r = tf.nn.softmax(model.prior.scale * model.prior.zeta).numpy()
    q_bar = tf.reduce_mean(tf.nn.softmax(model.encoder_logits(step.real)), axis=0).numpy()
    np.testing.assert_allclose(grad, model.prior.scale * (r - q_bar), rtol=1e-4, atol=1e-6)
    assert tape.gradient(game, model.prior.zeta) is None
    assert all(g is None for g in tape.gradient(prior_loss, encoder_vars))
    assert all(g is not None for g in tape.gradient(game, encoder_vars))


def test_entropy_bonus_decays_with_generator_steps():
    model = tiny_model("dmwgan_pl", prior_entropy_weight=50.0, prior_entropy_decay=0.9)
    model.fit(toy_batches((2,), batch_size=8), steps_per_epoch=3, epochs=1, verbose=0)
    step = _step(model)
    log_r = model.prior.log_probs()
    expected = -50.0 * 4 * 0.9**3 * float(entropy(log_r))  # K = 4 generators
    assert abs(float(model.generator_losses(step)["g_prior_entropy"]) - expected) < 1e-3


def test_prior_loss_is_k_times_the_authors_class_averaged_loss():
    """The released code minimises -mean_{x, c}(Q log r) - 1000 * 0.999^t * H(r) (mean over the batch
    AND the K classes). Our class-summed terms must equal K times that, so the entropy bonus keeps
    the authors' weight relative to the cross-entropy. Written out with numpy, at t = 0."""
    assert DMWGANPLConfig().prior_entropy_weight == 1000.0
    model = tiny_model("dmwgan_pl")
    k = model.config.num_generators
    model.prior.zeta.assign([0.4, -0.3, 0.2, 0.0])
    step = _step(model)
    terms = model.generator_losses(step)
    ours = float(tf.reduce_mean(terms["g_prior"])) + float(terms["g_prior_entropy"])
    q = tf.nn.softmax(model.encoder_logits(step.real)).numpy()
    log_r = np.log(np.exp(model.prior.scale * np.array([0.4, -0.3, 0.2, 0.0])) /
                   np.exp(model.prior.scale * np.array([0.4, -0.3, 0.2, 0.0])).sum())
    authors = -np.mean(q * log_r[None, :]) - 1000.0 * -(np.exp(log_r) * log_r).sum()
    np.testing.assert_allclose(ours, k * authors, rtol=1e-5)


def test_critic_trunk_is_not_trained_by_the_encoder():
    """Q reads the critic's features, but its loss belongs to the generator player: the critic's
    weights are never in the generator player's variables."""
    model = tiny_model("dmwgan_pl")
    critic_ids = {id(v) for v in model.discriminator_variables}
    assert not critic_ids & {id(v) for v in model.generator_variables}
    names = {v.path for v in model.generator_variables}
    assert any("encoder" in n for n in names) and any("generator_prior" in n for n in names)
