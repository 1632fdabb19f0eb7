"""MIX+GAN (``mixgan_plus``) and scalable MIX-GAN (``mixgan``), paper 001.

The vectorised losses are checked against a reference written as plain loops over generators and
discriminators, straight from Eqs. 6-8; routing against the learned weights; the batch split of
MIX-GAN against its rule; model-parallel placement on the 2 logical CPUs conftest sets up.
"""
import warnings

import numpy as np
import pytest
import tensorflow as tf
from helpers import snapshot, toy_batches, training_step

from tfgan_mix.core import Step, build_model
from tfgan_mix.methods.mixgan_plus import entropy_regularizer
from tfgan_mix.training.strategy import mirrored_strategy

LAMBDA = 10.0


def _options(num_generators, num_discriminators, **extra):
    return {"num_generators": num_generators, "num_discriminators": num_discriminators, "latent_dim": 4,
            "generator_units": (8, 8), "discriminator_units": (16, 16), "data_shape": (3,), "seed": 1,
            "d_steps": 2, **extra}  # critic steps are unrolled in the step graph: 2 run the loop, 5 trace 2.5x


def _critic_j(critics, j, x):
    """D_j written out on its own: the j-th slice of every stacked kernel, LeakyReLU(0.2) between."""
    (layers,) = critics.group_layers  # one group: no placement
    h = tf.reshape(tf.convert_to_tensor(x), [-1, int(np.prod(critics.sample_shape))])
    for index, (kernel, bias) in enumerate(layers):
        h = tf.matmul(h, kernel[j]) + bias[j]
        if index < len(layers) - 1:
            h = tf.nn.leaky_relu(h, alpha=0.2)
    return h[:, 0]


def _generator_i(model, i, z):
    return model.generators(tf.convert_to_tensor(z))[:, i]


def _penalty(critics, j, x_hat):
    x_hat = tf.convert_to_tensor(x_hat)
    with tf.GradientTape() as tape:
        tape.watch(x_hat)
        scores = _critic_j(critics, j, x_hat)
    grads = tape.gradient(scores, x_hat)
    return ((tf.norm(grads, axis=1) - 1.0) ** 2).numpy()


def _step(model, batch, seed=7):
    real = np.random.default_rng(seed).normal(size=(batch, 3)).astype("float32")
    return training_step(model, batch, (seed, 1), real=real)


# ---------------------------------------------------------------------- mixgan_plus
def test_entropy_regularizer_is_mean_negative_log_weight():
    p = np.array([0.5, 0.25, 0.25], np.float32)
    expected = -(np.log(0.5) + 2 * np.log(0.25)) / 3
    assert float(entropy_regularizer(tf.math.log(p))) == pytest.approx(expected, rel=1e-6)
    # Smallest at the uniform distribution, where it is log n.
    assert float(entropy_regularizer(tf.math.log(tf.fill([4], 0.25)))) == pytest.approx(np.log(4), rel=1e-6)
    assert float(entropy_regularizer(tf.math.log(p))) > np.log(3)


@pytest.mark.parametrize("n_g, n_d", [(2, 3), (3, 2)])
def test_mixgan_plus_losses_follow_eqs_6_to_8(n_g, n_d):
    """n_G != n_D both ways; non-uniform w and v; every pair (i, j) with its own noise."""
    model = build_model("mixgan_plus", _options(n_g, n_d))
    model.generator_weights.logits.assign(np.linspace(-0.7, 0.9, n_g).astype("float32"))
    model.critics.mixture_logits.assign(np.linspace(0.4, -1.1, n_d).astype("float32"))
    w, v = model.generator_weights.probs().numpy(), model.critics.mixture_weights().numpy()
    step = _step(model, batch=5)
    z, eps, real = step.noise["z"].numpy(), step.noise["gp_epsilon"].numpy(), step.real.numpy()

    d_adv, g_adv, d_gp = np.zeros(5), np.zeros(5), np.zeros(5)
    for i in range(n_g):
        for j in range(n_d):
            fake = _generator_i(model, i, z[:, j, i]).numpy()  # G_i's batch for D_j
            f, r = _critic_j(model.critics, j, fake).numpy(), _critic_j(model.critics, j, real).numpy()
            d_adv += v[j] * w[i] * (f - r)  # Eqs. 6-7 with L_D,fake(d) = d, L_D,real(d) = -d
            g_adv += v[j] * w[i] * -f  # Eq. 8 with L_G(d) = -d
            e = eps[:, j, i, None]
            d_gp += v[j] * w[i] * LAMBDA * _penalty(model.critics, j, e * real + (1 - e) * fake)

    d_terms, g_terms = model.discriminator_losses(step), model.generator_losses(step)
    np.testing.assert_allclose(d_terms["d_adv"].numpy(), d_adv, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d_terms["d_gp"].numpy(), d_gp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_terms["g_adv"].numpy(), g_adv, rtol=1e-4, atol=1e-6)
    assert float(d_terms["d_entropy"]) == pytest.approx(-np.mean(np.log(v)), rel=1e-5)
    assert float(g_terms["g_entropy"]) == pytest.approx(-np.mean(np.log(w)), rel=1e-5)
    # Eq. 5: column 0 of the discriminator model is the v-weighted critic.
    mixed = sum(v[j] * _critic_j(model.critics, j, real).numpy() for j in range(n_d))
    np.testing.assert_allclose(model.discriminate(step.real).numpy(), mixed, rtol=1e-5, atol=1e-6)


