"""Sample-quality metrics for mixture-of-generators GANs (docs/ARCHITECTURE.md, "Metrics").

Pure numpy/scipy functions of ``(n, d)`` arrays (flatten images first). Neighbour queries use
``scipy.spatial.cKDTree``, EMD ``scipy.optimize.linear_sum_assignment``, Frechet ``scipy.linalg.sqrtm``.
"""
import warnings

import numpy as np
from scipy import linalg, optimize
from scipy.spatial import cKDTree, distance

# Paper 000, section 4.2: a real point is uncovered when no generated point lies within epsilon of it.
PAPER_COVERAGE_EPSILON = 0.001


def _points(x, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        x = x.reshape(len(x), -1)
    if len(x) == 0:
        raise ValueError(f"{name} is empty")
    return x


def _pair(a, b, names=("real", "samples")):
    a, b = _points(a, names[0]), _points(b, names[1])
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names[0]} has dimension {a.shape[1]} but {names[1]} has {b.shape[1]}")
    return a, b


def _centre_distances(samples, centres):
    return np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)


# ---------------------------------------------------------------------- paper 000
def off_manifold_rate(samples, real, labels, centres):
    """Share of samples farther from every mode's centre than that mode's farthest real point.

    Paper 000, section 4.1: r_m = max_{x in mode m} |x - c_m|; a sample s is off-manifold when
    |s - c_m| > r_m for every m.
    """
    return float(np.mean(off_manifold_mask(samples, real, labels, centres)))


def off_manifold_mask(samples, real, labels, centres):
    """Per sample: is it off-manifold in ``off_manifold_rate``'s sense? (n,) bool."""
    samples, real = _pair(samples, real, ("samples", "real"))
    centres = _points(centres, "centres")
    labels = np.asarray(labels)
    radii = np.array([np.linalg.norm(real[labels == m] - centres[m], axis=1).max() for m in range(len(centres))])
    return np.all(_centre_distances(samples, centres) > radii, axis=1)


def coverage_gap(real, samples, epsilon=PAPER_COVERAGE_EPSILON):
    """Share of real points with no sample within distance ``epsilon`` (paper 000, Table 1's
    coverage measure: 0 means every real point is covered)."""
    return float(np.mean(_nearest_sample_distances(real, samples) > epsilon))


def coverage_radius(real, samples, quantile=0.95):
    """The distance within which ``quantile`` of the real points have a sample: the epsilon at
    which ``coverage_gap`` reaches ``1 - quantile``. No epsilon to choose, so it stays readable
    when samples are not precise to paper 000's epsilon; a missed tail makes it large."""
    if not 0.0 < quantile <= 1.0:
        raise ValueError(f"quantile must be in (0, 1], got {quantile}")
    return float(np.quantile(_nearest_sample_distances(real, samples), quantile))


def _nearest_sample_distances(real, samples):
    real, samples = _pair(real, samples)
    distance, _ = cKDTree(samples).query(real, k=1)
    return distance


# ---------------------------------------------------------------------- distances between sets
def earth_movers_distance(a, b, *, max_points=2000, seed=0):
    """Exact EMD between equal-size subsamples: min over matchings of the mean Euclidean distance
    (Rubner et al. 2000), solved as an assignment problem."""
    a, b = _pair(a, b, ("a", "b"))
    rng = np.random.default_rng(seed)
    n = min(len(a), len(b), max_points)
    a = a[rng.choice(len(a), n, replace=False)]
    b = b[rng.choice(len(b), n, replace=False)]
    cost = distance.cdist(a, b)  # (n, n) without the (n, n, d) difference tensor
    rows, cols = optimize.linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())


