"""Rejection keeps routing and calibrates to a target: assertions on samples, not printouts."""
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_options
from scipy import stats

from tfgan_mix import metrics as M
from tfgan_mix.data import Dataset, load_dataset
from tfgan_mix.export import calibration, client, strata, writer
from tfgan_mix.export.rules import Rule, register_rule
from tfgan_mix.export.sampler import Rejection, Sampler, calibrate, ties_choice
from tfgan_mix.core import build_model
from tfgan_mix.training.train import TrainSpec, load_run, train

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("rejection")

ROWS = 4000
CANDIDATES = 8


@register_rule
class FavoursLowGenerators(Rule):
    """Test rule: generator i's candidates pass with probability 0.9 - 0.2 i (a uniform of its own),
    so a sampler that let each candidate draw its own generator would skew accepted shares."""

    name = "test_favours_low_generators"
    extra_noise = {"test_u": ((), "uniform01")}

    def score(self, model, constants, noise, samples, generator):
        return 0.9 - 0.2 * tf.cast(generator, tf.float32) - noise["test_u"]


def _prior_shares(model, draws=40_000):
    """The generator shares the method's own prior gives (no rejection)."""
    _, generator = model.generate(model.sample_noise(draws, tf.constant([77, 0], tf.int64)))
    return M.generator_usage(generator.numpy(), model.config.num_generators)


@pytest.mark.parametrize("method", ["npgan", "mgan", "pgmgan", "deligan", "hmog"])
def test_rows_keep_the_priors_generator_shares_under_rejection(method):
    """Paper 002, Eq. 1: rows draw generator i with probability pi_i whatever the rule rejects.
    Every row's generator follows the prior (chi-square), accepted rows follow pi_i r_i with
    r_i = 1 - (1 - a_i)^m (calibration.row_acceptance), and an accepted row's sample comes from
    its own generator."""
    options = tiny_options(method)
    if method == "hmog":
        options["num_generators"] = 4
    model = build_model(method, options)
    sampler = Sampler(model, Rejection(FavoursLowGenerators.name, 0.0, CANDIDATES, "test"))
    out = {k: v.numpy() for k, v in tf.function(sampler.from_seed)(tf.range(ROWS, dtype=tf.int64)).items()}
    k = model.config.num_generators
    prior = _prior_shares(model)
    used = prior > 0.01
    counts = np.bincount(out["generator"], minlength=k)
    assert stats.chisquare(counts[used], prior[used] / prior[used].sum() * counts[used].sum()).pvalue > 1e-3, \
        (counts / ROWS, prior)

    acceptance = np.clip(0.9 - 0.2 * np.arange(k), 0, 1)
    rows = calibration.row_acceptance(acceptance, prior, CANDIDATES, matched=not ties_choice(model))
    expected = prior * rows
    accepted_counts = np.bincount(out["generator"][out["accepted"]], minlength=k)
    assert stats.chisquare(accepted_counts[used], expected[used] / expected[used].sum() * accepted_counts[used].sum()
                           ).pvalue > 1e-3, (accepted_counts / accepted_counts.sum(), expected / expected.sum())


def test_choose_threshold_takes_the_loosest_threshold_meeting_the_target():
    """Scores 0..999 per generator, outliers at the 100 lowest: only threshold 100 serves no outlier
    and its 95% upper bound (1 - 0.05^(1/1800) = 0.0017) meets a 0.002 target; one outlier more
    per generator (threshold 99) would not. A floor that the target would break is kept and the
    target reported unmet, with the fewest outliers the floor allows (threshold 50: 50 of 950)."""
    scores = np.tile(np.arange(1000.0), 2)
    outlier = scores < 100
    generator = np.repeat([0, 1], 1000)
    found = calibration.choose_threshold(scores, outlier, generator, 2, candidates=4, matched=False, target=0.002,
                                         floor=0.9)
    assert found.target_met and found.threshold == 100.0
    assert found.expected_outlier_rate == 0.0 and found.expected_min_row_acceptance > 0.99
    strict = calibration.choose_threshold(scores, outlier, generator, 2, candidates=1, matched=False, target=0.002,
                                          floor=0.95)
    assert not strict.target_met and strict.expected_min_row_acceptance >= 0.95
    assert strict.expected_outlier_rate == pytest.approx(50 / 950, abs=0.002)
    assert found.limited_by == () and strict.limited_by == (calibration.LIMIT_ROW_FLOOR,)
    assert calibration.unmet_reason(strict) == "a stricter threshold would break the row floor (row acceptance >= 0.95)"
    # Every candidate an outlier: no threshold serves fewer, and the reason says so rather than blame a bound.
    hopeless = calibration.choose_threshold(scores, np.ones_like(outlier), generator, 2, candidates=1, matched=False,
                                            target=0.002, floor=0.95)
    assert hopeless.limited_by == () and calibration.unmet_reason(hopeless) == "no threshold serves fewer outliers"