def test_mixgan_plus_weights_belong_to_their_players_and_both_learn():
    model = build_model("mixgan_plus", _options(3, 2, g_learning_rate=1e-2, d_learning_rate=1e-2))
    d_ids = {id(v) for v in model.discriminator_variables}
    g_ids = {id(v) for v in model.generator_variables}
    assert id(model.critics.mixture_logits) in d_ids and id(model.critics.mixture_logits) not in g_ids
    assert id(model.generator_weights.logits) in g_ids and id(model.generator_weights.logits) not in d_ids
    model.fit(toy_batches((3,)), steps_per_epoch=3, epochs=1, verbose=0)
    assert not np.allclose(model.generator_weights.logits.numpy(), 0.0), "w did not learn"
    assert not np.allclose(model.critics.mixture_logits.numpy(), 0.0), "v did not learn"


def test_mixgan_plus_inference_draws_generators_from_w():
    model = build_model("mixgan_plus", _options(4, 2))
    target = np.array([0.6, 0.3, 0.1, 0.0], np.float32)
    model.generator_weights.logits.assign(np.log(np.maximum(target, 1e-9)))
    noise = model.sample_noise(4, tf.constant([0, 0], tf.int64))
    np.testing.assert_allclose(model.route(noise).numpy(), np.tile(target, (4, 1)), atol=1e-6)
    _, index = model.sample(20000, seed=3)
    np.testing.assert_allclose(np.bincount(index, minlength=4) / len(index), target, atol=0.015)