def frechet_distance(a, b):
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussian fits of the raw data
    (Heusel et al. 2017, Eq. 6, on raw coordinates instead of Inception features)."""
    a, b = _pair(a, b, ("a", "b"))
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    with warnings.catch_warnings():  # a singular product is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(root)):  # singular product: regularise as the FID reference code does
        eps = 1e-6 * np.eye(len(cov_a))
        root = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * np.real(root)))


# ---------------------------------------------------------------------- grid / ring protocol
def high_quality_mask(samples, centres, std, *, num_std=3):
    """Samples within ``num_std`` standard deviations of some centre in every coordinate
    (the grid/ring protocol of VEEGAN and PacGAN)."""
    samples, centres = _pair(samples, centres, ("samples", "centres"))
    return np.any(np.all(np.abs(samples[:, None, :] - centres[None]) <= num_std * std, axis=-1), axis=1)


def mode_statistics(samples, centres, std, *, num_std=3, min_count=1, weights=None):
    """High-quality rate, modes recovered and reverse KL of the grid/ring protocol.

    A mode is recovered when at least ``min_count`` high-quality samples have it as nearest
    centre. reverse_kl = KL(q || p) = sum_m q_m log(q_m / p_m), q the nearest-centre shares of the
    high-quality samples, p the data's mode weights (uniform by default); terms with q_m = 0 add 0,
    and with no high-quality sample at all it is reported as infinity.
    """
    samples, centres = _pair(samples, centres, ("samples", "centres"))
    good = high_quality_mask(samples, centres, std, num_std=num_std)
    k = len(centres)
    p = np.full(k, 1.0 / k) if weights is None else np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.bincount(nearest_mode(samples[good], centres), minlength=k) if good.any() else np.zeros(k, int)
    reverse_kl = float("inf") if counts.sum() == 0 else _reverse_kl(counts, p)
    return {"high_quality_rate": float(good.mean()), "modes_recovered": int(np.sum(counts >= min_count)),
            "num_modes": int(k), "reverse_kl": reverse_kl}


def label_mode_statistics(labels, num_modes):
    """Modes covered and reverse KL from classifier labels (paper 002's Stacked MNIST protocol:
    a pretrained classifier names each sample's mode). reverse_kl = KL(q || uniform), q the
    label shares; empty modes add 0."""
    labels = np.asarray(labels).reshape(-1)
    if len(labels) == 0:
        raise ValueError("labels is empty")
    if labels.min() < 0 or labels.max() >= num_modes:
        raise ValueError(f"labels must lie in [0, {num_modes}), got [{labels.min()}, {labels.max()}]")
    counts = np.bincount(labels, minlength=num_modes)
    return {"modes_covered": int(np.sum(counts > 0)), "num_modes": int(num_modes),
            "reverse_kl": _reverse_kl(counts, np.full(num_modes, 1.0 / num_modes))}


def _reverse_kl(counts, p):
    """KL(q || p) = sum_m q_m log(q_m / p_m), q = counts / sum(counts); modes with q_m = 0 add 0."""
    q = counts / counts.sum()
    used = q > 0
    return float(np.sum(q[used] * np.log(q[used] / p[used])))


def nearest_mode(samples, centres):
    """Each sample's nearest centre: (n,) int."""
    samples, centres = _pair(samples, centres, ("samples", "centres"))
    return np.argmin(_centre_distances(samples, centres), axis=1)


def mode_proportions(samples, centres):
    """Share of samples whose nearest centre is each mode; sums to 1."""
    return np.bincount(nearest_mode(samples, centres), minlength=len(centres)) / len(samples)


def total_variation(p, q):
    """TV(p, q) = 1/2 sum_m |p_m - q_m| between two discrete distributions (each normalised here)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return float(0.5 * np.abs(p / p.sum() - q / q.sum()).sum())


# ---------------------------------------------------------------------- nearest-neighbour measures
def knn_two_sample_accuracy(real, fake, *, k=5):
    """Leave-one-out k-NN classifier accuracy of telling real from fake on their union
    (Lopez-Paz & Oquab 2017; paper 004's 5-NN test). 0.5 means indistinguishable, 1.0 separable.
    Ties in the vote count as wrong."""
    real, fake = _pair(real, fake, ("real", "fake"))
    union = np.concatenate([real, fake])
    is_real = np.concatenate([np.ones(len(real), bool), np.zeros(len(fake), bool)])
    _, index = cKDTree(union).query(union, k=k + 1)
    votes = is_real[index[:, 1:]].mean(axis=1)  # drop the point itself
    correct = np.where(is_real, votes > 0.5, votes < 0.5)
    return {"accuracy": float(correct.mean()), "real_accuracy": float(correct[is_real].mean()),
            "fake_accuracy": float(correct[~is_real].mean())}


def _knn_radii(x, k):
    distance, _ = cKDTree(x).query(x, k=k + 1)
    return distance[:, -1]


def _inside_balls(points, centres, radii, chunk=1024):
    """For each point, how many balls B(centre_i, radius_i) contain it. Dense distances in chunks
    of rows: a neighbour query with the largest radius would list every point for every query
    once one ball is wide (an outlier's k-NN ball), which takes memory quadratic in the counts."""
    counts = np.empty(len(points), dtype=np.int64)
    for start in range(0, len(points), chunk):
        counts[start:start + chunk] = np.sum(distance.cdist(points[start:start + chunk], centres) <= radii[None, :], axis=1)
    return counts


def precision_recall(real, fake, *, k=5):
    """Improved precision and recall (Kynkaanniemi et al. 2019): precision is the share of fakes
    inside some real point's k-NN ball, recall the share of reals inside some fake's k-NN ball."""
    real, fake = _pair(real, fake, ("real", "fake"))
    precision = np.mean(_inside_balls(fake, real, _knn_radii(real, k)) > 0)
    recall = np.mean(_inside_balls(real, fake, _knn_radii(fake, k)) > 0)
    return {"precision": float(precision), "recall": float(recall)}


def density_coverage(real, fake, *, k=5):
    """Density and coverage (Naeem et al. 2020, Eqs. 3-4): density = (1 / kM) sum_j #{real balls
    containing fake_j}; coverage = share of real points whose k-NN ball contains some fake."""
    real, fake = _pair(real, fake, ("real", "fake"))
    radii = _knn_radii(real, k)
    density = _inside_balls(fake, real, radii).sum() / (k * len(fake))
    nearest_fake, _ = cKDTree(fake).query(real, k=1)
    return {"density": float(density), "coverage": float(np.mean(nearest_fake <= radii))}


def outlier_manifold_distance(samples, real, *, fraction=0.01):
    """Mean distance to the nearest real point over the worst ``fraction`` of samples (at least
    one): how far the outliers stray from the data."""
    samples, real = _pair(samples, real, ("samples", "real"))
    distance, _ = cKDTree(real).query(samples, k=1)
    worst = max(1, int(round(fraction * len(samples))))
    return float(np.sort(distance)[-worst:].mean())


def generator_usage(ids, num_generators):
    """Share of samples made by each of the ``num_generators`` generators; sums to 1."""
    ids = np.asarray(ids).astype(int).ravel()
    if len(ids) == 0:
        raise ValueError("generator ids are empty")
    if ids.min() < 0 or ids.max() >= num_generators:
        raise ValueError(f"generator ids must lie in [0, {num_generators}), got [{ids.min()}, {ids.max()}]")
    return np.bincount(ids, minlength=num_generators) / len(ids)
