"""Calibrating a rejection rule to an outlier target, and measuring what a sampler serves.

Outliers are judged on held-back real data the graph never saw (``OutlierJudge``): where the modes
are known (the toy mixtures), paper 000's off-manifold test; otherwise outside every k-NN ball of
the held-back data (the improved-precision manifold of Kynkaanniemi et al. 2019).

``choose_threshold`` scans thresholds on the model's own candidates and keeps the loosest one whose
*served* outlier rate meets the target (its 95% upper confidence bound does) while every generator keeps its row acceptance: with ``m``
candidates and routing kept (a row's generator fixed, only z redrawn), generator i's row succeeds
with probability r_i = 1 - (1 - a_i)^m (a_i: its candidates' acceptance), and the served rate is
the r_i-weighted mix of the generators' accepted outlier rates. Keeping every r_i high is what keeps
the served shares on the prior's; a generator on no mode (``OFF_MANIFOLD_GENERATOR``) keeps no
mode's share, so its r_i may fall instead.
"""
import dataclasses

import numpy as np
import tensorflow as tf
from scipy import stats
from scipy.spatial import cKDTree

from tfgan_mix import constants
from tfgan_mix import metrics as M
from tfgan_mix.export.rules import Manifold, ball_ratio, knn_balls

DEFAULT_OUTLIER_TARGET = 0.001
DEFAULT_ROW_ACCEPTANCE = 0.99
CALIBRATION_JUDGES = 3  # calibration judges outliers on this many disjoint parts (see OutlierJudge)
CALIBRATION_DRAWS = 20_000
# The unknown-modes judge's k: the smallest of these whose k-NN balls leave at most JUDGE_REAL_RATE
# of held-back real points outside (see OutlierJudge); 3 is Kynkaanniemi et al.'s default.
JUDGE_NEIGHBOURS = (3, 4, 5, 6, 8, 12, 16)
JUDGE_REAL_RATE = 0.05
MIN_SHARE = 0.01  # routes (generators, cells) and generators drawn less than this skip the row floor
CONFIDENCE = 0.95  # the served outlier rate's upper bound that must meet the target
# Where rows are routed by (generator, region) cell, the most the cells' shares may move (TV, served
# vs raw); where they are routed by data region and the data's region shares are known, the most
# the served regions' shares may move away from the data's, summed over the regions that get farther
# than the raw draw's (half the sum, as TV), and the most any region may fall below the smaller of
# its raw and its data share: "without skewing modes" is a constraint like the row floor; the
# outlier target is met within both or reported unmet.
MAX_SHARE_SHIFT = 0.02
LIMIT_ROW_FLOOR, LIMIT_SHARE_BOUND = "row floor", "share bound"  # names in ``Calibration.limited_by``
# A generator with at least this share of its calibration candidates judged outliers sits on no mode:
# its rows keep no mode's share, so it is exempt from the row floor and the share bound, and its
# rows may go unanswered instead of being served off the manifold (some route of MIN_SHARE stays held).
OFF_MANIFOLD_GENERATOR = 0.99