# ---------------------------------------------------------------------- mixgan
@pytest.mark.parametrize("batch, iterations", [(6, 0), (4, 5)], ids=["multiple_of_nD", "rotating"])
def test_mixgan_splits_each_generators_batch_across_discriminators(batch, iterations):
    """Uniform Eqs. 6-8; the fakes of example b go to D_((global counter of b) mod n_D)."""
    n_g, n_d = 2, 3
    model = build_model("mixgan", _options(n_g, n_d))
    model.g_optimizer.iterations.assign(iterations)
    step = _step(model, batch)
    z, eps, real = step.noise["z"].numpy(), step.noise["gp_epsilon"].numpy(), step.real.numpy()
    target = (iterations * batch + np.arange(batch)) % n_d
    if batch % n_d == 0:
        np.testing.assert_array_equal(target, np.arange(batch) % n_d)

    real_scores = np.stack([_critic_j(model.critics, j, real).numpy() for j in range(n_d)], axis=1)
    d_adv = -real_scores.mean(axis=1)  # every D_j sees the whole real batch
    g_adv, d_gp = np.zeros(batch), np.zeros(batch)
    for b in range(batch):
        j = target[b]
        for i in range(n_g):
            fake = _generator_i(model, i, z[b : b + 1, i]).numpy()
            f = _critic_j(model.critics, j, fake).numpy()[0]
            d_adv[b] += f / n_g
            g_adv[b] -= f / n_g
            x_hat = eps[b, i] * real[b : b + 1] + (1 - eps[b, i]) * fake
            d_gp[b] += LAMBDA * _penalty(model.critics, j, x_hat)[0] / n_g

    d_terms, g_terms = model.discriminator_losses(step), model.generator_losses(step)
    np.testing.assert_allclose(d_terms["d_adv"].numpy(), d_adv, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(d_terms["d_gp"].numpy(), d_gp, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_terms["g_adv"].numpy(), g_adv, rtol=1e-4, atol=1e-6)
    # Every discriminator got fakes from every generator in this batch (batch >= n_D).
    assert set(target) == set(range(n_d))


def _copy_grouped_weights(src, dst):
    """Weights of a model with round-robin groups into one with a single group: component k of the
    single stack is entry k // groups of group k mod groups (every stacked weight leads with K)."""
    groups = src.generators.split.groups

    def merged(parts, count):
        return np.stack([parts[k % groups][k // groups] for k in range(count)])

    for index, variable in enumerate(dst.generators.banks[0].weights):
        variable.assign(merged([bank.weights[index].numpy() for bank in src.generators.banks], variable.shape[0]))
    for layer, pair in enumerate(dst.critics.group_layers[0]):
        for which, variable in enumerate(pair):
            parts = [group[layer][which].numpy() for group in src.critics.group_layers]
            variable.assign(merged(parts, variable.shape[0]))


def test_mixgan_model_parallel_places_g_i_and_d_j_on_device_i_mod_n():
    options = _options(4, 3)
    model = build_model("mixgan", {**options, "placement": "model_parallel"})
    assert model.config.placement_devices == 2 and model.jit_compile is False
    for g, bank in enumerate(model.generators.banks):  # G_i on device i mod 2
        assert bank.num_generators == len(range(g, 4, 2))
        assert all(v.value.device.endswith(f"CPU:{g}") for v in bank.weights)
    for g, layers in enumerate(model.critics.group_layers):  # D_j on device j mod 2
        assert layers[0][0].shape[0] == len(range(g, 3, 2))
        assert all(v.value.device.endswith(f"CPU:{g}") for pair in layers for v in pair)

    # Same numbers as the unplaced model with the same weights: placement changes nothing else.
    plain = build_model("mixgan", options)
    _copy_grouped_weights(model, plain)
    noise = model.sample_noise(8, tf.constant([2, 0], tf.int64))
    np.testing.assert_allclose(model.generate(noise)[0].numpy(), plain.generate(noise)[0].numpy(), rtol=1e-5)
    step = _step(model, 6)
    for ours, theirs in ((model.discriminator_losses(step), plain.discriminator_losses(step)),
                         (model.generator_losses(step), plain.generator_losses(step))):
        for name in ours:
            np.testing.assert_allclose(ours[name].numpy(), theirs[name].numpy(), rtol=1e-4, atol=1e-6)
    before = snapshot(model.trainable_variables)
    history = model.fit(toy_batches((3,)), steps_per_epoch=2, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert all(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables)
               if "mixture_logits" not in v.path)
    with pytest.raises(ValueError, match="jit_compile"):
        build_model("mixgan", {**options, "placement": "model_parallel"}, jit_compile=True)


def test_mixgan_placement_is_off_under_a_strategy(cpu_devices):
    strategy = mirrored_strategy(tuple(cpu_devices[:2]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = build_model("mixgan", {**_options(4, 2), "placement": "model_parallel"}, strategy)
    assert any("data parallelism" in str(w.message) for w in caught)
    # Mirrored on both replicas rather than pinned: every variable has a copy per device.
    assert all(len(v.value.values) == 2 for v in model.trainable_variables)
    history = model.fit(toy_batches((3,), batch_size=12), steps_per_epoch=1, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())


def test_mixgan_plus_updates_generators_before_critics():
    """Section IV-D: each iteration steps G (Eq. 8) first, against the critics as they were, and
    then the critics. With SGD, G's change after one train step is -lr times the gradient of L_G
    at the *initial* critics; had the critics moved first, it would be the gradient at the new ones."""
    import keras

    lr = 0.05
    model = build_model("mixgan_plus", _options(2, 2, d_steps=2),
                        d_optimizer=keras.optimizers.SGD(1.0), g_optimizer=keras.optimizers.SGD(lr))
    real = np.random.default_rng(3).normal(size=(8, 3)).astype("float32")
    g_vars = model.generator_variables
    before = snapshot(g_vars)
    noise = model.draw_training_noise(8, tf.constant(0, tf.int64), model.config.d_steps)  # the generator's draw
    with tf.GradientTape() as tape:
        terms = model.generator_losses(Step(real=tf.constant(real), noise=noise))
        loss = tf.reduce_mean(terms["g_adv"]) + terms["g_entropy"]
    expected = [b - lr * g.numpy() for b, g in zip(before, tape.gradient(loss, g_vars))]
    d_before = snapshot(model.discriminator_variables)
    model.fit(tf.data.Dataset.from_tensor_slices(real).batch(8, drop_remainder=True), epochs=1, verbose=0)
    assert int(model.d_optimizer.iterations.numpy()) == 2 and int(model.g_optimizer.iterations.numpy()) == 1
    assert any(not np.allclose(b, v.numpy(), atol=1e-4) for b, v in zip(d_before, model.discriminator_variables))
    for want, v in zip(expected, g_vars):
        np.testing.assert_allclose(v.numpy(), want, rtol=1e-4, atol=1e-6)
