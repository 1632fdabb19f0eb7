"""Every registered method exports through the same path: Keras, SavedModel and ONNX agree on the
same noise, including ``accepted`` and ``generator``; a version appears atomically or not at all."""
import dataclasses
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf
from helpers import tiny_options

import tfgan_mix
from tfgan_mix.data import Dataset
from tfgan_mix.export import strata, writer
from tfgan_mix.export.rules import drs_f, get_rule
from tfgan_mix.export.sampler import Rejection, Sampler, calibrate
from tfgan_mix.core import build_model

METHODS = tfgan_mix.list_methods()
CANDIDATES = 4


def _points(n=500, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 2)).astype("float32")
    return Dataset(name="normal2d", x=x, kind="points")


def _sampler(method, rule=None, threshold=None):
    keras.utils.set_random_seed(0)
    model = build_model(method, tiny_options(method))
    return Sampler(model, calibrate(model, rule, CANDIDATES, real=_points().x, threshold=threshold))


def _middle_threshold(sampler, noise):
    """A threshold in the widest gap between the candidates' sorted scores around their 50-90%
    quantiles: some rows pass and some fail, and no score sits within float error of the threshold
    (one that did could pass in one runtime and fail in another)."""
    flat = {k: tf.reshape(v, [-1, *v.shape[2:]]) for k, v in noise.items()}
    samples, generator = sampler.model.generate(flat)
    scores = np.sort(sampler.candidate_scores(flat, samples, generator).numpy())
    low, high = len(scores) // 2, int(0.9 * len(scores))
    i = low + int(np.argmax(np.diff(scores[low:high + 1])))
    return float((scores[i] + scores[i + 1]) / 2)


@pytest.mark.parametrize("method", METHODS)
def test_keras_savedmodel_and_onnx_agree(method, tmp_path):
    sampler = _sampler(method)
    seeds = tf.range(64, dtype=tf.int64)
    noise = sampler.candidate_noise(seeds)
    # Re-calibrate so the rule really rejects some candidates: the parity must cover both branches;
    # and carry data regions as a calibrated export does (the region route or preference, strata.py).
    rejection = calibrate(sampler.model, sampler.rejection.rule, CANDIDATES, real=_points().x,
                          threshold=_middle_threshold(sampler, noise))
    sampler = Sampler(sampler.model, dataclasses.replace(rejection, regions=strata.fit_regions(_points().x)))
    _assert_runtimes_agree(sampler, noise, seeds, tmp_path)


def _assert_runtimes_agree(sampler, noise, seeds, tmp_path):
    keras_out = {k: v.numpy() for k, v in sampler.from_noise(noise).items()}
    assert 0 < keras_out["accepted"].mean() < 1, "the test needs rows that pass and rows that fail"

    writer.write_savedmodel(sampler, str(tmp_path))
    writer.write_onnx(sampler, str(tmp_path / "model.onnx"))
    loaded = tf.saved_model.load(str(tmp_path), tags=["serve"])
    saved_out = {k: v.numpy() for k, v in loaded.signatures["from_noise"](**noise).items()}
    seeded_out = {k: v.numpy() for k, v in loaded.signatures["serving_default"](seed=seeds).items()}
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in session.get_inputs()) == sorted(sampler.noise_spec)
    onnx_out = dict(zip([o.name for o in session.get_outputs()],
                        session.run(None, {k: v.numpy() for k, v in noise.items()})))

    for other in (saved_out, seeded_out, onnx_out):
        assert set(other) == {"samples", "accepted", "generator", "score"}
        np.testing.assert_array_equal(other["accepted"], keras_out["accepted"])
        np.testing.assert_array_equal(other["generator"], keras_out["generator"])
        for key in ("samples", "score"):
            assert np.max(np.abs(other[key] - keras_out[key])) <= 1e-4, key


@pytest.mark.parametrize("rule", ["drs"])
def test_sampler_rules_agree_across_runtimes(rule, tmp_path):
    """Rules of the sampler itself (not of a method) export like the methods' own."""
    model = build_model("npgan", tiny_options("npgan"))
    sampler = Sampler(model, calibrate(model, rule, CANDIDATES))
    seeds = tf.range(64, dtype=tf.int64)
    noise = sampler.candidate_noise(seeds)
    sampler = Sampler(model, calibrate(model, rule, CANDIDATES, threshold=_middle_threshold(sampler, noise)))
    _assert_runtimes_agree(sampler, noise, seeds, tmp_path)


