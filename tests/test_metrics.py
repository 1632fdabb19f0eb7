"""Every metric on cases whose answer is known in closed form or by construction."""
import numpy as np
import pytest

from tfgan_mix import metrics as M

RNG = np.random.default_rng(0)
GRID = np.array([(2 * i - 4, 2 * j - 4) for i in range(5) for j in range(5)], dtype=float)


def test_frechet_distance():
    a = RNG.normal(size=(20000, 2))
    assert M.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    shifted = RNG.normal(size=(20000, 2)) + [3.0, 4.0]
    assert M.frechet_distance(a, shifted) == pytest.approx(25.0, rel=0.02)
    # Different scales, same mean: Tr(I + 4I - 2*2I) = 2 in 2-D.
    assert M.frechet_distance(a, 2 * RNG.normal(size=(20000, 2))) == pytest.approx(2.0, rel=0.05)


def test_earth_movers_distance():
    a = RNG.normal(size=(300, 3))
    assert M.earth_movers_distance(a, a) == pytest.approx(0, abs=1e-12)
    # Translating a set by v: the optimal matching is the identity, cost |v| per point.
    assert M.earth_movers_distance(a, a + [0.0, 3.0, 4.0], max_points=300) == pytest.approx(5.0, rel=1e-9)


def _three_modes():
    centres = np.array([[0.0, 2.0], [-2.0, 0.0], [2.0, 0.0]])
    labels = np.repeat([0, 1, 2], 200)
    real = centres[labels] + 0.1 * RNG.normal(size=(600, 2))
    return real, labels, centres


def test_off_manifold_rate():
    real, labels, centres = _three_modes()
    assert M.off_manifold_rate(real, real, labels, centres) == 0.0
    between = np.array([[0.0, 0.0], [1.0, 1.0], [-1.0, 1.0], [0.0, -3.0]])
    assert M.off_manifold_rate(between, real, labels, centres) == 1.0
    mix = np.concatenate([centres, between])
    assert M.off_manifold_rate(mix, real, labels, centres) == pytest.approx(4 / 7)


def test_coverage_gap():
    real = RNG.uniform(size=(200, 2))
    assert M.coverage_gap(real, real, 1e-3) == 0.0
    assert M.coverage_gap(real, real + 10, 1e-3) == 1.0
    assert M.coverage_gap(real, real[:50], 1e-9) == pytest.approx(0.75)


def test_coverage_radius_is_the_epsilon_where_the_gap_reaches_one_minus_the_quantile():
    x = np.linspace(0.0, 1.0, 101)
    real = np.stack([x, np.zeros_like(x)], axis=1)
    samples = real[x <= 0.5] + [0.0, 0.01]  # the right half of the segment is a missed tail
    radius = M.coverage_radius(real, samples, quantile=0.95)
    assert radius == pytest.approx(np.hypot(np.quantile(np.maximum(x - 0.5, 0.0), 0.95), 0.01))
    assert M.coverage_gap(real, samples, radius * 1.0001) <= 0.05 < M.coverage_gap(real, samples, radius * 0.99)
    assert M.coverage_radius(real, real + [0.0, 0.01], quantile=0.95) == pytest.approx(0.01)
    with pytest.raises(ValueError, match="quantile"):
        M.coverage_radius(real, samples, quantile=0.0)


def test_mode_statistics_on_the_grid():
    perfect = np.repeat(GRID, 4, axis=0)
    stats = M.mode_statistics(perfect, GRID, 0.05)
    assert stats == {"high_quality_rate": 1.0, "modes_recovered": 25, "num_modes": 25, "reverse_kl": 0.0}
    # Half the samples on each of two modes, against uniform weights over 25: KL = log(25 / 2).
    two = np.repeat(GRID[:2], 10, axis=0)
    stats = M.mode_statistics(two, GRID, 0.05)
    assert stats["modes_recovered"] == 2
    assert stats["reverse_kl"] == pytest.approx(np.log(25 / 2))
    # Points 1 away from every centre are not high quality (3 std = 0.15).
    stats = M.mode_statistics(np.concatenate([two, GRID + 1.0]), GRID, 0.05)
    assert stats["high_quality_rate"] == pytest.approx(20 / 45)
    assert M.mode_statistics(GRID + 1.0, GRID, 0.05)["reverse_kl"] == float("inf")


def test_high_quality_uses_every_coordinate():
    mask = M.high_quality_mask(np.array([[0.1, 0.1], [0.2, 0.0], [0.14, -0.14]]), np.zeros((1, 2)), 0.05)
    np.testing.assert_array_equal(mask, [True, False, True])


def test_mode_proportions_and_generator_usage():
    centres = np.array([[0.0, 0.0], [10.0, 0.0]])
    samples = np.array([[0.1, 0], [9, 0], [11, 0], [12, 0]])
    np.testing.assert_allclose(M.mode_proportions(samples, centres), [0.25, 0.75])
    np.testing.assert_allclose(M.generator_usage([0, 2, 2, 2], 4), [0.25, 0, 0.75, 0])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        M.generator_usage([0, 2], 2)


def test_knn_two_sample_accuracy():
    a, b = RNG.normal(size=(1000, 2)), RNG.normal(size=(1000, 2))
    assert M.knn_two_sample_accuracy(a, b)["accuracy"] == pytest.approx(0.5, abs=0.06)
    far = M.knn_two_sample_accuracy(a, b + 100)
    assert far == {"accuracy": 1.0, "real_accuracy": 1.0, "fake_accuracy": 1.0}


def test_precision_recall_density_coverage():
    a, b = RNG.normal(size=(1000, 2)), RNG.normal(size=(1000, 2))
    same = {**M.precision_recall(a, b), **M.density_coverage(a, b)}
    assert same["precision"] > 0.9 and same["recall"] > 0.9
    assert same["density"] == pytest.approx(1.0, abs=0.15) and same["coverage"] > 0.9
    disjoint = {**M.precision_recall(a, b + 100), **M.density_coverage(a, b + 100)}
    assert disjoint == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    # Fakes collapsed onto one real point: precise but no recall.
    collapsed = M.precision_recall(a, np.repeat(a[:1], 100, axis=0))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.05


def test_outlier_manifold_distance():
    real = np.zeros((10, 2))
    samples = np.zeros((100, 2))
    samples[0] = [3.0, 4.0]  # the 1% worst: one sample at distance 5
    assert M.outlier_manifold_distance(samples, real) == pytest.approx(5.0)
    assert M.outlier_manifold_distance(samples, real, fraction=0.02) == pytest.approx(2.5)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="dimension 2 but samples has 3"):
        M.coverage_gap(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="a is empty"):
        M.frechet_distance(np.zeros((0, 2)), np.zeros((3, 2)))


def test_label_mode_statistics():
    uniform = np.arange(1000) % 10
    stats = M.label_mode_statistics(uniform, 10)
    assert stats["modes_covered"] == 10 and stats["reverse_kl"] == pytest.approx(0.0, abs=1e-12)
    half = M.label_mode_statistics(np.arange(1000) % 5, 10)  # 5 of 10 modes, evenly: KL = log 2
    assert half["modes_covered"] == 5 and half["reverse_kl"] == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 10\)"):
        M.label_mode_statistics([3, 10], 10)
