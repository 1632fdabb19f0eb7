"""The shared per-method test: every registered method goes through the same checks.

A new method needs no test of its own to be covered: registering it adds it here.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import moved, snapshot, tiny_options, toy_batches

import tfgan_mix
from tfgan_mix.core import build_model
from tfgan_mix.training.strategy import mirrored_strategy

METHODS = tfgan_mix.list_methods()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("images", [False, True], ids=["points", "images"])
def test_fit_evaluate_and_keras_round_trip(method, images, cpu_devices, tmp_path):
    """One tiny model per method and data kind goes through the Keras life cycle: ``fit`` moves
    both players and logs every loss term, ``evaluate`` runs the test step without training, and
    ``.keras`` save/load gives back the same samples and optimizer state. Points train under a
    ``MirroredStrategy`` on two CPUs, images on the default strategy. One model for all of it, so
    each method's train step is traced once here: tracing is most of the suite's time. The test
    step is the method's, not the data kind's: it is traced once, on points, where evaluation
    also has to reduce its results over the replicas."""
    options = tiny_options(method, images)
    strategy = None if images else mirrored_strategy(tuple(cpu_devices[:2]))
    model = build_model(method, options, strategy)
    if strategy is not None:
        assert strategy.num_replicas_in_sync == 2
        _assert_replicas_draw_their_rows_of_the_global_noise(model, strategy)
    data = toy_batches(options["data_shape"])
    d_before, g_before = snapshot(model.discriminator_variables), snapshot(model.generator_variables)
    history = model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
    _assert_every_loss_term_is_finite_and_logged(model, history.history)
    assert moved(d_before, model.discriminator_variables), "discriminator did not move"
    assert moved(g_before, model.generator_variables), "generator side did not move"
    samples, generator = model.sample(7, seed=1)
    assert samples.shape == (7, *options["data_shape"])
    assert generator.shape == (7,) and np.all((0 <= generator) & (generator < options["num_generators"]))
    if strategy is not None:
        _assert_evaluate_does_not_train(model, data)
    _assert_keras_round_trip(model, str(tmp_path / "model.keras"))


def _assert_every_loss_term_is_finite_and_logged(model, logs):
    assert {"d_adv", "g_adv", "d_loss", "g_loss"} <= set(logs)
    assert ("d_gp" in logs) == (model.config.gradient_penalty > 0)
    for name, values in logs.items():
        assert np.all(np.isfinite(values)), f"{name} is not finite: {values}"


def _assert_evaluate_does_not_train(model, data):
    iterations = int(model.g_optimizer.iterations.numpy())
    results = model.evaluate(data, steps=2, verbose=0, return_dict=True)
    assert {"d_loss", "g_loss"} <= set(results)
    assert all(np.isfinite(v) for v in results.values())
    assert int(model.g_optimizer.iterations.numpy()) == iterations, "evaluation must not train"


def _assert_keras_round_trip(model, path):
    model.save(path)
    restored = keras.models.load_model(path)
    assert type(restored) is type(model)
    assert restored.get_config() == model.get_config()
    for ours, theirs in zip(model.sample(50, seed=4), restored.sample(50, seed=4)):
        np.testing.assert_array_equal(ours, theirs)
    # Optimizer state comes back too, so training resumes where it stopped.
    assert int(restored.g_optimizer.iterations.numpy()) == int(model.g_optimizer.iterations.numpy()) == 3
    for a, b in zip(model.d_optimizer.variables, restored.d_optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _assert_replicas_draw_their_rows_of_the_global_noise(model, strategy):
    """Each replica draws different noise, and together they draw what one device draws for the
    global batch."""

    @tf.function
    def draw():
        return strategy.run(lambda: model.draw_training_noise(4, tf.constant(0, tf.int64), 0)["z"])

    per_replica = strategy.experimental_local_results(draw())
    assert not np.allclose(per_replica[0].numpy(), per_replica[1].numpy())
    single = model.sample_noise(8, tf.constant([model.config.seed, 0], tf.int64), model.training_noise_spec())["z"]
    np.testing.assert_allclose(np.concatenate([r.numpy() for r in per_replica]), single.numpy())


@pytest.mark.parametrize("method", METHODS)
def test_train_step_compiles_with_xla_several_steps_per_execution(method):
    """The TPU path's requirements on CPU: XLA-compiled steps, several per execution, bfloat16.

    One critic update per step and one hidden layer per network: critic updates and layers are
    unrolled in Python (the base's loop and MIX+GAN-plus's own alike), so more of them add the same
    ops again and nothing XLA could refuse, while XLA's compile time, most of this test's, grows
    with the graph (weighted_prior: 7.4 s with one update, 11.3 s with two; gan, npgan, mixgan
    and hmog: 4.1-6.9 s with one hidden layer, 5.1-12.9 s with two)."""
    options = {**tiny_options(method), "precision": "mixed_bfloat16", "d_steps": 1, "generator_units": (16,),
               "discriminator_units": (32,)}
    model = build_model(method, options, jit_compile=True, steps_per_execution=2)
    assert model.generators.compute_dtype == "bfloat16"
    history = model.fit(toy_batches((2,)), steps_per_epoch=4, epochs=1, verbose=0)
    assert model.jit_compile is True
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert int(model.g_optimizer.iterations.numpy()) == 4


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("precision", ["mixed_float16"])  # bfloat16: the XLA test above
def test_trains_with_mixed_precision_and_exports_float32(method, precision):
    options = {**tiny_options(method), "precision": precision}
    model = build_model(method, options)
    assert model.generators.compute_dtype == precision.removeprefix("mixed_")
    assert all(v.dtype == "float32" for v in model.trainable_variables), "variables must stay float32"
    assert isinstance(model.g_optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    before = snapshot(model.generator_variables)
    history = model.fit(toy_batches((2,)), steps_per_epoch=3, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert moved(before, model.generator_variables)
    samples, _ = model.sample(5, seed=1)
    assert samples.dtype == np.float32 and np.all(np.isfinite(samples))
    assert keras.config.dtype_policy().name == "float32", "building a model must not change the global policy"

    from tfgan_mix.export.sampler import Sampler, calibrate

    sampler = Sampler(model, calibrate(model, "truncation"))
    assert sampler.model.generators.compute_dtype == "float32"
    out = sampler.from_seed(tf.constant([1, 2], tf.int64))
    assert out["samples"].dtype == tf.float32 and out["score"].dtype == tf.float32
    # The float32 copy carries the trained weights: it agrees with the mixed model up to rounding.
    # A row whose uniform u lies within rounding of a boundary of its routing probabilities picks
    # another generator in float32 (megan: 1 row of 64 in one suite run, 0.54 apart), so rows are
    # compared where both copies chose the same generator, and the choices must nearly all agree.
    noise = model.sample_noise(64, tf.constant([5, 5], tf.int64))
    (exported, exported_index), (mixed, mixed_index) = sampler.model.generate(noise), model.generate(noise)
    same = exported_index.numpy() == mixed_index.numpy()
    assert same.sum() >= 60, f"generator choices differ on {np.sum(~same)} of 64 rows"
    np.testing.assert_allclose(exported.numpy()[same], mixed.numpy()[same], atol=0.1, rtol=0.05)


@pytest.mark.parametrize("method", METHODS)
def test_one_and_two_replicas_give_the_same_first_update(method, cpu_devices):
    """Losses are averaged over the global batch and noise is drawn per global example, so one
    step on 2 replicas equals one step on 1 for the same global batch. SGD, not Adam: Adam's
    first step barely depends on the gradient's scale and would hide an N-times gradient.

    One critic update per step: with several, each update starts from the last one's rounding,
    and through ReLU kinks and the gradient penalty that grows chaotically. Measured for
    mixgan_plus (5 critic updates): two single-device runs from the same weights differ by up
    to 3e-4, because Grappler's per-trace graph rewrites change the rounding (identical with
    Grappler off, eagerly or under XLA; identical with one critic update). That says nothing
    about how replicas average their losses, which this test is about. The one-device run is
    eager: the reference traces nothing (a quarter of this test's time) and no graph rewrite
    touches its rounding."""
    options = dict(tiny_options(method), d_steps=1)
    x = np.random.default_rng(0).normal(size=(32, 2)).astype("float32")
    results = []
    weights = None
    for devices in (cpu_devices[:1], cpu_devices[:2]):
        strategy = mirrored_strategy(tuple(devices))
        model = build_model(method, options, strategy, run_eagerly=len(devices) == 1,
                            d_optimizer=keras.optimizers.SGD(0.01), g_optimizer=keras.optimizers.SGD(0.01))
        if weights is None:
            weights = model.get_weights()
        else:
            model.set_weights(weights)
        data = tf.data.Dataset.from_tensor_slices(x).batch(32, drop_remainder=True)
        model.fit(data, epochs=1, verbose=0)
        results.append(model.get_weights())
    change = max(float(np.max(np.abs(a - w))) for a, w in zip(results[0], weights))
    assert change > 1e-5, "the step did not change the weights"
    for one, two in zip(*results):
        np.testing.assert_allclose(one, two, rtol=1e-4, atol=1e-5)


def test_single_generator_methods_refuse_several_generators():
    for method in METHODS:
        cls = tfgan_mix.get_method(method)
        if cls.max_generators == 1:
            with pytest.raises(ValueError, match="at most 1 generator"):
                cls(data_shape=(2,), num_generators=2)


def test_unknown_option_is_named():
    with pytest.raises(ValueError, match="unknown option.*'bogus'"):
        tfgan_mix.get_method("npgan")(data_shape=(2,), bogus=1)


@pytest.mark.parametrize("loss", ["ns", "minimax", "wasserstein", "hinge"])
@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_every_loss_family_and_noise_prior_trains(loss, noise):
    options = {**tiny_options("npgan"), "loss": loss, "noise": noise, "d_steps": 2,
               "gradient_penalty": 1.0 if loss == "wasserstein" else 0.0,
               "g_learning_rate": 1e-3, "d_learning_rate": 4e-3}
    model = build_model("npgan", options)
    before = snapshot(model.generator_variables)
    history = model.fit(toy_batches((2,)), steps_per_epoch=2, epochs=1, verbose=0)
    assert all(np.all(np.isfinite(v)) for v in history.history.values())
    assert ("d_gp" in history.history) == (loss == "wasserstein")
    assert moved(before, model.generator_variables)
    # d_steps=2: the critic took two updates per generator update (TTUR rates kept apart).
    assert int(model.d_optimizer.iterations.numpy()) == 2 * int(model.g_optimizer.iterations.numpy()) == 4
    assert model.d_optimizer.learning_rate.numpy() == pytest.approx(4e-3)


def test_linear_rate_decay_brings_every_players_rate_to_zero_at_the_same_step(tmp_path):
    """``learning_rate_decay="linear"``: D (two updates per step), G and NP start at their own
    rates, are at half of them halfway and at 0 after ``learning_rate_decay_steps`` train steps;
    a ``.keras`` round trip keeps the schedule, and training past its end moves nothing."""
    options = {**tiny_options("npgan"), "d_steps": 2, "g_learning_rate": 1e-3, "d_learning_rate": 4e-3,
               "noise_prior_learning_rate": 2e-3, "learning_rate_decay": "linear", "learning_rate_decay_steps": 4}
    model = build_model("npgan", options)
    players = {"d": 4e-3, "g": 1e-3, "np": 2e-3}

    def rates(m):
        return {name: float(getattr(m, f"{name}_optimizer").learning_rate) for name in players}

    assert rates(model) == pytest.approx(players)
    model.fit(toy_batches((2,)), steps_per_epoch=2, epochs=1, verbose=0)
    assert rates(model) == pytest.approx({name: rate / 2 for name, rate in players.items()})
    model.save(str(tmp_path / "model.keras"))
    restored = keras.models.load_model(str(tmp_path / "model.keras"))
    assert rates(restored) == pytest.approx(rates(model))
    restored.fit(toy_batches((2,)), steps_per_epoch=2, epochs=1, verbose=0)
    assert rates(restored) == pytest.approx({name: 0.0 for name in players}, abs=1e-12)
    before = snapshot(restored.generator_variables + restored.discriminator_variables)
    restored.fit(toy_batches((2,)), steps_per_epoch=1, epochs=1, verbose=0)
    assert not moved(before, restored.generator_variables + restored.discriminator_variables)


def test_rate_decay_options_are_checked_and_a_run_fills_in_its_length():
    from tfgan_mix.data import load_dataset
    from tfgan_mix.training.train import TrainSpec

    with pytest.raises(ValueError, match="learning_rate_decay_steps >= 1, the run's length"):
        tfgan_mix.get_method("gan")(data_shape=(2,), learning_rate_decay="linear")
    with pytest.raises(ValueError, match="learning_rate_decay must be one of"):
        tfgan_mix.get_method("gan")(data_shape=(2,), learning_rate_decay="cosine")
    spec = TrainSpec(method="gan", data="gaussians3", steps=1234, options={"learning_rate_decay": "linear"})
    assert spec.model_options(load_dataset("gaussians3"))["learning_rate_decay_steps"] == 1234
    given = TrainSpec(method="gan", data="gaussians3", steps=1234,
                      options={"learning_rate_decay": "linear", "learning_rate_decay_steps": 99})
    assert given.model_options(load_dataset("gaussians3"))["learning_rate_decay_steps"] == 99


def test_every_preset_makes_a_valid_config_for_its_run():
    """Each preset's options, as ``tfgan-mix train --preset`` turns them into the model's (a linear
    rate decay takes the run's length), make a valid config of its method."""
    from tfgan_mix.data import load_dataset
    from tfgan_mix.training import presets
    from tfgan_mix.training.train import TrainSpec

    for name in presets.list_presets():
        preset = presets.load(name)
        spec = TrainSpec(method=preset["method"], data=preset["data"], steps=preset["steps"],
                         num_generators=preset["generators"], options=preset["options"])
        options = spec.model_options(load_dataset(preset["data"]))
        config = tfgan_mix.get_method(preset["method"]).make_config(options)
        if config.learning_rate_decay == "linear":
            assert config.learning_rate_decay_steps == preset["steps"], name