def test_export_doubles_the_candidates_until_the_target_holds_with_the_row_floor():
    """Generator 0's candidates all pass; 70% of generator 1's are outliers scoring below every
    inlier. Rejecting them leaves generator 1 a candidate acceptance of 0.3, so its rows reach the
    0.99 floor only with 16 candidates (1 - 0.7^8 = 0.94, 1 - 0.7^16 = 0.997): 8 keeps the floor by
    serving outliers, 16 meets the target, and nothing beyond 16 is asked for."""
    rng = np.random.default_rng(0)
    n = 20_000
    generator = np.repeat([0, 1], n // 2)
    outlier = (generator == 1) & (rng.random(n) < 0.7)
    scores = np.where(outlier, rng.uniform(0.0, 0.5, n), rng.uniform(0.5, 1.0, n))
    eight = calibration.choose_threshold(scores, outlier, generator, 2, candidates=8, matched=False, target=0.001)
    assert not eight.target_met and eight.expected_outlier_rate > 0.01
    m, found = calibration.choose_candidates_and_threshold(scores, outlier, generator, 2, start=8, matched=False,
                                                           target=0.001)
    assert m == 16 and found.target_met and found.expected_outlier_rate <= 0.001
    assert found.threshold > 0.49 and found.expected_min_row_acceptance >= 0.99  # the loosest: a few outliers pass
    # Unreachable at any count (outliers score like inliers): the count with the fewest served outliers.
    mixed = rng.uniform(0.0, 1.0, n)
    m, found = calibration.choose_candidates_and_threshold(mixed, outlier, generator, 2, start=8, matched=False,
                                                           target=0.001)
    assert not found.target_met and m in (8, 16, 32, 64)


def test_calibration_judge_is_stricter_than_one_draws_judge():
    """Off-manifold against each third of the data flags every sample the whole draw flags, and
    more of the far tail: a threshold calibrated against it holds for an independent draw."""
    heldout = load_dataset("gaussians3", seed=5)
    whole, strict = calibration.OutlierJudge(heldout), calibration.OutlierJudge(heldout, splits=3)
    centre = heldout.centres[0]
    radial = centre + np.linspace(0.0, 0.8, 400)[:, None] * np.array([1.0, 0.0])  # out from a mode's centre
    flagged, flagged_strict = whole(radial), strict(radial)
    assert np.all(flagged_strict[flagged]) and flagged_strict.sum() > flagged.sum() > 0
    assert not flagged_strict[0]


def test_unknown_modes_judge_widens_its_balls_until_real_data_passes():
    """Without known modes the judge is the k-NN balls of held-back points. In 2-D, k = 3 leaves a
    few real points outside (k stays 3); in 10-D k = 3 leaves far more than the allowed rate, and
    the judge takes a larger k whose rate on held-back real points is within it. Off-manifold
    points (far from every mode) are outliers to both."""
    rng = np.random.default_rng(0)
    for dim, wider in ((2, False), (10, True)):
        centres = 3.0 * rng.standard_normal((4, dim))
        x = centres[rng.integers(0, 4, 6000)] + 0.1 * rng.standard_normal((6000, dim))
        judge = calibration.OutlierJudge(Dataset("unlabelled", x, "points"))
        k = judge.neighbours
        assert (k > 3) == wider and f"(k={k}:" in judge.definition, (dim, k)
        assert judge.reference_rate <= calibration.JUDGE_REAL_RATE, (dim, k, judge.reference_rate)
        between = (centres[0] + centres[1]) / 2 + 0.05 * rng.standard_normal((200, dim))
        assert judge(between).mean() > 0.99, dim


# ---------------------------------------------------------------------- through the exported graph
# Small nets at a high rate, stopped after 600 steps, while they still bridge gaussians3's modes.
SHORT_RUN = {"data": "gaussians3", "steps": 600, "batch_size": 128, "seed": 1,
             "options": {"generator_units": [64, 64], "discriminator_units": [128, 128], "latent_dim": 8,
                         "g_learning_rate": 1e-3, "d_learning_rate": 1e-3}}


def _short_run(tmp_path_factory, method, **spec):
    out = tmp_path_factory.mktemp(f"{method}_run")
    train(TrainSpec(method=method, **SHORT_RUN, **spec), load_dataset(SHORT_RUN["data"]), str(out), verbose=0)
    return str(out)


@pytest.fixture(scope="module")
def outlier_run(tmp_path_factory):
    """A small MGAN on gaussians3 trained briefly: it still bridges the modes (off-manifold samples)."""
    return _short_run(tmp_path_factory, "mgan", num_generators=3)


def _served(run_dir, version_dir, runtime, rows=4000):
    """``rows`` sampler rows through one runtime: numpy (samples, accepted)."""
    if runtime == "keras":
        sampler = Sampler(load_run(run_dir), Rejection.load(version_dir))
        out = {k: v.numpy() for k, v in tf.function(sampler.from_seed)(tf.range(rows, dtype=tf.int64) + 555).items()}
    elif runtime == "savedmodel":
        out = client.savedmodel_requester(version_dir, seed=3)(rows)
    else:
        out = client.onnx_requester(os.path.join(version_dir, "model.onnx"), seed=3)(rows)
    return out["samples"], out["accepted"]


def _raw_and_served(run_dir, version_dir, runtime):
    """``calibration.fidelity`` of the run's own samples and of the rows ``runtime`` serves, judged
    on a real draw the export never saw; and the rows' ``accepted``."""
    heldout = load_dataset("gaussians3", seed=99)
    judge = calibration.OutlierJudge(heldout)
    samples, accepted = _served(run_dir, version_dir, runtime)
    raw_samples, _ = load_run(run_dir).sample(len(samples), seed=4)
    return (calibration.fidelity(raw_samples, heldout, judge), calibration.fidelity(samples[accepted], heldout, judge),
            accepted)


@pytest.fixture(scope="module")
def exported_version(outlier_run, tmp_path_factory):
    return writer.export_run(outlier_run, str(tmp_path_factory.mktemp("base")))


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["keras", "savedmodel", "onnx"])
def test_served_samples_have_fewer_outliers_and_keep_mode_shares(outlier_run, exported_version, runtime):
    """The default export (k-NN manifold rule calibrated to 0.1% outliers) on a model that makes
    outliers: served samples are judged on a real draw the export never saw."""
    raw, served, accepted = _raw_and_served(outlier_run, exported_version, runtime)
    assert raw["outlier_rate"] >= 0.005, f"the test needs a model that makes outliers: {raw}"
    assert accepted.mean() >= 0.95
    assert served["outlier_rate"] < raw["outlier_rate"] and served["outlier_rate"] <= 0.004, (raw, served)
    assert served["mode_tv"] <= raw["mode_tv"] + 0.02, (raw, served)
    assert served["modes_covered"] == raw["modes_covered"]