@pytest.mark.parametrize("method", METHODS)
def test_each_row_returns_its_first_passing_candidate(method):
    """A row returns its first candidate that passes and routes to the row's generator; with none,
    its best-scoring candidate of that generator, not accepted."""
    sampler = _sampler(method, rule="truncation", threshold=-0.5)
    z = np.zeros((3, CANDIDATES, 8), np.float32)
    z[0, :, 0] = [0.9, 0.8, 0.1, 0.2]  # within radius 0.5: candidates 2 and 3
    z[1, :, 0] = [0.9, 0.9, 0.9, 0.9]  # none
    z[2, :, 0] = [0.3, 0.9, 0.9, 0.9]  # candidate 0
    noise = {"z": tf.constant(z)}
    if "u" in sampler.noise_spec:
        noise["u"] = tf.constant(np.random.default_rng(0).uniform(size=(3, CANDIDATES)), tf.float32)
    out = sampler.from_noise(noise)
    if sampler.tie_choice:
        noise["u"] = tf.tile(noise["u"][:, :1], [1, CANDIDATES])
    flat = {k: tf.reshape(v, [-1, *v.shape[2:]]) for k, v in noise.items()}
    samples, generator = (t.numpy().reshape(3, CANDIDATES, -1) for t in sampler.model.generate(flat))
    same_route = generator[:, :, 0] == generator[:, :1, 0]
    passed = (-np.linalg.norm(z, axis=-1) >= -0.5) & same_route
    expected_pick = [int(np.argmax(row)) if row.any() else int(np.argmax(np.where(r, -np.linalg.norm(zr, axis=-1), -9)))
                     for row, r, zr in zip(passed, same_route, z)]
    np.testing.assert_array_equal(out["accepted"].numpy(), passed.any(axis=1))
    picked = samples[np.arange(3), expected_pick]
    np.testing.assert_allclose(out["samples"].numpy().reshape(3, -1), picked, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["generator"].numpy(), generator[:, 0, 0])
    assert out["accepted"].numpy()[1] == False  # noqa: E712


def test_same_seed_same_sample():
    sampler = _sampler("npgan")
    a = sampler.from_seed(tf.constant([5, 6, 5], tf.int64))["samples"].numpy()
    np.testing.assert_array_equal(a[0], a[2])
    assert not np.allclose(a[0], a[1])


def test_unknown_rule_and_bad_candidates_are_named():
    model = build_model("gan", tiny_options("gan"))
    with pytest.raises(ValueError, match="no rejection rule 'partition'"):
        calibrate(model, "partition")
    with pytest.raises(ValueError, match="candidates must be >= 1"):
        calibrate(model, "none", 0)
    with pytest.raises(ValueError, match="needs held-back data"):
        calibrate(model, "discriminator")
    with pytest.raises(ValueError, match="needs held-back real data"):
        calibrate(model, "manifold")


@pytest.mark.parametrize("rule", ["truncation", "router"])
def test_noise_side_rules_fall_back_to_keeping_three_quarters_of_the_prior(rule):
    """Without held-back data to calibrate on, the threshold passes ~3/4 of fresh prior draws
    (paper 004, section IV-D)."""
    model = build_model("npgan", tiny_options("npgan"))
    rejection = calibrate(model, rule)
    assert rejection.rule == rule and "keeps 0.75" in rejection.how
    noise = model.sample_noise(20_000, tf.constant([999, 1], tf.int64))
    samples, generator = model.generate(noise)
    score = get_rule(rule).score(model, {}, noise, samples, generator).numpy()
    assert abs(np.mean(score >= rejection.threshold) - 0.75) < 0.02


