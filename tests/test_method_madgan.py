"""MADGAN (paper 004, Eqs. 2-3): the (K+1)-way discriminator loss and the generator loss against
hand-computed values, and the architecture (shared early block B_s, per-generator outputs)."""
import numpy as np
import pytest
import tensorflow as tf
from helpers import log_softmax, tiny_model, training_step

from tfgan_mix.methods.madgan import madgan_discriminator_loss, real_logit


def test_discriminator_loss_is_equation_2_on_fixed_values():
    # K = 2: classes (real, G_1, G_2).
    real = np.array([[1.0, 0.0, -1.0]], np.float32)
    fake = np.array([[[0.0, 2.0, 0.5], [-1.0, 0.0, 1.5]]], np.float32)  # D on G_1(z), D on G_2(z)
    expected = -log_softmax(real[0])[0] - 0.5 * (log_softmax(fake[0, 0])[1] + log_softmax(fake[0, 1])[2])
    got = madgan_discriminator_loss(tf.constant(real), tf.constant(fake)).numpy()
    np.testing.assert_allclose(got, [expected], rtol=1e-6)


def test_real_logit_is_the_logit_of_d0():
    logits = np.array([[0.3, -1.0, 2.0, 0.1]], np.float32)
    d0 = np.exp(log_softmax(logits[0]))[0]
    assert real_logit(tf.constant(logits)).numpy()[0] == pytest.approx(np.log(d0 / (1 - d0)), rel=1e-5)


@pytest.mark.parametrize("loss", ["ns", "minimax"])
def test_generator_loss_is_equation_3(loss):
    """minimax: log(1 - D_0(G_i(z))) (Eq. 3 literally); ns: -log D_0(G_i(z)); averaged over i."""
    model = tiny_model("madgan", loss=loss)
    k = model.config.num_generators
    step = training_step(model, 6, (1, 1))
    noise = step.noise
    outputs = model.generators(model.shared(noise["z"]))  # (B, K, 2): B_s once, then each G_i
    d0 = np.stack([np.exp(log_softmax(model.discriminator(outputs[:, i]).numpy()))[:, 0] for i in range(k)], axis=1)
    expected = np.log(1 - d0) if loss == "minimax" else -np.log(d0)
    got = model.generator_losses(step)["g_adv"].numpy()
    np.testing.assert_allclose(got, expected.mean(axis=1), rtol=1e-4)


def test_discriminator_loss_on_the_model_labels_generator_i_as_class_i():
    model = tiny_model("madgan")
    k = model.config.num_generators
    real = tf.constant(np.random.default_rng(1).normal(size=(5, 2)), tf.float32)
    step = training_step(model, 5, (2, 2), real=real)
    noise = step.noise
    outputs = model.generators(model.shared(noise["z"]))
    fake_lp = np.stack([log_softmax(model.discriminator(outputs[:, i]).numpy())[:, 1 + i] for i in range(k)], axis=1)
    expected = -log_softmax(model.discriminator(real).numpy())[:, 0] - fake_lp.mean(axis=1)
    got = model.discriminator_losses(step)["d_adv"].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_generators_share_their_early_layers():
    model = tiny_model("madgan")
    k = model.config.num_generators
    assert model.discriminator.output_shape == (None, k + 1)
    assert model.generators.head[0].shape[:2] == (k, model.config.shared_units[-1])  # each G_i reads B_s(z)
    shared = {id(v) for layer in model.shared_block for v in layer.trainable_variables}
    assert shared and shared <= {id(v) for v in model.generator_variables}
    # Perturbing B_s changes every generator's output; the sampled generator's index is reported.
    noise = model.sample_noise(4, tf.constant([3, 3]))
    before = model.all_outputs(noise).numpy()
    kernel = model.shared_block[0].kernel
    kernel.assign(kernel + 0.5)
    after = model.all_outputs(noise).numpy()
    assert all(not np.allclose(before[:, i], after[:, i]) for i in range(k))
    samples, index = model.generate(noise)
    np.testing.assert_allclose(samples.numpy(), after[np.arange(4), index.numpy()], rtol=1e-6)


def test_wasserstein_loss_is_refused():
    with pytest.raises(ValueError, match="classifier"):
        tiny_model("madgan", loss="wasserstein")