@pytest.fixture(scope="module")
def bridging_gan_run(tmp_path_factory):
    """A small one-generator GAN on gaussians3 trained briefly: its one continuous generator
    bridges the three modes, and its sampler routes rows by data region."""
    return _short_run(tmp_path_factory, "gan")


@pytest.mark.slow
def test_a_lone_generator_bridging_the_modes_is_served_within_the_share_bound_and_its_card_says_so(
        bridging_gan_run, tmp_path):
    """Rows routed by data region: calibration bounds how far the shares of the data's connected
    pieces (here the three modes, each a union of the 8 cells) move from the data's, so a threshold
    may move mass between the cells of one mode but not between modes. This GAN puts about a fifth
    of its samples on the bridges between modes and its mode shares are off (TV about 0.13): no
    threshold removes every bridge sample without moving a mode's share past the bound (measured:
    served outliers 0.049, TV 0.135 -> 0.153). Served through the ONNX graph and judged on a real
    draw the export never saw, most outliers go, every mode stays within the bound, and the card
    says the target was missed, why, and what is served."""
    version = writer.export_run(bridging_gan_run, str(tmp_path / "export"), formats=("onnx",))
    card = client.read_card(version)
    found = card["rejection"]["calibration"]
    assert len(found["region_pieces"]) == strata.REGIONS and len(set(found["region_pieces"])) == 3, found
    raw, served, accepted = _raw_and_served(bridging_gan_run, version, "onnx")
    assert raw["outlier_rate"] >= 0.05 and raw["modes_covered"] == 3, f"the test needs a generator that bridges the modes: {raw}"
    assert accepted.mean() >= 0.95
    assert served["outlier_rate"] <= raw["outlier_rate"] / 3 and served["modes_covered"] == 3, (raw, served)
    # The bound plus the sampling noise of 4000 rows.
    assert served["mode_tv"] <= raw["mode_tv"] + calibration.MAX_SHARE_SHIFT + 0.015, (raw, served)
    if served["outlier_rate"] > found["outlier_target"]:
        assert not found["target_met"] and found["limited_by"] == [calibration.LIMIT_SHARE_BOUND], found
    assert abs(card["measured"]["accepted"]["outlier_rate"] - served["outlier_rate"]) <= 0.02, (card["measured"], served)


