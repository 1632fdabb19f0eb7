"""MEGAN (paper 004, section II-C): straight-through Gumbel-softmax hard choice from given
uniforms, a gate that reads the generators' first-layer features, and a load-balancing term that
is a global-batch statistic."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model, training_step

from tfgan_mix.methods.megan import gumbel, importance_cv_squared, straight_through_gumbel_softmax
from tfgan_mix.training.strategy import mirrored_strategy


def test_gumbel_max_on_given_uniforms_is_a_draw_from_the_softmax():
    logits = tf.constant([[1.0, 0.0, -1.0, 0.5]])
    u = tf.random.stateless_uniform([20000, 4], [0, 1])
    y, index = straight_through_gumbel_softmax(tf.tile(logits, [20000, 1]), u, 1.0)
    expected_index = np.argmax(logits.numpy() - np.log(-np.log(u.numpy())), axis=1)
    np.testing.assert_array_equal(index.numpy(), expected_index)
    freq = np.bincount(index.numpy(), minlength=4) / 20000
    np.testing.assert_allclose(freq, tf.nn.softmax(logits)[0].numpy(), atol=0.015)
    np.testing.assert_allclose(y.numpy(), np.eye(4)[expected_index], atol=1e-6)  # hard in the forward pass


def test_straight_through_gradient_is_the_soft_gradient():
    logits = tf.constant([[0.2, -0.3, 1.0]])
    u = tf.constant([[0.3, 0.9, 0.5]])
    c = tf.constant([[1.0, -2.0, 0.5]])
    tau = 0.7
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(logits)
        y, _ = straight_through_gumbel_softmax(logits, u, tau)
        hard_loss = tf.reduce_sum(y * c)
        soft_loss = tf.reduce_sum(tf.nn.softmax((logits + gumbel(u)) / tau) * c)
    np.testing.assert_allclose(tape.gradient(hard_loss, logits).numpy(), tape.gradient(soft_loss, logits).numpy(),
                               rtol=1e-5)


def test_gumbel_stays_finite_at_the_ends_of_the_unit_interval():
    assert np.all(np.isfinite(gumbel(tf.constant([0.0, 1.0, 0.5])).numpy()))


def test_importance_cv_squared_by_hand():
    for q in ([0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.5, 0.3, 0.2, 0.0]):
        q = np.array(q, np.float32)
        assert importance_cv_squared(tf.constant(q)).numpy() == pytest.approx(np.var(q) / np.mean(q) ** 2, abs=1e-5)


def test_sample_is_the_chosen_generator_and_a_function_of_the_noise():
    model = tiny_model("megan", seed=0)
    noise = model.sample_noise(32, tf.constant([7, 0]))
    assert set(noise) == {"z", "gumbel_u"} and noise["gumbel_u"].shape == (32, model.config.num_generators)
    samples, index = model.generate(noise)
    every = model.generators(noise["z"]).numpy()
    np.testing.assert_array_equal(samples.numpy(), every[np.arange(32), index.numpy()])
    np.testing.assert_array_equal(model.generate(noise)[0].numpy(), samples.numpy())  # reproducible
    # The choice is argmax(gate logits + Gumbel(u)).
    logits = np.log(model.route(noise).numpy())
    np.testing.assert_array_equal(index.numpy(), np.argmax(logits + gumbel(noise["gumbel_u"]).numpy(), axis=1))
    # The straight-through training sample is the same sample in the forward pass.
    np.testing.assert_allclose(model.generate(noise, training=True)[0].numpy(), samples.numpy(), atol=1e-5)
    # Other Gumbel noise, other choices for the same z.
    other = {**noise, "gumbel_u": model.sample_noise(32, tf.constant([8, 0]))["gumbel_u"]}
    assert not np.array_equal(model.generate(other)[1].numpy(), index.numpy())


def test_gate_reads_the_generators_first_layer():
    """Unlike MoG's gate on z alone, MEGAN's gate changes when a generator's first layer does."""
    model = tiny_model("megan", seed=0)
    noise = model.sample_noise(16, tf.constant([1, 0]))
    before = model.route(noise).numpy()
    kernel = model.generators.head[0]
    kernel.assign(kernel + 0.5)
    assert not np.allclose(before, model.route(noise).numpy())


def test_balance_term_and_its_gradient_reach_the_gate():
    model = tiny_model("megan", seed=0, load_balance=1.0)
    step = training_step(model, 16, (2, 0))
    noise = step.noise
    with tf.GradientTape() as tape:
        terms = model.generator_losses(step)
        balance = terms["g_balance"]
    q = model.route(noise).numpy().mean(axis=0)
    assert balance.numpy() == pytest.approx(len(q) * np.sum(q**2) - 1, rel=1e-4)
    grads = tape.gradient(balance, model.gate.trainable_variables)
    assert any(np.abs(g.numpy()).max() > 0 for g in grads if g is not None)
    assert "g_balance" not in tiny_model("megan", seed=0, load_balance=0.0).generator_losses(step)


def test_balance_statistic_is_global_across_replicas(cpu_devices):
    """One step on 2 replicas equals one on 1 for the same global batch even when the batch-level
    load-balancing term dominates (its statistic and gradient are all-reduced), and the term
    does change the update (so the comparison is not vacuous)."""
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")

    def one_step(devices, load_balance, weights):
        strategy = mirrored_strategy(tuple(devices))
        model = tiny_model("megan", load_balance=load_balance, strategy=strategy,
                           compile_kwargs={"d_optimizer": keras.optimizers.SGD(0.01),
                                           "g_optimizer": keras.optimizers.SGD(0.01)})
        model.set_weights(weights)
        model.fit(tf.data.Dataset.from_tensor_slices(x).batch(32, drop_remainder=True), epochs=1, verbose=0)
        return model.get_weights()

    weights = tiny_model("megan", seed=0).get_weights()
    one = one_step(cpu_devices[:1], 100.0, weights)
    two = one_step(cpu_devices[:2], 100.0, weights)
    without = one_step(cpu_devices[:1], 0.0, weights)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(one, without)) > 1e-3
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
