"""Outlier-rejection rules of the exported sampler, one class each, registered by name.

A rule scores every candidate sample (higher is better); the sampler accepts a candidate whose
score reaches the rule's threshold. A rule says

* ``fit(model, real)``: the constants it bakes into the graph (a burn-in maximum, k-NN balls, ...),
  as a dict of floats and numpy arrays; they become graph constants, so SavedModel and ONNX carry
  them and need no extra input;
* ``score(model, constants, noise, samples, generator)``: (N,) float32, fixed shapes, ONNX-convertible;
* ``fixed_threshold``: ``(value, why)`` when the threshold is part of the rule's definition (a
  partition check, a resampling probability); otherwise export calibrates it (``calibration.py``);
* ``fallback_threshold(model, constants, real, prior_scores)``: the threshold used when there is
  nothing to calibrate against (no outlier judge); ``prior_scores()`` draws the rule's scores on the
  model's prior, only for the rules that need them;
* ``extra_noise``: per-candidate random inputs the rule needs beyond the model's own.

Methods list the rule names they support (``MixtureGAN.rejection_rules``) and their default; a new
rule is one class here plus ``@register_rule``. See docs/ARCHITECTURE.md, "The sampler contract".
"""
import numpy as np
import tensorflow as tf
from scipy.spatial import cKDTree

_RULES = {}


def register_rule(cls):
    """Class decorator: register one instance of ``cls`` under ``cls.name``."""
    if cls.name in _RULES:
        raise ValueError(f"rejection rule {cls.name!r} is already registered")
    _RULES[cls.name] = cls()
    return cls


def get_rule(name):
    try:
        return _RULES[name]
    except KeyError:
        raise ValueError(f"unknown rejection rule {name!r}; known rules: {', '.join(sorted(_RULES))}") from None


def list_rules():
    return sorted(_RULES)


class Rule:
    """Base rule: no constants, no extra noise, calibrated threshold."""

    name = None
    fixed_threshold = None  # (value, why) for rules whose threshold is part of their definition
    extra_noise = {}  # name -> (shape, distribution) per candidate
    needs_real = False  # fit() needs held-back real data

    def fit(self, model, real):
        return {}

    def score(self, model, constants, noise, samples, generator):
        raise NotImplementedError

    def fallback_threshold(self, model, constants, real, prior_scores):
        """(threshold, why) when no outlier judge is available to calibrate against."""
        raise ValueError(f"rule {self.name!r} needs held-back data to calibrate its threshold (or --threshold)")


def graph_constant(value):
    """A numpy constant made inside the traced function: a graph constant, not a captured tensor
    (tf2onnx would turn a captured tensor into an extra model input)."""
    return tf.constant(np.asarray(value, np.float32))


# ---------------------------------------------------------------------- rules every method has
@register_rule
class AcceptAll(Rule):
    name = "none"
    fixed_threshold = (float(np.finfo(np.float32).min), "accepts every sample")

    def score(self, model, constants, noise, samples, generator):
        return tf.zeros([tf.shape(samples)[0]])


@register_rule
class Discriminator(Rule):
    """D's adversarial logit. At a GAN's equilibrium D separates little, so on its own this rule
    rejects little; it is kept for comparison and for DRS."""

    name = "discriminator"
    REAL_QUANTILE = 0.05  # fallback: reject what scores below 95% of held-back real data

    def score(self, model, constants, noise, samples, generator):
        return model.discriminate(samples)

    def fallback_threshold(self, model, constants, real, prior_scores):
        if real is None:
            return super().fallback_threshold(model, constants, real, prior_scores)
        logits = model.discriminate(tf.constant(real, tf.float32)).numpy()
        return float(np.quantile(logits, self.REAL_QUANTILE)), \
            f"{self.REAL_QUANTILE:g} quantile of D's logits on {len(real)} real examples"


class NoiseSideRule(Rule):
    """Rules that score the noise, not the sample; the fallback keeps a share of prior draws:
    paper 004 (section IV-B, for its image samples) disregards "the least likely 25%" of z."""

    KEEP = 0.75

    def fallback_threshold(self, model, constants, real, prior_scores):
        scores = prior_scores()
        return float(np.quantile(scores, 1.0 - self.KEEP)), f"keeps {self.KEEP:g} of {len(scores)} prior draws"


@register_rule
class Truncation(NoiseSideRule):
    """Minus the L2 norm of z: the largest-norm draws map to a generator's extremes."""

    name = "truncation"

    def score(self, model, constants, noise, samples, generator):
        return -tf.norm(noise["z"], axis=-1)