def test_default_rule_is_the_knn_manifold_of_held_back_data():
    """Balls of radius r_j (3rd nearest real neighbour) around held-back points: a point at a
    ball's centre scores 0, one far outside every ball is rejected at the fallback threshold -1."""
    model = build_model("npgan", tiny_options("npgan"))
    real = _points().x
    rejection = calibrate(model, real=real)
    assert rejection.rule == "manifold" and rejection.threshold == -1.0
    centres, radii = rejection.constants["centres"], rejection.constants["radii"]
    assert centres.shape == (500, 2) and radii.shape == (500,)
    expected = np.sort(np.linalg.norm(real[:, None] - real[None], axis=-1), axis=1)[:, 3]
    np.testing.assert_allclose(np.sort(radii), np.sort(expected), rtol=1e-5)
    points = tf.constant([real[0], [40.0, 40.0]], tf.float32)
    score = get_rule("manifold").score(model, rejection.constants, {}, points, None).numpy()
    assert score[0] == pytest.approx(0.0, abs=1e-3) and score[1] < -1.0


def test_manifold_score_is_the_smallest_ball_ratio_over_every_product_of_balls():
    """The graph splits the balls into products of ``BALLS_PER_PRODUCT`` columns (500 balls: three
    full ones and a part); its score is still minus the smallest ratio over all of them, as the
    numpy twin computes it, wherever that ball falls."""
    from tfgan_mix.export.rules import Manifold, ball_ratio

    model = build_model("npgan", tiny_options("npgan"))
    constants = calibrate(model, real=_points().x).constants
    assert len(constants["radii"]) % Manifold.BALLS_PER_PRODUCT and len(constants["radii"]) > 3 * Manifold.BALLS_PER_PRODUCT
    points = np.concatenate([constants["centres"][::37] + 0.01, np.random.default_rng(0).normal(0, 3, (300, 2))])
    score = get_rule("manifold").score(model, constants, {}, tf.constant(points, tf.float32), None).numpy()
    np.testing.assert_allclose(-score, ball_ratio(points, constants["centres"], constants["radii"]), rtol=1e-3, atol=1e-3)


def test_drs_score_is_the_papers_f_against_a_uniform():
    """Azadi et al. 2019, Eq. 8, on hand-computed values, and DRS parity across runtimes."""
    logits = np.array([-2.0, 0.0, 1.0, 3.0])
    expected = [-3.0 - np.log(1 - np.exp(-3.0 - 1e-6)) - 0.5, -1.0 - np.log(1 - np.exp(-1.0 - 1e-6)) - 0.5,
                0.0 - np.log(1 - np.exp(-1e-6)) - 0.5, 0.0 - np.log(1 - np.exp(-1e-6)) - 0.5]  # 3.0 clipped to max
    np.testing.assert_allclose(drs_f(logits, 1.0, 0.5), expected, rtol=1e-6)

    model = build_model("npgan", tiny_options("npgan"))
    rejection = calibrate(model, "drs", CANDIDATES)
    params = rejection.constants
    assert rejection.threshold == 0.0 and set(params) == {"d_max", "gamma"}
    sampler = Sampler(model, rejection)
    assert "accept_u" in sampler.noise_spec
    noise = sampler.candidate_noise(tf.range(200, dtype=tf.int64))
    flat = {k: tf.reshape(v, [-1, *v.shape[2:]]) for k, v in noise.items()}
    samples, generator = model.generate(flat)
    f = drs_f(model.discriminate(samples).numpy(), params["d_max"], params["gamma"])
    u = flat["accept_u"].numpy()
    passed = (sampler.candidate_scores(flat, samples, generator).numpy() >= 0).reshape(-1, CANDIDATES)
    np.testing.assert_array_equal(passed, (u < 1 / (1 + np.exp(-f))).reshape(-1, CANDIDATES))
    # gamma at the 80th percentile of F: a candidate passes with probability mean(sigmoid(F)).
    assert abs(passed.mean() - np.mean(1 / (1 + np.exp(-f)))) < 0.05