class OutlierJudge:
    """Which samples are outliers, judged from held-back real data (a ``tfgan_mix.data.Dataset``).

    Known modes: paper 000's off-manifold test. ``splits`` > 1 makes that judge stricter for
    calibration (an outlier for any of the judges built on disjoint parts): the test depends on the
    draw's farthest points, so a threshold calibrated against one draw's judge passed more outliers
    than an independent draw's judge found.

    Unknown modes: outside every k-NN ball of the held-back data. That judge flags some real points
    too (``reference_rate``: its rate on held-back points that did not make the balls), so no
    sampler can be held to a lower rate than real data; calibration's target is at least that. The
    rate grows with the dimension at a fixed k, and a judge that calls many real points outliers
    lets a sampler serving as many of its "outliers" as real data does keep off-manifold samples
    too (measured on own mixture10d, 10-D, HMoG seeds 0-2: k = 3 called 0.14-0.17 of real points
    outliers and the served samples were 0.7-3.3% off the manifold by the known centres). So k is
    the smallest of ``JUDGE_NEIGHBOURS`` whose rate on the held-back points is at most
    ``JUDGE_REAL_RATE`` (k = 3 on the 2-D and 3-D mixtures, 8-12 on mixture10d). Each held-back part
    chooses its own k, so calibration's judge and the card's measurement may differ."""

    def __init__(self, heldout, splits=1):
        x = heldout.x.reshape(len(heldout.x), -1)
        self.reference_rate = 0.0
        self.neighbours = None  # the k of the k-NN judge (unknown modes only)
        if heldout.centres is not None and heldout.labels is not None:
            parts = np.array_split(np.random.default_rng(0).permutation(len(x)), splits)
            self.definition = ("off-manifold: farther from every mode centre than that mode's farthest "
                               "held-back real point (paper 000, section 4.1)")
            if splits > 1:
                self.definition += f"; an outlier for any of {splits} judges on disjoint parts"
            self._judges = [lambda s, i=i: M.off_manifold_mask(s, x[i], heldout.labels[i], heldout.centres)
                            for i in parts]
            return
        order = np.random.default_rng(0).permutation(len(x))
        balls_from, reference = order[:Manifold.MAX_BALLS], order[Manifold.MAX_BALLS:]
        if len(reference) == 0:  # a small draw: half makes the balls, half measures the floor
            balls_from, reference = np.array_split(order, 2)
        points = x[balls_from].astype(np.float64)
        tree = cKDTree(points)
        for k in [k for k in JUDGE_NEIGHBOURS if k < len(points)] or [1]:
            balls = knn_balls(points, k, tree)
            self._judges = [lambda s, balls=balls: ball_ratio(s, balls["centres"], balls["radii"]) > 1.0]
            self.reference_rate = float(self(x[reference]).mean())
            if self.reference_rate <= JUDGE_REAL_RATE:
                break
        self.neighbours = k
        self.definition = (f"outside every k-NN ball (k={k}: the smallest of {JUDGE_NEIGHBOURS} calling at most "
                           f"{JUDGE_REAL_RATE:g} of held-back real points outliers) of {len(balls_from)} "
                           "held-back real examples (improved precision, Kynkaanniemi et al. 2019)")

    def __call__(self, samples):
        samples = np.asarray(samples)
        flat = samples.reshape(len(samples), -1)
        return np.any([judge(flat) for judge in self._judges], axis=0)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What ``choose_threshold`` found; written to the model card."""

    threshold: float
    outlier_target: float  # the target calibrated to: the one asked for, or the judge's real-data rate if higher
    row_acceptance_floor: float
    expected_outlier_rate: float  # served, at the threshold, on the calibration draws
    expected_min_row_acceptance: float
    target_met: bool
    draws: int
    expected_share_shift: float | None = None  # routes' shares, served vs raw (TV), where rows fall back
    # By-region routes with the data's shares: how far the served shares of the data's connected pieces
    # moved away from the data's, over the pieces that got farther than the raw draw's (half the sum, as TV).
    expected_data_gap_growth: float | None = None
    # Generators exempt from the floor and the share bound: >= OFF_MANIFOLD_GENERATOR of them outliers.
    off_manifold_generators: tuple = ()
    expected_row_acceptance: float | None = None  # all rows answered, exempt generators' included
    # Target unmet: what refused the nearest stricter threshold that would serve fewer outliers
    # (LIMIT_ROW_FLOOR, LIMIT_SHARE_BOUND or both); empty when none would (the scores cannot separate them).
    limited_by: tuple = ()
    # Routed by region: the data's connected piece of each region (``strata.connected_pieces``), whose
    # shares the data-share bound is taken over.
    region_pieces: tuple | None = None

    def card(self):
        return dataclasses.asdict(self)


def unmet_reason(found):
    """Why ``found`` (a ``Calibration``) did not meet its target, in words for the card and warnings."""
    if not found.limited_by:
        return "no threshold serves fewer outliers"
    names = {LIMIT_ROW_FLOOR: f"the row floor (row acceptance >= {found.row_acceptance_floor:g})",
             LIMIT_SHARE_BOUND: f"the share bound (shares of routes or of the data's pieces moved by "
                                f"<= {MAX_SHARE_SHIFT:g})"}
    return "a stricter threshold would break " + " and ".join(names[name] for name in found.limited_by)


def row_acceptance(acceptance, shares, candidates, matched):
    """P(a row of generator i finds an accepted candidate among ``candidates``).

    ``matched``: the row's generator comes from its first candidate and another candidate counts
    only when it routes to the same generator (probability ``shares``: ~ share_i), as for
    z-dependent routers and for data regions."""
    a = np.asarray(acceptance)
    if not matched:
        return 1.0 - (1.0 - a) ** candidates
    return 1.0 - (1.0 - a) * (1.0 - np.asarray(shares) * a) ** (candidates - 1)


def choose_threshold(scores, outlier, route, routes, *, candidates, matched,
                     target=DEFAULT_OUTLIER_TARGET, floor=DEFAULT_ROW_ACCEPTANCE, fallback=False,
                     groups=None, tied=False, data_shares=None, pieces=None):
    """The loosest threshold on ``scores`` meeting ``target`` with every held generator's row acceptance
    >= ``floor``; when none meets the target, the floor-keeping threshold with the fewest served
    outliers (``target_met`` False). Inputs are per-candidate numpy arrays of one calibration draw;
    ``route`` is each candidate's route (its generator, region or cell), one of ``routes``.

    ``fallback``: ``route`` is a route with data regions in it (a region, or a (generator,
    region) cell) and a row that finds no passing candidate on its own route takes a passing one of
    its route's group: ``groups`` gives each route's group (the cell's generator; by default one
    group, so any passing candidate). Then the floor holds for every route's and every group's rows
    (those with at least ``MIN_SHARE`` of the draws, and not of a generator on no mode), and the
    routes' shares, which the fallback rows move, may move by at most ``MAX_SHARE_SHIFT`` (TV;
    recorded as ``expected_share_shift``), unless ``data_shares`` replaces that bound.
    ``tied``: a row's candidates all lie in its group (the generator drawn from ``u`` alone), so
    another candidate shares the row's route with probability share_route / share_group rather
    than share_route.

    ``data_shares`` (``routes``,): routes are data regions and these are the held-back data's
    shares of them. Then the bound is on how far the served shares move away from the data's: per
    region, the growth of |served - data| over |raw - data|, where positive, half summed (recorded
    as ``expected_data_gap_growth``; never more than the shift). Raw shares count every candidate,
    outliers included under their nearest region: where a model blends modes (HMoG), rejecting its
    outliers moves those shares toward the data's (measured: gaussians5, HMoG seed 2, 39% raw
    outliers), and holding the raw shares kept outliers for nothing. Beside that, no region may fall
    more than ``MAX_SHARE_SHIFT`` below the smaller of its raw and its data share (the growth alone
    would let a region the model over-fills to twice the data's share be emptied), so a region
    both the data and the model hold keeps it. The data's shares are estimated from the held-back
    draw: 5,000-10,000 points leave them about 0.01-0.02 (TV) off over 8 regions, the size of the
    bound. ``pieces`` (``routes``,): the data's connected piece of each region
    (``strata.connected_pieces``); the growth and the floor are then taken over the pieces' shares
    (a piece's share is its regions'), so mass moving between the regions of one piece is free.
    By default every region is its own piece."""
    scores, outlier, route = np.asarray(scores), np.asarray(outlier, bool), np.asarray(route)
    groups = np.zeros(routes, int) if groups is None else np.asarray(groups)
    # Only the routes drawn at all (most (generator, region) cells are empty): the same figures.
    used, route = np.unique(route, return_inverse=True)
    one_hot = np.eye(len(used))[route]  # (N, K)
    shares = one_hot.mean(0)
    in_group = np.eye(groups.max() + 1)[groups[used]]  # (K, G): route -> group
    group_share = shares @ in_group  # (G,)
    # Tied rows draw every candidate from their group; other rows from all of the draw's.
    pool = in_group @ group_share if tied else np.ones(len(used))  # (K,) as a share of the draw
    match = shares / np.maximum(pool, 1e-12)
    off_generators, dead = _off_manifold_generators(one_hot, outlier, shares, in_group, used, fallback)
    held = (shares >= MIN_SHARE) & ~dead
    # Every distinct score is a candidate threshold: with candidates in descending score order, the
    # ones passing threshold s_(i) are the first i + 1, so cumulative sums count them for all at once.
    order = np.argsort(-scores, kind="stable")
    descending = scores[order]
    last_of_ties = np.r_[descending[1:] != descending[:-1], True]
    per_route_passed = np.cumsum(one_hot[order], axis=0)[last_of_ties]  # (T, K), T distinct thresholds
    per_route_outliers = np.cumsum(one_hot[order] * outlier[order, None], axis=0)[last_of_ties]
    thresholds = descending[last_of_ties]
    acceptance = per_route_passed / np.maximum(one_hot.sum(0), 1)
    rows = row_acceptance(acceptance, match, candidates, matched)  # (T, K)
    outlier_rate = per_route_outliers / np.maximum(per_route_passed, 1)
    weight = shares * rows
    shift = np.zeros(len(thresholds))
    min_rows = np.ones(len(thresholds))
    if fallback:
        weight, rows = _with_fallback(shares, rows, acceptance, match, per_route_passed, candidates, in_group,
                                      pool * len(route))
        live_weight, live_shares = weight[:, ~dead], shares[~dead]  # off-manifold generators keep no share
        shift = 0.5 * np.abs(live_weight / np.maximum(live_weight.sum(1, keepdims=True), 1e-12)
                             - live_shares / live_shares.sum()).sum(1)
        # A group's rows (a generator's, for cells) keep the floor too, whatever its cells' shares.
        group_rows = (weight @ in_group) / np.maximum(group_share, 1e-12)
        group_held = (group_share >= MIN_SHARE) & ~(in_group.T @ dead > 0)
        min_rows = np.where(group_held, group_rows, 1.0).min(1)
    gap_growth = None
    moved = shift
    if fallback and data_shares is not None:
        data_shares = np.asarray(data_shares, float) / np.sum(data_shares)
        served_shares = weight / np.maximum(weight.sum(1, keepdims=True), 1e-12)
        pieces = np.arange(routes) if pieces is None else np.asarray(pieces)
        in_piece = np.eye(pieces.max() + 1)[pieces]  # (routes, P): region -> piece
        served_pieces, raw_pieces = served_shares @ in_piece[used], shares @ in_piece[used]
        data_pieces = data_shares @ in_piece  # pieces the draw never reached add nothing (zero on both sides)
        gap_growth = data_gap_growth(served_pieces, raw_pieces, data_pieces)
        moved = np.maximum(gap_growth, region_deficit(served_pieces, raw_pieces, data_pieces))
    min_rows = np.minimum(min_rows, np.where(held, rows, 1.0).min(1))
    served = (weight * outlier_rate).sum(1) / np.maximum(weight.sum(1), 1e-12)
    # The target must hold with 95% confidence, not just on this draw: the one-sided Clopper-Pearson
    # bound on the served rate, from the outliers counted among the passing candidates.
    passing = per_route_passed.sum(1)
    bound = stats.beta.ppf(CONFIDENCE, served * passing + 1, np.maximum(passing - served * passing, 1))
    keeps_floor = (min_rows >= floor) & (moved <= MAX_SHARE_SHIFT)  # the shares' bound is a floor of its own
    meets = keeps_floor & (bound <= target)
    limited_by = ()
    if meets.any():
        best = int(np.flatnonzero(meets)[-1])  # thresholds descend: the last is the loosest
    else:
        floor_ok = np.flatnonzero(keeps_floor)  # never empty: the lowest threshold accepts everything
        best = int(floor_ok[served[floor_ok] == served[floor_ok].min()][-1])  # the loosest of the fewest
        fewer = np.flatnonzero(served < served[best])  # each refused by a bound
        if fewer.size:
            nearest = int(fewer[np.argmin(np.abs(fewer - best))])
            limited_by = tuple(name for name, broken in ((LIMIT_ROW_FLOOR, min_rows[nearest] < floor),
                                                         (LIMIT_SHARE_BOUND, moved[nearest] > MAX_SHARE_SHIFT))
                               if broken)
    return Calibration(float(thresholds[best]), float(target), float(floor), float(served[best]),
                       float(min_rows[best]), bool(meets[best]), int(len(scores)),
                       float(shift[best]) if fallback else None,
                       None if gap_growth is None else float(gap_growth[best]), off_generators,
                       float(weight.sum(1)[best]), limited_by,
                       None if gap_growth is None else tuple(int(p) for p in pieces))


def _off_manifold_generators(one_hot, outlier, shares, in_group, used, fallback):
    """(generator ids, (K,) bool per route) of the generators whose candidates are at least
    ``OFF_MANIFOLD_GENERATOR`` outliers. Routes are generators without data regions, (generator,
    region) cells with several groups; routed by region (one group) no generator is singled out.
    Never so many that no route of ``MIN_SHARE`` stays held."""
    counts = np.maximum(one_hot.sum(0), 1)
    off_route = (one_hot * outlier[:, None]).sum(0) / counts
    if not fallback:  # routes are the generators
        dead = off_route >= OFF_MANIFOLD_GENERATOR
        ids = used[dead]
    elif in_group.shape[1] > 1:  # cells: a generator is its group
        group_off = (off_route * shares) @ in_group / np.maximum(shares @ in_group, 1e-12)
        ids = np.flatnonzero(group_off >= OFF_MANIFOLD_GENERATOR)
        dead = in_group[:, ids].sum(1) > 0
    else:
        return (), np.zeros(len(shares), bool)
    if not ((shares >= MIN_SHARE) & ~dead).any():  # nothing would stay held to the floor
        return (), np.zeros(len(shares), bool)
    return tuple(int(i) for i in ids), dead


def data_gap_growth(served, shares, data_shares):
    """Per threshold, how far the served regions' shares moved away from the data's: half the sum,
    over the regions whose gap |served - data| grew beyond the raw draw's |raw - data|, of that
    growth. Only growth counts, so a region emptied is not offset by others moving toward the data.
    ``served`` (T, K) the regions' served shares, ``shares`` (K,) their raw shares, ``data_shares``
    (K,) the data's (of the whole data: regions the draw never reached add nothing)."""
    growth = np.abs(served - data_shares) - np.abs(shares - data_shares)
    return 0.5 * np.maximum(growth, 0.0).sum(1)


def region_deficit(served, shares, data_shares):
    """Per threshold, the most any region's served share falls below the smaller of its raw and
    its data share (arguments as ``data_gap_growth``'s)."""
    return (np.minimum(shares, data_shares) - served).max(1)


def _with_fallback(shares, own, acceptance, match, passed, candidates, in_group, pool):
    """(served route weights, row acceptance) per threshold when a row that finds no candidate on
    its own route takes a passing one of another route in its group (``in_group``: (K, G) route ->
    group; one group: any route). Route c's rows succeed on their own route with probability
    ``own`` (``row_acceptance`` of ``acceptance`` and ``match``: a further candidate lands on the
    row's route with probability ``match``); ``pool``: per route, how many calibration candidates
    its rows' further candidates come from. A row fails only when its first candidate fails and
    none of its ``m - 1`` others passes, on its route or elsewhere in its group; the rest of the
    rows its own route fails are served from the group's other routes, in proportion to how many
    of their candidates pass."""
    group_passed = (passed @ in_group) @ in_group.T  # (T, K): passing candidates of each route's group
    elsewhere = group_passed - passed  # passing candidates of the group's other routes
    elsewhere_pass = elsewhere / np.maximum(pool, 1)  # a further candidate lands there and passes
    lost = (1.0 - acceptance) * np.clip(1.0 - match * acceptance - elsewhere_pass, 0.0, 1.0) ** (candidates - 1)
    moved_rows = np.clip(1.0 - own - lost, 0.0, 1.0)  # served from another route of the group
    moved = shares * moved_rows / np.maximum(elsewhere, 1)  # per passing candidate, (T, K)
    arrived = passed * ((moved @ in_group) @ in_group.T - moved)  # from the group's other routes
    return shares * own + arrived, 1.0 - lost


def choose_candidates_and_threshold(scores, outlier, route, routes, *, start, matched,
                                    most=constants.MAX_CANDIDATES, target=DEFAULT_OUTLIER_TARGET,
                                    floor=DEFAULT_ROW_ACCEPTANCE, fallback=False, groups=None, tied=False,
                                    data_shares=None, pieces=None):
    """(candidates, ``Calibration``): the fewest candidates per row, doubling from ``start`` up to
    ``most``, with which ``choose_threshold`` meets ``target``; when none does, the count with the
    fewest served outliers. More candidates let a generator whose samples mostly fail keep its rows
    under a tight threshold (row acceptance 1 - (1 - a_i)^m), so the floor stops binding first."""
    counts = [int(start)]
    while counts[-1] * 2 <= most:
        counts.append(counts[-1] * 2)
    tried = []
    for m in counts:
        found = choose_threshold(scores, outlier, route, routes, candidates=m, matched=matched,
                                 target=target, floor=floor, fallback=fallback, groups=groups, tied=tied,
                                 data_shares=data_shares, pieces=pieces)
        if found.target_met:
            return m, found
        tried.append((found.expected_outlier_rate, m, found))
    _, m, found = min(tried, key=lambda t: (t[0], t[1]))
    return m, found


def default_candidates(model, matched, base=constants.CANDIDATES, most=constants.MAX_CANDIDATES):
    """Candidates per row: ``base`` where a row's candidates share its generator; where the choice
    depends on z only ~share_i of them route to the row's generator i, so ``base`` / (the smallest
    share) of them, at most ``most``."""
    if not matched:
        return base
    _, generator, _ = candidate_draws(model, None, {}, draws=5000, seed=777)
    return matched_candidates(np.bincount(generator, minlength=model.config.num_generators) / len(generator),
                              base, most)


def matched_candidates(shares, base=constants.CANDIDATES, most=constants.MAX_CANDIDATES):
    """``base`` / the smallest route share held to the floor (``MIN_SHARE``), at most ``most``:
    about ``base`` of a row's candidates then share its route."""
    shares = np.asarray(shares)
    return int(min(most, np.ceil(base / shares[shares >= MIN_SHARE].min())))


def candidate_draws(model, rule, constants, draws=CALIBRATION_DRAWS, seed=4242, batch=5000):
    """``draws`` candidates from the model's own prior: (samples, generator, rule scores), numpy
    (scores 0 without a rule)."""
    spec = {**model.noise_spec(), **(rule.extra_noise if rule is not None else {})}
    out = {"samples": [], "generator": [], "score": []}
    for start in range(0, draws, batch):
        noise = model.sample_noise(min(batch, draws - start), tf.constant([seed, start], tf.int64), spec)
        samples, generator = model.generate(noise)
        out["samples"].append(samples.numpy())
        out["generator"].append(generator.numpy())
        score = tf.zeros([len(generator)]) if rule is None else rule.score(model, constants, noise, samples, generator)
        out["score"].append(score.numpy())
    return tuple(np.concatenate(v) for v in out.values())


# ---------------------------------------------------------------------- what a sampler serves
def fidelity(samples, heldout, judge):
    """Figures of one sample set against held-back data: outlier rate by ``judge``, k-NN precision
    and recall (k=3), and, where modes are known, mode shares' TV to the data's and modes covered
    (a mode is covered by a sample within 3 standard deviations of its centre)."""
    if len(samples) == 0:
        return None
    flat = samples.reshape(len(samples), -1)
    real = heldout.x.reshape(len(heldout.x), -1)
    out = {"outlier_rate": float(judge(flat).mean()), **M.precision_recall(real, flat, k=3)}
    if heldout.centres is not None and heldout.labels is not None:
        data_shares = np.bincount(heldout.labels, minlength=len(heldout.centres))
        out["mode_tv"] = M.total_variation(M.mode_proportions(flat, heldout.centres), data_shares)
        modes = M.mode_statistics(flat, heldout.centres, np.max(heldout.stds))
        out.update(modes_covered=modes["modes_recovered"], num_modes=modes["num_modes"],
                   within_3_std=modes["high_quality_rate"])
    return out