@register_rule
class Router(NoiseSideRule):
    """The router's confidence max_i p(G_i | z): low near the noise partition's boundaries."""

    name = "router"

    def score(self, model, constants, noise, samples, generator):
        return tf.reduce_max(model.route(noise), axis=-1)


@register_rule
class Manifold(Rule):
    """Inside the data manifold estimated by k-NN balls of held-back real data.

    The improved precision metric's manifold (Kynkaanniemi et al. 2019, section 2): the union of
    balls B(x_j, r_j), r_j the distance from real point x_j to its k-th nearest real neighbour.
    The score is minus the smallest ball-relative distance, -min_j |x - x_j| / r_j, so a score of
    -1 is a ball's edge and calibration can tighten (-0.8) or widen (-1.2) the manifold. At most
    ``MAX_BALLS`` real points are kept (a seeded subsample, radii among the kept points), so the
    graph holds an (M, d) constant and scores a batch with a few matmuls (``score``).
    """

    name = "manifold"
    needs_real = True
    K = 3  # Kynkaanniemi et al.'s default neighbourhood size
    MAX_BALLS = 2048
    BALLS_PER_PRODUCT = 128  # balls per matmul in ``score`` (why: there)
    SEED = 0

    def fit(self, model, real):
        if real is None or len(real) <= self.K:
            raise ValueError(f"rule 'manifold' needs more than {self.K} held-back real examples")
        x = np.asarray(real, np.float64).reshape(len(real), -1)
        if len(x) > self.MAX_BALLS:
            x = x[np.sort(np.random.default_rng(self.SEED).choice(len(x), self.MAX_BALLS, replace=False))]
        return knn_balls(x, self.K)

    def score(self, model, constants, noise, samples, generator):
        # |x - c_j|^2 / r_j^2 by matmuls of augmented rows [x, |x|^2, 1] against columns
        # [-2 c_j, 1, |c_j|^2] / r_j^2, each followed by a min: no element-wise pass over (N, M),
        # and sqrt is monotone, so it is taken after the min. BALLS_PER_PRODUCT columns per matmul,
        # not all M at once: onnxruntime took 260 ms for one (139k x 4) @ (4 x 2048) product and its
        # min, 56 ms in 16 products of 128 columns (TensorFlow 100 and 112 ms), measured at a
        # 4096-row request of 34 candidates; the result is the same min.
        x = tf.reshape(tf.cast(samples, tf.float32), [tf.shape(samples)[0], -1])
        rows = tf.concat([x, tf.reduce_sum(x * x, axis=1, keepdims=True), tf.ones_like(x[:, :1])], axis=1)
        columns = ball_columns(constants)
        squared_ratio = tf.reduce_min(tf.stack([
            tf.reduce_min(tf.matmul(rows, graph_constant(columns[:, start:start + self.BALLS_PER_PRODUCT])), axis=1)
            for start in range(0, columns.shape[1], self.BALLS_PER_PRODUCT)], axis=1), axis=1)
        return -tf.sqrt(tf.maximum(squared_ratio, 0.0))

    def fallback_threshold(self, model, constants, real, prior_scores):
        return -1.0, "inside some k-NN ball (k=3) of held-back real data"


def knn_balls(points, k, tree=None):
    """{centres (M, d) float32, radii (M,) float32}: each point's ball reaching its k-th nearest
    neighbour among ``points`` (``tree``: a ``cKDTree`` of them, when one is at hand)."""
    points = np.asarray(points, np.float64).reshape(len(points), -1)
    radii = (cKDTree(points) if tree is None else tree).query(points, k=k + 1)[0][:, -1]
    # Duplicate points have radius 0; floor at a small share of the typical radius.
    radii = np.maximum(radii, 1e-3 * np.median(radii) + 1e-12)
    return {"centres": points.astype(np.float32), "radii": radii.astype(np.float32)}


def ball_columns(constants):
    """(d + 2, M) float64: ball j's column [-2 c_j, 1, |c_j|^2] / r_j^2 (see ``Manifold.score``)."""
    centres = np.asarray(constants["centres"], np.float64)
    radii = np.asarray(constants["radii"], np.float64)
    columns = np.concatenate([-2.0 * centres, np.ones((len(centres), 1)), (centres ** 2).sum(1, keepdims=True)], 1)
    return (columns / radii[:, None] ** 2).T


