"""Pictures are valid PNGs that show what they claim: distinct generator colours, the right pixels."""
import keras
import numpy as np
import pytest
from matplotlib import image as mpimg

from tfgan_mix import vis

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _read(path):
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return mpimg.imread(path)


def _colours(picture):
    """Distinct saturated colours in a picture (greys and white left out)."""
    rgb = (picture[..., :3] * 255).astype(int).reshape(-1, 3)
    saturated = rgb[(rgb.max(axis=1) - rgb.min(axis=1)) > 60]
    return {tuple(c) for c in saturated // 16}


def test_scatter_shows_each_generator_in_its_colour(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(300, 2))
    ids = np.repeat([0, 1, 2], 100)
    one = _read(vis.scatter_by_generator(samples, np.zeros(300), tmp_path / "one.png", num_generators=3))
    three = _read(vis.scatter_by_generator(samples, ids, tmp_path / "three.png", real=samples, num_generators=3,
                                           accepted=rng.random(300) > 0.1))
    assert three.ndim == 3 and three.shape[0] > 100
    assert len(_colours(three)) > len(_colours(one))


def test_routing_grid_covers_the_square():
    grid = vis.routing_grid(-1, 1, resolution=5)
    assert grid.shape == (25, 2) and grid.dtype == np.float32
    assert grid.min() == -1 and grid.max() == 1
    np.testing.assert_array_equal(grid[0], [-1, -1])
    np.testing.assert_array_equal(grid[-1], [1, 1])


def test_routing_map_paints_each_region(tmp_path):
    grid = vis.routing_grid(-1, 1, resolution=50)
    left_right = (grid[:, 0] > 0).astype(int)
    picture = _read(vis.noise_routing_map(grid, left_right, tmp_path / "map.png", num_generators=2))
    colours = vis.generator_colours(2)
    found = _colours(picture)
    for colour in colours:
        assert tuple((np.array(colour[:3]) * 255).astype(int) // 16) in found


def test_image_grids(tmp_path):
    images = np.tanh(np.random.default_rng(0).normal(size=(10, 8, 8, 1)))
    assert _read(vis.image_grid(images, tmp_path / "grid.png")).ndim == 3
    ids = np.array([0] * 6 + [2] * 4)
    assert _read(vis.image_grid_per_generator(images, ids, tmp_path / "per.png", num_generators=3)).ndim == 3


def test_saliency_finds_the_only_pixel_the_model_reads(tmp_path):
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(1)
    model = keras.Model(inputs, dense(keras.layers.Flatten()(inputs)))
    kernel = np.zeros((64, 1), np.float32)
    kernel[8 * 3 + 5] = 2.0  # pixel (3, 5)
    dense.set_weights([kernel, np.zeros(1, np.float32)])
    images = np.random.default_rng(1).uniform(-1, 1, size=(3, 8, 8, 1)).astype(np.float32)
    maps = vis.saliency(model, images)
    assert maps.shape == (3, 8, 8)
    for m in maps:
        assert np.unravel_index(np.argmax(m), m.shape) == (3, 5)
        assert m[3, 5] == pytest.approx(1.0) and np.sum(m > 0.01) == 1
    assert _read(vis.saliency_maps(model, images, tmp_path / "sal.png")).ndim == 3


def test_bad_input_is_named(tmp_path):
    with pytest.raises(ValueError, match="images must have shape"):
        vis.image_grid(np.zeros((3, 8, 8)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="3 generator ids for 4 samples"):
        vis.scatter_by_generator(np.zeros((4, 2)), [0, 1, 2], tmp_path / "x.png")
    with pytest.raises(ValueError, match="must be square"):
        vis.noise_routing_map(np.zeros((5, 2)), np.zeros(5), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
