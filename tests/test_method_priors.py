"""masked_prior and weighted_prior (paper 003): the resampling rules of Definitions 3 and 4, the
selection made over the *global* pre-sample under MirroredStrategy, and the inference-time rules."""
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model, tiny_options, toy_batches, training_step

from tfgan_mix.core import Step
from tfgan_mix.methods.masked_prior import global_presample, masked_resample, num_kept
from tfgan_mix.methods.weighted_prior import weighted_resample
from tfgan_mix.training.strategy import mirrored_strategy
from tfgan_mix.core import build_model

CANDIDATES = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)  # row i = (i, i)
SCORES = np.array([0.3, 2.0, -1.0, 5.0, 0.0, 4.0, 1.0, -3.0, 3.0, 0.5], np.float32)


def _uniform_grid(m):
    return tf.constant((np.arange(m) + 0.5) / m, tf.float32)


def test_masked_resample_draws_uniformly_from_the_top_fraction():
    """Definition 3 with r = 0.4, n = 10: mass 1/4 on each of the 4 best-scored rows, 0 elsewhere."""
    z = masked_resample(tf.constant(CANDIDATES), tf.constant(SCORES), _uniform_grid(400), 0.4).numpy()
    picked, counts = np.unique(z[:, 0].astype(int), return_counts=True)
    assert sorted(picked) == [1, 3, 5, 8]  # scores 2, 5, 4, 3
    np.testing.assert_array_equal(counts, [100, 100, 100, 100])
    assert num_kept(10, 0.04) == 1 and num_kept(1000, 0.5) == 500


def test_weighted_resample_frequencies_are_proportional_to_the_weights():
    """Definition 4: P(z_i) = w_i / sum_j w_j, checked on an evenly spaced grid of uniforms."""
    weights = np.array([1.0, 0.0, 3.0, 4.0, 2.0], np.float32)
    candidates = tf.constant(np.arange(5, dtype=np.float32)[:, None])
    z = weighted_resample(candidates, tf.constant(weights), _uniform_grid(1000)).numpy()[:, 0].astype(int)
    np.testing.assert_array_equal(np.bincount(z, minlength=5), 1000 * weights / weights.sum())


@pytest.mark.parametrize("loss", ["ns", "wasserstein"])
def test_weights_follow_eq_7(loss):
    """w proportional to the probability score s = sigmoid(logit) (paper 003, Eq. 7), whatever the
    loss: the lowest-scored z keeps a positive weight, and an outlying score does not take the
    pre-sample's mass (a shift of the logits changes the weights; s - min s would not)."""
    model = tiny_model("weighted_prior", loss=loss, gradient_penalty=10.0 if loss == "wasserstein" else 0.0)
    w = model.selection_weights(tf.constant(SCORES)).numpy()
    np.testing.assert_allclose(w, 1 / (1 + np.exp(-SCORES)), rtol=1e-6, atol=1e-7)
    assert w.min() > 0.04  # logit -3: s = 0.047, not 0
    # By hand: logits (0, ln 3, 100) -> s = (1/2, 3/4, ~1): resampling odds 2 : 3 : 4.
    s = tf.constant([0.0, np.log(3.0), 100.0], tf.float32)
    z = weighted_resample(tf.constant([[0.0], [1.0], [2.0]]), model.selection_weights(s), _uniform_grid(900))
    np.testing.assert_array_equal(np.bincount(z.numpy()[:, 0].astype(int), minlength=3), [200, 300, 400])


def test_weighted_prior_statistics_use_the_probability_score():
    """The inference rule's (offset, w_max): offset 0 and w_max the largest sigmoid score, with the
    default (Wasserstein) critic as with a sigmoid loss."""
    model = tiny_model("weighted_prior")
    assert model.config.loss == "wasserstein"  # section 4.1: "We use Wasserstein-GAN"
    offset, w_max = model.selection_statistics(tf.constant(SCORES))
    assert float(offset) == 0.0 and float(w_max) == pytest.approx(1 / (1 + np.exp(-5.0)), rel=1e-6)


@pytest.mark.parametrize("method", ["masked_prior", "weighted_prior"])
def test_both_players_train_on_the_resampled_batch(method):
    """The step's z is replaced by rows of the pre-sample, for masking only rows scored in the top r."""
    model = tiny_model(method)
    step = training_step(model, 16, (3, 4))
    z = model.resampled(step).noise["z"].numpy()
    candidates = step.noise["pre_z"].numpy().reshape(-1, 8)
    match = np.all(np.isclose(z[:, None, :], candidates[None]), axis=-1)
    assert match.any(axis=1).all(), "every resampled z is a pre-sample row"
    if method == "masked_prior":
        scores = model.presample_scores(tf.constant(candidates)).numpy()
        cut = np.sort(scores)[-num_kept(len(scores), model.config.mask_rate)]
        assert np.all(scores[match.argmax(axis=1)] >= cut)