def ball_ratio(points, centres, radii, chunk=2048):
    """numpy twin of ``Manifold.score``'s ratio: min_j |p - c_j| / r_j for each point."""
    points = np.asarray(points, np.float64).reshape(len(points), -1)
    centres = np.asarray(centres, np.float64)
    out = np.empty(len(points))
    for start in range(0, len(points), chunk):
        p = points[start:start + chunk]
        squared = (p * p).sum(1)[:, None] - 2 * p @ centres.T + (centres * centres).sum(1)[None, :]
        out[start:start + chunk] = (np.sqrt(np.maximum(squared, 0)) / radii[None, :]).min(1)
    return out


# ---------------------------------------------------------------------- discriminator rejection sampling
@register_rule
class DRS(Rule):
    """Discriminator rejection sampling (Azadi et al. 2019): accept with probability sigmoid(F(x)),
    F from D's logit, the burn-in's maximum logit D*_max and gamma (section 3.2, Algorithm 1). The
    score is F(x) - logit(u), >= 0 exactly when a uniform u falls below sigmoid(F(x))."""

    name = "drs"
    fixed_threshold = (0.0, "accept when u < sigmoid(F(x)) (Azadi et al. 2019, Algorithm 1)")
    extra_noise = {"accept_u": ((), "uniform01")}
    BURN_IN = 10_000
    PERCENTILE = 80  # gamma: this percentile of F over the burn-in (the paper's "dynamic" gamma)
    EPSILON = 1e-6

    def fit(self, model, real):
        noise = model.sample_noise(self.BURN_IN, tf.constant([12345, 0], tf.int64))
        logits = model.discriminate(model.generate(noise)[0]).numpy()
        d_max = float(logits.max())
        return {"d_max": d_max, "gamma": float(np.percentile(drs_f(logits, d_max, 0.0), self.PERCENTILE))}

    def score(self, model, constants, noise, samples, generator):
        u = tf.clip_by_value(noise["accept_u"], 1e-7, 1.0 - 1e-7)
        f = drs_f(model.discriminate(samples), constants["d_max"], constants["gamma"], xp=tf.math)
        return f - (tf.math.log(u) - tf.math.log(1.0 - u))


def drs_f(logits, d_max, gamma, xp=np):
    """F(x) = D~(x) - D*_max - log(1 - exp(D~(x) - D*_max - eps)) - gamma (Azadi et al. 2019, Eq. 8).

    A logit above the burn-in's max is clipped to it (accepted with the highest probability)
    rather than making the log undefined."""
    shifted = xp.minimum(logits - d_max, 0.0)
    return shifted - xp.log(1.0 - xp.exp(shifted - DRS.EPSILON)) - gamma


# ---------------------------------------------------------------------- methods' own rules
@register_rule
class Partition(Rule):
    """Paper 002, section 4.2: a sample of G_i is kept only inside its partition A_i, i.e. when
    the guide R_i(x) is 0. Score -R_i(x), threshold 0."""

    name = "partition"
    fixed_threshold = (0.0, "R_i(x) == 0: inside its generator's partition (paper 002)")

    def score(self, model, constants, noise, samples, generator):
        return -model.partitioner.guide(samples, generator)


class PriorSelection(Rule):
    """Paper 003: generation keeps z by the discriminator's score as training did; the method's
    ``selection_score(D(G(z)), noise)`` is >= 0 for a kept z."""

    def score(self, model, constants, noise, samples, generator):
        return model.selection_score(model.discriminate(samples), noise)


@register_rule
class PriorMask(PriorSelection):
    name = "prior_mask"
    fixed_threshold = (0.0, "s(z) at or above the (1 - r) quantile of D(G(z)) on the last training "
                            "pre-sample (paper 003, Definition 3)")


@register_rule
class PriorWeight(PriorSelection):
    name = "prior_weight"
    fixed_threshold = (0.0, "accept when u <= w(s(z)) / w_max, w_max from the last training pre-sample "
                            "(paper 003, Definition 2)")


@register_rule
class PartitionManifold(Manifold):
    """Paper 002's partition check and the data manifold together: a sample of G_i is kept when it
    lies inside its partition A_i (R_i(x) == 0, section 4.2) *and* on the k-NN manifold of held-back
    data (``manifold``). A partition cell is wider than its mode, so the partition check alone
    keeps samples between a mode and the cell's edge; the manifold part, calibrated like
    ``manifold``, removes them. Outside A_i the score is ``OUTSIDE``, below any threshold."""

    name = "partition_manifold"
    OUTSIDE = -1e9  # finite: ONNX and the calibration's sort need no infinities

    def score(self, model, constants, noise, samples, generator):
        inside = model.partitioner.guide(samples, generator) <= 0.0
        return tf.where(inside, super().score(model, constants, noise, samples, generator), self.OUTSIDE)