def test_export_writes_numbered_versions_with_a_model_card(tiny_run, tmp_path, capsys):
    base = tmp_path / "sampler"
    first = writer.export_run(tiny_run, str(base))
    warning = capsys.readouterr().err
    second = writer.export_run(tiny_run, str(base), formats="savedmodel", rule="router")
    assert os.path.basename(first) == "1" and os.path.basename(second) == "2"
    assert sorted(os.listdir(base)) == ["1", "2"], "no temporary directory may remain"
    card = json.loads((base / "1" / writer.CARD_FILE).read_text())
    assert card["method"] == "npgan" and card["num_generators"] == 3
    assert [i["name"] for i in card["noise_inputs"]] == ["z", "u"]
    assert card["noise_inputs"][0]["shape"] == [None, card["candidates"], 4]
    assert card["rejection"]["rule"] == "manifold"  # the default, calibrated to the outlier target
    assert card["rejection"]["constants_file"] == {"name": "rejection.npz",
                                                   "arrays": ["centres", "radii", "strata_regions"]}
    assert card["rejection"]["strata"]["regions"] == strata.REGIONS  # data regions the rows keep (strata.py)
    regions = Rejection.load(first).regions
    assert regions.shape == (strata.REGIONS, *card["data_shape"]) and len(np.unique(regions, axis=0)) == strata.REGIONS
    calibration = card["rejection"]["calibration"]
    assert calibration["outlier_target"] == 0.001 and calibration["row_acceptance_floor"] == 0.99
    # An unmet target is warned about with the same reason the card gives (what held the threshold).
    assert ("not met: " in warning) == (not calibration["target_met"]), warning
    if not calibration["target_met"]:
        reason = warning.split("not met: ", 1)[1].split("; served", 1)[0]
        assert reason and f"not reachable: {reason};" in card["rejection"]["threshold_from"], (reason, card)
    measured = card["measured"]
    assert measured["rows"] == writer.CARD_SAMPLES and "off-manifold" in measured["outlier_definition"]
    assert measured["accepted_rows"] == round(measured["acceptance_rate"] * measured["rows"])
    assert set(measured["raw"]) >= {"outlier_rate", "precision", "recall", "mode_tv", "modes_covered"}
    assert sum(measured["generator_shares_raw"]) == pytest.approx(1.0)
    assert os.path.exists(base / "1" / "model.onnx") and not os.path.exists(base / "2" / "model.onnx")
    assert json.loads((base / "2" / writer.CARD_FILE).read_text())["rejection"]["rule"] == "router"


def test_existing_version_is_refused_and_kept(tiny_run, tmp_path):
    base = tmp_path / "sampler"
    writer.export_run(tiny_run, str(base), version=3, formats="savedmodel")
    before = os.path.getmtime(base / "3" / "saved_model.pb")
    with pytest.raises(FileExistsError, match="already exists"):
        writer.export_run(tiny_run, str(base), version=3, formats="savedmodel")
    assert os.path.getmtime(base / "3" / "saved_model.pb") == before


def test_failed_export_leaves_no_version(tiny_run, tmp_path, monkeypatch):
    base = tmp_path / "sampler"

    def broken(sampler, path):
        raise RuntimeError("conversion failed")

    monkeypatch.setattr(writer, "write_onnx", broken)
    with pytest.raises(RuntimeError, match="conversion failed"):
        writer.export_run(tiny_run, str(base))
    assert os.listdir(base) == []


def test_bad_format_is_named(tiny_run, tmp_path):
    with pytest.raises(ValueError, match="unknown export format"):
        writer.export_run(tiny_run, str(tmp_path / "b"), formats="tflite")
    assert not (tmp_path / "b").exists()


@pytest.fixture(scope="module")
def manifold_versions(tiny_run, tmp_path_factory):
    """Version 1: the default export (the k-NN manifold rule); version 2: the same balls at a tight
    radius that rejects ~60% of raw samples, one candidate per row."""
    from tfgan_mix.export.rules import ball_ratio
    from tfgan_mix.training.train import load_run

    base = tmp_path_factory.mktemp("manifold")
    first = writer.export_run(tiny_run, str(base), rule="manifold")
    with np.load(os.path.join(first, "rejection.npz")) as npz:
        balls = dict(npz)
    ratio = ball_ratio(load_run(tiny_run).sample(2000, seed=1)[0], balls["centres"], balls["radii"])
    radius = float(np.quantile(ratio, 0.4))  # a radius that rejects ~60% of raw samples
    second = writer.export_run(tiny_run, str(base), rule="manifold", threshold=-radius, candidates=1, version=2)
    return {"default": first, "tight": second, "balls": balls, "radius": radius}