@pytest.mark.parametrize("method", ["masked_prior", "weighted_prior"])
def test_selection_is_global_under_two_replicas(method, cpu_devices):
    """Each replica resamples its rows from the global pre-sample: the two replicas' rows together
    are exactly the rows one device selects (a per-replica top-r would not be)."""
    options = tiny_options(method)
    single = build_model(method, options)
    noise = single.draw_training_noise(16, tf.constant(0, tf.int64), 0)
    expected = single.resampled(Step(tf.zeros([16, 2]), noise)).noise["z"].numpy()

    strategy = mirrored_strategy(tuple(cpu_devices[:2]))
    model = build_model(method, options, strategy)
    model.set_weights(single.get_weights())

    @tf.function
    def run():
        def replica_fn():
            local = model.draw_training_noise(8, tf.constant(0, tf.int64), 0)
            return model.resampled(Step(tf.zeros([8, 2]), local)).noise["z"]
        return strategy.run(replica_fn)

    per_replica = np.concatenate([r.numpy() for r in strategy.experimental_local_results(run())])
    np.testing.assert_allclose(per_replica, expected, rtol=1e-6)


def test_global_presample_is_a_static_reshape():
    pre = tf.reshape(tf.range(24, dtype=tf.float32), [4, 3, 2])
    np.testing.assert_array_equal(global_presample(pre).numpy(), np.arange(24).reshape(12, 2))


def test_mask_rule_accepts_about_r_of_the_prior_after_training():
    """The inference rule keeps z with s(z) >= pct_{1-r}, estimated during training: on fresh prior
    draws it accepts about a fraction r, and exactly those scored at or above the stored cut."""
    model = tiny_model("masked_prior", mask_rate=0.3)
    model.fit(toy_batches((2,), batch_size=64), steps_per_epoch=2, epochs=1, verbose=0)
    noise = model.sample_noise(4000, tf.constant([9, 9], tf.int64))
    samples, _ = model.generate(noise)
    score = model.selection_score(model.discriminate(samples), noise).numpy()  # the sampler's prior_mask rule
    np.testing.assert_allclose(score, model.discriminate(samples).numpy() - model.selection_stats.offset.numpy(),
                               rtol=1e-5, atol=1e-5)
    assert abs(np.mean(score >= 0) - 0.3) < 0.12


def test_weight_rule_is_rejection_sampling_with_the_candidates_uniform():
    """Accept z when u <= w(s(z)) / w_max: the score is w/w_max - u, threshold 0."""
    model = tiny_model("weighted_prior")
    model.selection_stats.offset.assign(-1.0)
    model.selection_stats.scale.assign(4.0)
    z = tf.random.stateless_uniform([6, 8], [1, 2], -1, 1)
    u = tf.constant([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    samples, _ = model.generate({"z": z, "u": u})
    s = 1 / (1 + np.exp(-model.discriminate(samples).numpy()))  # the probability score D(G(z))
    expected = np.clip((s + 1.0) / 4.0, 0, 1) - u.numpy()
    np.testing.assert_allclose(model.selection_score(model.discriminate(samples), {"z": z, "u": u}).numpy(), expected,
                               rtol=1e-5, atol=1e-6)
    assert "prior_weight" in model.rejection_rules and "prior_mask" not in model.rejection_rules


def test_sample_with_prior_keeps_the_top_scored_generation():
    model = tiny_model("masked_prior", mask_rate=0.25)
    _, chosen = model.sample_with_prior(200, seed=5)
    raw, _ = model.sample(2000, seed=5)
    all_scores = model.discriminate(tf.constant(raw)).numpy()
    # The kept quarter scores above roughly the 75% quantile of unrestricted samples.
    assert np.min(chosen) >= np.quantile(all_scores, 0.6)


def test_one_generator_only():
    for method in ("masked_prior", "weighted_prior"):
        with pytest.raises(ValueError, match="at most 1 generator"):
            tiny_model(method, num_generators=2)


@pytest.mark.parametrize("method, rule", [("masked_prior", "prior_mask"), ("weighted_prior", "prior_weight")])
def test_inference_rule_exports_to_onnx_with_parity(method, rule, tmp_path):
    """The paper's inference-time selection is the default sampler rule (threshold 0): Keras and ONNX agree."""
    import onnxruntime as ort

    from tfgan_mix.export import writer
    from tfgan_mix.export.sampler import Sampler, calibrate

    model = tiny_model(method)
    model.fit(toy_batches((2,), batch_size=16), steps_per_epoch=2, epochs=1, verbose=0)
    rejection = calibrate(model, candidates=4)  # the method's default rule and its fixed threshold
    assert (rejection.rule, rejection.threshold) == (rule, 0.0)
    sampler = Sampler(model, rejection)
    noise = sampler.candidate_noise(tf.range(64, dtype=tf.int64))
    keras_out = {k: v.numpy() for k, v in sampler.from_noise(noise).items()}
    assert 0 < keras_out["accepted"].mean() <= 1
    writer.write_onnx(sampler, str(tmp_path / "model.onnx"))
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_out = dict(zip([o.name for o in session.get_outputs()],
                        session.run(None, {k: v.numpy() for k, v in noise.items()})))
    np.testing.assert_array_equal(onnx_out["accepted"], keras_out["accepted"])
    np.testing.assert_allclose(onnx_out["samples"], keras_out["samples"], atol=1e-4)
