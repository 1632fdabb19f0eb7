"""The trained two-sample metrics of paper 001 on distributions whose answer is known."""
import numpy as np
import pytest

from tfgan_mix import judges

SMALL = {"units": (32, 32), "steps": 300, "batch": 128, "learning_rate": 1e-2}


def _normal(n, shift, seed):
    return np.random.default_rng(seed).normal(size=(n, 2)) + np.array([shift, 0.0])


def test_judge_tells_apart_separated_distributions_and_not_identical_ones():
    apart = judges.judge_accuracy(_normal(2000, 0, 0), _normal(2000, 6, 1), **SMALL)
    same = judges.judge_accuracy(_normal(2000, 0, 0), _normal(2000, 0, 1), **SMALL)
    assert apart > 0.98
    assert 0.4 < same < 0.6


def test_independent_critic_recovers_the_wasserstein_distance_of_a_shift():
    # W1 between N(0, I) and N(0, I) shifted by 3 along one axis is exactly 3.
    result = judges.independent_critic_distance(_normal(4000, 0, 0), _normal(4000, 3, 1), **SMALL)
    assert result["distance"] == pytest.approx(3.0, rel=0.15)
    assert result["lipschitz"] > 0
    near = judges.independent_critic_distance(_normal(4000, 0, 0), _normal(4000, 0.5, 1), **SMALL)
    assert near["distance"] < result["distance"] / 3


def test_nearest_centre_judge_sees_a_spread_five_percent_wide_in_high_dimension():
    # Squared distances to the centre: 1024 s^2 +- 45 s^2, so a 5% wider spread (10% in s^2) moves
    # the mean by 2.3 of its standard deviations and a stump on it alone tells the two apart.
    rng = np.random.default_rng(0)
    centres = np.eye(2, 1024)
    real, twin, wide = (centres[rng.integers(0, 2, 4000)] + s * rng.standard_normal((4000, 1024)) for s in (0.3, 0.3, 0.315))
    assert judges.nearest_centre_judge_accuracy(real, wide, centres) > 0.8
    assert 0.45 < judges.nearest_centre_judge_accuracy(real, twin, centres) < 0.55


def test_squared_distance_is_to_the_nearest_centre():
    x = np.array([[0.0, 0.0], [3.0, 0.0], [1.0, 1.0]])
    centres = np.array([[0.0, 0.0], [2.0, 0.0]])
    np.testing.assert_allclose(judges.squared_distance_to_nearest_centre(x, centres), [0.0, 1.0, 2.0])


def test_mismatched_dimensions_are_named():
    with pytest.raises(ValueError, match="real has dimension 2 but samples have 3"):
        judges.judge_accuracy(np.zeros((10, 2)), np.zeros((10, 3)))