@pytest.mark.xdist_group("export_manifold_versions")  # one export of the fixture per process
def test_savedmodel_loads_like_tf_serving_in_a_fresh_process(manifold_versions):
    """Only TensorFlow, by tag and signature name, as the model server does; saved_model_cli too."""
    version = manifold_versions["default"]
    script = (
        "import sys, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1], tags=['serve'])\n"
        "out = m.signatures['serving_default'](seed=tf.constant([1, 2, 3], tf.int64))\n"
        "print(sorted(out), out['samples'].shape)\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script, version], capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "['accepted', 'generator', 'samples', 'score'] (3, 2)" in result.stdout
    cli = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", version,
                          "--all"], capture_output=True, text=True, timeout=300, env=env)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "signature_def['serving_default']" in cli.stdout and "signature_def['from_noise']" in cli.stdout


def test_export_command(tiny_run, tmp_path, capsys):
    from tfgan_mix.training import cli

    base = tmp_path / "base"
    assert cli.main(["export", tiny_run, "--out", str(base), "--formats", "onnx", "--candidates", "3"]) == 0
    out = capsys.readouterr().out
    assert f"exported npgan to {base / '1'}" in out and "acceptance_rate" in out
    assert json.loads((base / "1" / writer.CARD_FILE).read_text())["candidates"] == 3
    assert cli.main(["export", tiny_run, "--out", str(tmp_path / "never"), "--reject", "bogus"]) == 2
    assert "no rejection rule 'bogus'" in capsys.readouterr().err
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("target", ["savedmodel", "onnx"])
def test_sample_command_keeps_only_accepted_samples(truncated_export, tmp_path, capsys, target):
    """`tfgan-mix sample` on an exported version: every written sample passed the sampler's rule."""
    from tfgan_mix.training import cli

    # Accept-all would prove nothing: truncation at L2 radius 0.9 keeps a known share of uniform z.
    source = os.path.join(truncated_export, "model.onnx") if target == "onnx" else truncated_export
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(source), "-n", "300", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rate = float(printed.split("acceptance rate ")[1].split()[0])
    ball = math.pi**2 / 2 * 0.9**4 / 2**4  # P(|z| <= 0.9): 4-ball volume over the cube [-1, 1]^4
    assert ball - 0.06 < rate < ball + 0.06
    samples = np.load(out)
    assert samples.shape == (300, 2) and np.all(np.isfinite(samples))


@pytest.mark.xdist_group("export_manifold_versions")  # one export of the fixture per process
@pytest.mark.parametrize("target", ["savedmodel", "onnx"])
def test_sample_writes_exactly_n_samples_that_each_passed(manifold_versions, tmp_path, capsys, target):
    """The k-NN rule at a tight radius rejects many candidates (1 per row): every written sample
    lies inside the manifold the graph holds, recomputed here from the version's constants."""
    from tfgan_mix.export.rules import ball_ratio
    from tfgan_mix.training import cli

    tight, balls, radius = manifold_versions["tight"], manifold_versions["balls"], manifold_versions["radius"]
    source = os.path.join(tight, "model.onnx") if target == "onnx" else tight
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(source), "-n", "700", "--out", str(out)]) == 0
    rate = float(capsys.readouterr().out.split("acceptance rate ")[1].split()[0])
    assert 0.2 < rate < 0.6, "the test needs a rule that rejects"
    samples = np.load(out)
    assert samples.shape == (700, 2)
    assert np.all(ball_ratio(samples, balls["centres"], balls["radii"]) <= radius + 1e-4)


def test_sample_fails_without_a_file_when_acceptance_is_too_low(tiny_run, tmp_path, capsys):
    from tfgan_mix.training import cli

    base = tmp_path / "base"
    writer.export_run(tiny_run, str(base), rule="manifold", threshold=0.5, candidates=1, formats="onnx")  # nothing passes
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(base / "1" / "model.onnx"), "-n", "20", "--out", str(out)]) == 1
    assert "only 0 of 20 samples accepted" in capsys.readouterr().err
    assert not out.exists() and os.listdir(tmp_path / "base" / "1")  # nothing half-written next to it
    assert not [f for f in os.listdir(tmp_path) if f.startswith("s.npy")]