def test_region_fallback_keeps_shares_within_the_bound():
    """Two data regions of equal share; 60% of region 1's candidates are outliers scoring below every
    inlier. Removing them leaves region 1 an acceptance of 0.4, so with 8 candidates about 13% of
    its rows find no passing candidate of their own region and fall back to region 0: a share shift
    above the bound, so 8 candidates cannot meet the target; doubling the candidates can, and the
    chosen threshold then removes the outliers with the shift within the bound."""
    rng = np.random.default_rng(1)
    n = 20_000
    region = np.repeat([0, 1], n // 2)
    outlier = (region == 1) & (rng.random(n) < 0.6)
    scores = np.where(outlier, rng.uniform(0.0, 0.5, n), rng.uniform(0.5, 1.0, n))
    eight = calibration.choose_threshold(scores, outlier, region, 2, candidates=8, matched=True, target=0.001,
                                         fallback=True)
    assert not eight.target_met and eight.expected_share_shift <= calibration.MAX_SHARE_SHIFT
    m, found = calibration.choose_candidates_and_threshold(scores, outlier, region, 2, start=8, matched=True,
                                                           target=0.001, fallback=True)
    assert m > 8 and found.target_met and found.threshold > 0.49  # the loosest: a few outliers pass
    assert found.expected_share_shift <= calibration.MAX_SHARE_SHIFT


def _region_draw(shares, outlier_rates, outlier_scores=(0.0, 0.5), inlier_scores=None):
    """Candidates of a model routed by region: ``draw(shape, rng)`` -> (region, outlier, score); a
    region's outliers score in ``outlier_scores``, its inliers in ``inlier_scores[region]``
    (default [0.5, 1) everywhere)."""
    inlier_scores = inlier_scores or [(0.5, 1.0)] * len(shares)

    def draw(shape, rng):
        region = rng.choice(len(shares), shape, p=shares)
        outlier = rng.random(shape) < np.asarray(outlier_rates)[region]
        low, high = np.asarray(inlier_scores, float).T
        scores = np.where(outlier, rng.uniform(*outlier_scores, shape), rng.uniform(low[region], high[region]))
        return region, outlier, scores
    return draw


def _chosen_routes(routes, passing):
    """The sampler's rule on candidates' ``routes`` (rows, m): a row's own (first candidate's)
    route's passing candidates first, else any passing one. Returns the accepted rows' routes."""
    own = passing & (routes == routes[:, :1])
    passed = np.where(own.any(1, keepdims=True), own, passing)
    return routes[np.arange(len(routes)), passed.argmax(1)][passed.any(1)]


def _served_region_shares(draw, threshold, m, rng, rows=40_000):
    """The accepted rows' region shares under the sampler's rule, rows of ``m`` candidates."""
    region, _, scores = draw((rows, m), rng)
    chosen = _chosen_routes(region, scores >= threshold)
    return np.bincount(chosen, minlength=region.max() + 1) / len(chosen)


def test_rejecting_outliers_may_move_raw_shares_toward_the_datas_but_not_empty_a_region():
    """Routed by region, a blended model (HMoG) counts its between-mode outliers under the nearest
    region, so its raw shares are not its on-manifold samples'. Region 2 holds 70% of the candidates,
    five sevenths of them outliers; regions 0 and 1 15% each, all inliers; the data's shares are
    .3 / .3 / .4, as the inliers'. With 8 candidates about 15% of region 2's rows find no passing
    candidate of their own once the outliers go, and fall back: the raw shares move by ~0.1, toward
    the data's. Bounding the shift against the raw shares stops the threshold (target unmet); against
    the data's it meets the target, and the sampler's rule then serves shares nearer the data's."""
    rng = np.random.default_rng(4)
    data = np.array([0.3, 0.3, 0.4])
    draw = _region_draw([0.15, 0.15, 0.7], [0.0, 0.0, 5 / 7])
    region, outlier, scores = draw(20_000, rng)
    options = dict(candidates=8, matched=True, target=0.001, fallback=True)
    raw_bound = calibration.choose_threshold(scores, outlier, region, 3, **options)
    assert not raw_bound.target_met and raw_bound.threshold < 0.45, raw_bound
    found = calibration.choose_threshold(scores, outlier, region, 3, data_shares=data, **options)
    assert found.target_met and found.threshold > 0.49 and found.expected_share_shift > 0.05, found
    served = _served_region_shares(draw, found.threshold, 8, rng)
    raw = np.bincount(region, minlength=3) / len(region)
    assert M.total_variation(served, raw) > 0.05 and M.total_variation(served, data) < M.total_variation(raw, data)


def test_a_region_the_data_holds_is_not_emptied_for_others_moving_toward_the_data():
    """Three regions: the data's shares .1 / .2 / .7, the model's raw .1 / .5 / .4. Region 1's
    candidates are 80% outliers, and every candidate of region 0 scores below them (on the
    manifold, but a score the rule ranks low). A threshold above region 0's scores would bring
    regions 1 and 2 nearer the data's (.0 / .32 / .68), and the total distance to the data's would
    fall; but region 0 would be emptied. Only growth counts, so its 0.1 stays bounded: calibration
    keeps a threshold that lets region 0's candidates through, and the sampler keeps the region.
    The same where the model over-fills region 0, so that emptying it grows no gap."""
    rng = np.random.default_rng(5)
    low_scoring_region_0 = dict(outlier_scores=(0.3, 0.5), inlier_scores=[(0.0, 0.3), (0.5, 1.0), (0.5, 1.0)])
    cases = {"region 1 over-filled by outliers": ([0.1, 0.5, 0.4], [0.0, 0.8, 0.0], [0.1, 0.2, 0.7]),
             # Emptying region 0 (raw .25, data .1) shrinks every region's gap: the region floor holds it.
             "region 0 over-filled": ([0.25, 0.375, 0.375], [0.0, 0.2, 0.0], [0.1, 0.45, 0.45])}
    for case, (raw, outlier_rates, data) in cases.items():
        draw = _region_draw(raw, outlier_rates, **low_scoring_region_0)
        region, outlier, scores = draw(20_000, rng)
        found = calibration.choose_threshold(scores, outlier, region, 3, candidates=8, matched=True, target=0.001,
                                             fallback=True, data_shares=data)
        assert not found.target_met and found.threshold < 0.3, (case, found)
        # The rows are all answered: the share bound, not the row floor, is what the card must name.
        assert found.limited_by == (calibration.LIMIT_SHARE_BOUND,) and found.expected_min_row_acceptance > 0.99
        assert "share bound" in calibration.unmet_reason(found) and "row floor" not in calibration.unmet_reason(found)
        served = _served_region_shares(draw, found.threshold, 8, rng)
        assert served[0] > 0.08, (case, served, found)



def test_mass_moving_between_regions_of_one_connected_piece_is_free():
    """Regions 0 and 1 are one mode's cells (one piece), region 2 another mode. The data's shares
    are .25 / .25 / .5, the model's raw .4 / .3 / .3, 60% of region 1's candidates outliers. Rejecting
    them empties region 1 toward region 0 and region 2: region 1's gap to the data's grows, so a
    bound on the regions refuses the threshold (target unmet, the share bound named); but the
    pieces' shares move toward the data's (.7 / .3 raw against .5 / .5), so bounded on the pieces
    the target is met, and the sampler's rule serves pieces nearer the data's than raw."""
    rng = np.random.default_rng(6)
    data, pieces = np.array([0.25, 0.25, 0.5]), np.array([0, 0, 1])
    draw = _region_draw([0.4, 0.3, 0.3], [0.0, 0.6, 0.0])
    region, outlier, scores = draw(20_000, rng)
    options = dict(candidates=8, matched=True, target=0.001, fallback=True, data_shares=data)
    by_region = calibration.choose_threshold(scores, outlier, region, 3, **options)
    assert not by_region.target_met and by_region.limited_by == (calibration.LIMIT_SHARE_BOUND,), by_region
    by_piece = calibration.choose_threshold(scores, outlier, region, 3, pieces=pieces, **options)
    assert by_piece.target_met and by_piece.threshold > 0.49 and by_piece.region_pieces == (0, 0, 1), by_piece
    served = _served_region_shares(draw, by_piece.threshold, 8, rng)
    in_piece = np.eye(2)[pieces]
    raw = np.bincount(region, minlength=3) / len(region)
    assert M.total_variation(served @ in_piece, data @ in_piece) < M.total_variation(raw @ in_piece, data @ in_piece)
    assert served[1] < raw[1] - 0.05, served  # the bound on the regions would have refused this


def test_a_piece_the_data_holds_is_not_emptied_whatever_its_regions():
    """The case above where a low-scoring region would be emptied, with that region its own piece and
    the other two joined: the bound between pieces holds as the bound between regions did."""
    rng = np.random.default_rng(5)
    draw = _region_draw([0.1, 0.5, 0.4], [0.0, 0.8, 0.0], outlier_scores=(0.3, 0.5),
                        inlier_scores=[(0.0, 0.3), (0.5, 1.0), (0.5, 1.0)])
    region, outlier, scores = draw(20_000, rng)
    found = calibration.choose_threshold(scores, outlier, region, 3, candidates=8, matched=True, target=0.001,
                                         fallback=True, data_shares=[0.1, 0.2, 0.7], pieces=[0, 1, 1])
    assert not found.target_met and found.threshold < 0.3 and found.limited_by == (calibration.LIMIT_SHARE_BOUND,)
    assert _served_region_shares(draw, found.threshold, 8, rng)[0] > 0.08


def test_connected_pieces_join_the_cells_of_one_mode_and_keep_the_modes_apart():
    """Three well-separated Gaussians cut into 8 k-means cells: the cells of each mode form one
    piece, and no piece spans two modes. One Gaussian alone is one piece, which would bound
    nothing, so every cell stays its own piece."""
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    mode = rng.choice(3, 6000, p=[0.5, 0.3, 0.2])
    x = centres[mode] + 0.3 * rng.standard_normal((6000, 2))
    regions = strata.fit_regions(x)
    pieces = strata.connected_pieces(x, regions)
    cell_mode = np.argmin(((regions[:, None] - centres[None]) ** 2).sum(-1), axis=1)
    assert len(set(cell_mode)) == 3 and len(set(pieces)) == 3, (cell_mode, pieces)
    assert all(len(set(pieces[cell_mode == m])) == 1 for m in range(3)), (cell_mode, pieces)
    one = rng.standard_normal((4000, 2))
    assert list(strata.connected_pieces(one, strata.fit_regions(one))) == list(range(strata.REGIONS))

def _inliers_and_outliers(route, bad_route, bad_rate, rng):
    """(outlier, scores): ``bad_rate`` of ``bad_route``'s candidates are outliers scoring in [0, 0.5),
    every other candidate scores in [0.5, 1)."""
    outlier = (route == bad_route) & (rng.random(route.shape) < bad_rate)
    return outlier, np.where(outlier, rng.uniform(0.0, 0.5, route.shape), rng.uniform(0.5, 1.0, route.shape))


def _simulated_shift(routes, bad_route, bad_rate, threshold, rng):
    """The sampler's rule on candidates' ``routes`` (rows, m), each row's candidates already within
    its group: its own route's passing candidates first, else any passing one. Returns the TV between
    the accepted rows' routes and the rows' own first routes (paired: no share noise of the draw)."""
    _, scores = _inliers_and_outliers(routes, bad_route, bad_rate, rng)
    chosen = _chosen_routes(routes, scores >= threshold)
    count = routes.max() + 1
    return M.total_variation(np.bincount(chosen, minlength=count), np.bincount(routes[:, 0], minlength=count))


def test_cell_fallback_within_the_generator_matches_a_simulated_sampler():
    """(generator, region) cells with the generator tied (MGAN): generator 0 spans cells 0 and 1,
    generator 1 cells 2 and 3, each a quarter of the candidates; 70% of cell 1's candidates are
    outliers scoring below every inlier. A cell-1 row's other candidates land in its cell half the
    time (share_cell / share_generator), so with 8 candidates ~22% of its rows find no passing one
    there and fall back to cell 0: a shift above the bound (with 16, ~6%: a shift of ~0.015).
    Calibration doubles the candidates until the target holds within it, and the shift it predicts
    is the one the sampler's rule gives on rows drawn as the sampler draws them."""
    rng = np.random.default_rng(2)
    cell = 2 * rng.integers(0, 2, 40_000) + rng.integers(0, 2, 40_000)
    outlier, scores = _inliers_and_outliers(cell, 1, 0.7, rng)
    options = dict(matched=True, target=0.001, fallback=True, groups=[0, 0, 1, 1], tied=True)
    eight = calibration.choose_threshold(scores, outlier, cell, 4, candidates=8, **options)
    assert not eight.target_met and eight.expected_share_shift <= calibration.MAX_SHARE_SHIFT, eight
    m, found = calibration.choose_candidates_and_threshold(scores, outlier, cell, 4, start=8, **options)
    assert m == 16 and found.target_met and found.expected_share_shift <= calibration.MAX_SHARE_SHIFT, found

    rows = 40_000
    cells = 2 * rng.integers(0, 2, rows)[:, None] + rng.integers(0, 2, (rows, m))  # a row's cells share its generator
    shift = _simulated_shift(cells, 1, 0.7, found.threshold, rng)
    assert shift > 0.005 and abs(shift - found.expected_share_shift) <= 0.002, (shift, found)


def test_region_fallback_of_z_routed_rows_matches_a_simulated_sampler():
    """Two data regions routed by region (one group; candidates drawn independently, as for a lone
    generator): region 0 holds 85% of the candidates and half of them are outliers. With 8
    candidates ~1% of region 0's rows find no passing candidate of their own; only those whose other
    candidates include a passing one move to region 1 (~0.9%: the rest are rows that fail), which
    the calibration must count given that no other candidate passed on the row's own route."""
    rng = np.random.default_rng(3)
    region = (rng.random(40_000) < 0.15).astype(int)
    outlier, scores = _inliers_and_outliers(region, 0, 0.5, rng)
    found = calibration.choose_threshold(scores, outlier, region, 2, candidates=8, matched=True, target=0.001,
                                         fallback=True)
    assert found.target_met and found.threshold > 0.49, found
    rows = 200_000
    shift = _simulated_shift((rng.random((rows, 8)) < 0.15).astype(int), 0, 0.5, found.threshold, rng)
    assert shift > 0.004 and abs(shift - found.expected_share_shift) <= 0.0008, (shift, found)


def test_the_share_bound_and_every_generators_floor_hold_however_small_its_cells():
    """Cells split each generator's rows eight ways, so a cell can hold under 1% of the draws
    (``MIN_SHARE``) and escape the per-route floor. The shift bound still holds (16 generators x 8
    regions, regions 0-2 mostly outliers everywhere: rejecting them would move 0.34 of the rows), and
    so does a small generator's own floor (shares 0.96 / 0.02 / 0.02, generator 1's candidates 90%
    outliers: with 8 candidates a threshold removing them would leave it 1 - 0.1^8 of its rows at
    best, so the rows it keeps decide the candidate count)."""
    rng = np.random.default_rng(0)
    n, regions = 20_000, 8
    generator, region = rng.integers(0, 16, n), rng.integers(0, regions, n)
    outlier, scores = _inliers_and_outliers((region < 3).astype(int), 1, 0.9, rng)
    options = dict(matched=True, fallback=True, tied=True, target=0.001)
    found = calibration.choose_threshold(scores, outlier, generator * regions + region, 16 * regions, candidates=8,
                                         groups=np.repeat(np.arange(16), regions), **options)
    assert not found.target_met and found.expected_share_shift <= calibration.MAX_SHARE_SHIFT, found

    generator = rng.choice(3, n, p=[0.96, 0.02, 0.02])
    outlier, scores = _inliers_and_outliers(generator, 1, 0.9, rng)
    cell = generator * regions + region
    m, found = calibration.choose_candidates_and_threshold(scores, outlier, cell, 3 * regions, start=8,
                                                           groups=np.repeat(np.arange(3), regions), **options)
    kept = (scores[generator == 1] >= found.threshold).mean()
    assert found.target_met and 1 - (1 - kept) ** m >= 0.99, (m, kept, found)


@register_rule
class RejectsRegionZero(Rule):
    """Test rule: candidates in data region 0 pass with probability 0.3, all others pass. Fitted
    (for ``calibrate``), its regions are the ones calibration fits on the same real data."""

    name = "test_rejects_region_zero"
    extra_noise = {"test_u": ((), "uniform01")}
    needs_real = True

    def fit(self, model, real):
        return {"regions": strata.fit_regions(real)}

    def score(self, model, constants, noise, samples, generator):
        in_zero = tf.equal(strata.nearest_region(samples, constants["regions"]), 0)
        return tf.where(in_zero, 0.3 - noise["test_u"], 1.0)


def _region_shares(samples, regions):
    return np.bincount(strata.nearest_region(samples, regions).numpy(), minlength=len(regions)) / len(samples)


@pytest.mark.parametrize("method", ["mog", "mgan"])
def test_rows_keep_the_data_regions_shares_under_rejection(method):
    """A rule that rejects 70% of one data region's candidates: with regions, accepted rows keep the
    raw model's region shares (MoG: the region is the row's route; MGAN: preferred among its
    generator's passing candidates); without them that region's share falls. With 64 candidates a
    region of share ~0.15 finds a passing candidate of its own in all but ~5% of its rows."""
    keras.utils.set_random_seed(0)
    model = build_model(method, tiny_options(method))
    raw, _ = model.generate(model.sample_noise(20_000, tf.constant([5, 0], tf.int64)))
    regions = strata.fit_regions(raw.numpy(), count=4)
    raw_shares = _region_shares(raw, regions)

    def served_shares(with_regions):
        rejection = Rejection(RejectsRegionZero.name, 0.0, 64, "test", {"regions": regions},
                              regions=regions if with_regions else None)
        out = tf.function(Sampler(model, rejection).from_seed)(tf.range(ROWS, dtype=tf.int64))
        return _region_shares(out["samples"][out["accepted"]], regions)

    kept, plain = served_shares(True), served_shares(False)
    assert M.total_variation(kept, raw_shares) <= 0.03, (kept, raw_shares)
    if method == "mog":  # every MGAN generator may serve one region alone, leaving nothing to skew
        assert M.total_variation(plain, raw_shares) > 0.05, (plain, raw_shares)


class RegionZeroIsOutlying:
    """Test judge: every sample in data region 0 is an outlier."""

    reference_rate = 0.0

    def __init__(self, regions):
        self.regions = regions

    def __call__(self, samples):
        return strata.nearest_region(samples, self.regions).numpy() == 0


@pytest.mark.parametrize("method", ["gan", "mgan", "npgan"])
def test_generators_keep_the_data_regions_shares_under_a_calibrated_threshold(method):
    """A generator that spans several regions would lose a region whose samples all fail: a threshold
    meeting the outlier target by dropping it moves that region's share to the others (served ring8
    GAN: mode-share TV 0.49 against 0.02 raw). Calibration routes a lone generator's rows by region
    and several generators' rows by (generator, region) cell (tied: MGAN; matched on z: NPGAN),
    bounding the routes' share shift: here no threshold meets the target within the bound, so it says
    so and keeps the region, and the served rows keep the raw shares."""
    keras.utils.set_random_seed(0)
    model = build_model(method, tiny_options(method))
    model.rejection_rules = (*model.rejection_rules, RejectsRegionZero.name)  # this model only
    raw, _ = model.generate(model.sample_noise(20_000, tf.constant([5, 0], tf.int64)))
    raw = raw.numpy()
    regions = strata.fit_regions(raw)
    rejection = calibrate(model, RejectsRegionZero.name, real=raw, judge=RegionZeroIsOutlying(regions))
    found = rejection.calibration
    assert not found.target_met, found
    # Routed by region, the bound is taken over the data's connected pieces, recorded on the card.
    assert (found.region_pieces is not None) == (method == "gan"), found
    if method == "gan":
        assert len(found.region_pieces) == strata.REGIONS and found.region_pieces[0] == 0, found
    rows = 2 * ROWS
    out = tf.function(Sampler(model, rejection).from_seed)(tf.range(rows, dtype=tf.int64))
    served = _region_shares(out["samples"][out["accepted"]], regions)
    prior, _ = model.generate(model.sample_noise(100_000, tf.constant([6, 0], tf.int64)))
    raw_shares = _region_shares(prior, regions)
    # The bound plus sampling noise (8000 rows); dropping region 0 would move its whole share (~0.15).
    assert raw_shares[0] > 0.05 and M.total_variation(served, raw_shares) <= 0.035, (served, raw_shares, found)


def test_a_generator_on_no_mode_is_not_held_to_the_row_floor():
    """Four generators drawn with equal probability (MGAN's fixed choice), ids 0, 2, 5 and 7;
    generator 7 sits on no mode (every candidate an outlier). Holding its rows to the floor serves
    them off the manifold (a quarter of the rows); it keeps no mode's share, so calibration exempts
    it, meets the target with a quarter of the rows unanswered, and names it on the card. The same
    with (generator, region) cells. A generator 95% off the manifold still keeps its rows."""
    rng = np.random.default_rng(6)
    n = 20_000
    generator = rng.choice([0, 2, 5, 7], n)
    outlier, scores = _inliers_and_outliers(generator, 7, 1.0, rng)
    found = calibration.choose_threshold(scores, outlier, generator, 8, candidates=8, matched=False, target=0.001)
    assert found.target_met and found.threshold > 0.49 and found.off_manifold_generators == (7,), found
    assert found.expected_row_acceptance == pytest.approx(0.75, abs=0.02), found

    region = rng.integers(0, 2, n)
    cells = calibration.choose_threshold(scores, outlier, generator * 2 + region, 16, candidates=8, matched=True,
                                         target=0.001, fallback=True, groups=np.repeat(np.arange(8), 2), tied=True)
    assert cells.target_met and cells.off_manifold_generators == (7,), cells
    assert cells.expected_row_acceptance == pytest.approx(0.75, abs=0.02), cells

    outlier, scores = _inliers_and_outliers(generator, 7, 0.95, rng)  # mostly, not entirely, off the manifold
    held = calibration.choose_threshold(scores, outlier, generator, 8, candidates=8, matched=False, target=0.001)
    kept = (scores[generator == 7] >= held.threshold).mean()
    assert held.off_manifold_generators == () and 1 - (1 - kept) ** 8 >= 0.99, (kept, held)


@register_rule
class PrefersTheLeft(Rule):
    """Test rule: a candidate scores 10 - x, so the farther right, the worse."""

    name = "test_prefers_the_left"

    def score(self, model, constants, noise, samples, generator):
        return 10.0 - samples[:, 0]


class FarRightIsOutlying:
    """Test judge: every sample right of x = 25 is an outlier."""

    reference_rate = 0.0

    def __call__(self, samples):
        return np.asarray(samples)[:, 0] > 25.0


def test_the_exported_sampler_leaves_a_generator_on_no_mode_unanswered():
    """MGAN's four generators drawn with equal probability (trunks not shared, so one can be moved
    alone); generator 3 is moved 50 to the right of the data the other three drew, so every one of
    its samples is an outlier. Through the sampler's graph: the rows that draw it go unanswered (a
    quarter), hardly any of its samples is served, and the other three keep their equal shares.
    Holding it to the row floor would serve its rows off the manifold, or miss the target."""
    keras.utils.set_random_seed(0)
    model = build_model("mgan", {**tiny_options("mgan"), "shared_trunk": False})  # its own output layer
    model.rejection_rules = (*model.rejection_rules, PrefersTheLeft.name)  # this model only
    raw, generator = model.generate(model.sample_noise(20_000, tf.constant([5, 0], tf.int64)))
    real = raw.numpy()[generator.numpy() < 3]
    _, last_bias = model.generators.trunk_layers[-1]
    last_bias.assign(last_bias + np.array([[0.0, 0.0]] * 3 + [[50.0, 0.0]], np.float32))

    rejection = calibrate(model, PrefersTheLeft.name, real=real, judge=FarRightIsOutlying())
    found = rejection.calibration
    assert found.target_met and found.off_manifold_generators == (3,), found
    out = tf.function(Sampler(model, rejection).from_seed)(tf.range(2 * ROWS, dtype=tf.int64))
    accepted = out["accepted"].numpy()
    served, served_generator = out["samples"].numpy()[accepted], out["generator"].numpy()[accepted]
    assert accepted.mean() == pytest.approx(0.75, abs=0.03), accepted.mean()
    # The loosest threshold meeting the target may let a few of generator 3's candidates through.
    assert FarRightIsOutlying()(served).mean() <= 0.002 and (served_generator == 3).mean() <= 0.002
    shares = np.bincount(served_generator, minlength=4)[:3] / len(served_generator)
    assert M.total_variation(shares, np.full(3, 1 / 3)) <= 0.03, shares
