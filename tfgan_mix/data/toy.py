"""The papers' toy distributions. Every constant is pinned here with its source.

Papers (see the project's papers folder): 000 NPGAN, 001 MIX+GAN on artificial data, 004 HMoG.
"""
import numpy as np

from tfgan_mix.data.dataset import Dataset

# --- gaussians3: paper 000, section 4.1: three 2-D Gaussians sampled 7000, 5000 and 3000 times.
GAUSSIANS3_COUNTS = (7000, 5000, 3000)  # paper 000
GAUSSIANS3_RADIUS = 2.0  # our choice, paper silent (triangle vertices on a circle of this radius)
GAUSSIANS3_ANGLES = (90.0, 210.0, 330.0)  # degrees; our choice, paper silent (equilateral triangle)
GAUSSIANS3_STD = 0.1  # our choice, paper silent

# --- parabolas: paper 000, section 4.2 names "intersecting parabolas" but gives no formula.
PARABOLAS_X_RANGE = (-1.5, 1.5)  # our choice, paper silent: x ~ Uniform over this range
PARABOLAS_COUNT = 10000  # our choice, paper silent: half on y = x^2 - 1, half on y = 1 - x^2
# The points lie exactly on the curves (no noise): our choice, paper silent. The curves cross at (+-1, 0).

# --- grid25: the standard 25-Gaussian grid (PGMGAN / Self-Cond GAN code, VEEGAN protocol).
GRID25_SPACING = 2.0  # centres (2i - 4, 2j - 4), i, j in 0..4
GRID25_STD = 0.05  # variance 0.0025, same code
GRID25_COUNT = 25000  # 1000 per mode; our choice

# --- ring8: 8 Gaussians on a circle (PGMGAN / Self-Cond GAN code).
RING8_RADIUS = 2.0  # same code
RING8_STD = 0.01  # variance 1e-4, same code
RING8_COUNT = 10000  # 1250 per mode; our choice

# --- gaussians5: paper 004, section IV-A: "a mixture of five Gaussians" in 2-D; no positions given.
GAUSSIANS5_CENTRES = ((0.0, 0.0), (0.0, 2.0), (0.0, -2.0), (2.0, 0.0), (-2.0, 0.0))  # our choice, paper silent
GAUSSIANS5_STD = 0.1  # our choice, paper silent
GAUSSIANS5_COUNT = 10000  # our choice, paper silent

# --- axes1024: paper 001, section III: equal-prior Gaussians centred on the basis vectors e_i of
# 1024-d space, covariance 0.09 I; the main experiments use 3 components.
AXES_DIM = 1024  # paper 001
AXES_STD = 0.3  # sqrt(0.09), paper 001
AXES_COMPONENTS = 3  # paper 001 ("3-Gaussians dataset")
AXES_COUNT = 10000  # our choice: paper 001 samples fresh data and varies the training-set size


def _circle(radius, degrees):
    angles = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _grid():
    steps = GRID25_SPACING * np.arange(5) - 2 * GRID25_SPACING
    return np.array([(a, b) for a in steps for b in steps])


# name -> (centres, std, relative weights, default size, description)
_MIXTURES = {
    "gaussians3": (_circle(GAUSSIANS3_RADIUS, GAUSSIANS3_ANGLES), GAUSSIANS3_STD, GAUSSIANS3_COUNTS,
                   sum(GAUSSIANS3_COUNTS), "3 unequal 2-D Gaussians, 7000/5000/3000 points (paper 000)"),
    "grid25": (_grid(), GRID25_STD, (1,) * 25, GRID25_COUNT, "25 2-D Gaussians on a 5x5 grid, std 0.05"),
    "ring8": (_circle(RING8_RADIUS, np.arange(8) * 45.0), RING8_STD, (1,) * 8, RING8_COUNT,
              "8 2-D Gaussians on a circle of radius 2, std 0.01"),
    "gaussians5": (np.array(GAUSSIANS5_CENTRES), GAUSSIANS5_STD, (1,) * 5, GAUSSIANS5_COUNT,
                   "5 2-D Gaussians, centre and 4 around it, std 0.1 (paper 004 toy)"),
    "axes1024": (np.eye(AXES_COMPONENTS, AXES_DIM), AXES_STD, (1,) * AXES_COMPONENTS, AXES_COUNT,
                 "3 Gaussians on the axes of 1024-d space, covariance 0.09 I (paper 001)"),
}

DATASETS = {name: row[-1] for name, row in _MIXTURES.items()}
DATASETS["parabolas"] = "two intersecting parabolas y = x^2 - 1 and y = 1 - x^2 (paper 000)"


def split_counts(n, weights):
    """``n`` split in proportion to ``weights`` (largest remainders), summing exactly to ``n``."""
    shares = n * np.asarray(weights, dtype=np.float64) / np.sum(weights)
    counts = np.floor(shares).astype(np.int64)
    counts[np.argsort(counts - shares)[: n - counts.sum()]] += 1
    return counts


def _shuffled_labels(counts, rng):
    return rng.permutation(np.repeat(np.arange(len(counts)), counts))


def load(name, num_examples=None, seed=0):
    """Generate the toy dataset ``name`` with ``num_examples`` points (its default size if None)."""
    rng = np.random.default_rng(seed)
    if name == "parabolas":
        n = num_examples or PARABOLAS_COUNT
        labels = _shuffled_labels(split_counts(n, (1, 1)), rng)
        u = rng.uniform(*PARABOLAS_X_RANGE, size=n)
        y = np.where(labels == 0, u**2 - 1, 1 - u**2)
        return Dataset(name, np.stack([u, y], axis=1), "points", labels=labels, num_modes=2,
                       description=DATASETS[name], extra_metrics=("uncovered_share",))
    centres, std, weights, default_size, description = _MIXTURES[name]
    labels = _shuffled_labels(split_counts(num_examples or default_size, weights), rng)
    stds = np.full(len(centres), std)
    x = centres[labels] + stds[labels, None] * rng.standard_normal((len(labels), centres.shape[1]))
    return Dataset(name, x, "points", labels=labels, centres=centres, stds=stds, num_modes=len(centres),
                   description=description)
