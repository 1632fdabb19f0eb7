"""Datasets: toy constants, shapes and ranges, tfds through mock data, and user-file validation."""
import numpy as np
import pytest

from tfgan_mix.data import DATASETS, DataError, Dataset, list_datasets, load_dataset, toy

EXPECTED = {  # name -> (default size, example shape, kind, num_modes)
    "gaussians3": (15000, (2,), "points", 3),
    "parabolas": (10000, (2,), "points", 2),
    "grid25": (25000, (2,), "points", 25),
    "ring8": (10000, (2,), "points", 8),
    "gaussians5": (10000, (2,), "points", 5),
    "axes1024": (10000, (1024,), "points", 3),
    "digits": (1797, (8, 8, 1), "images", 10),
    "stacked_digits": (20000, (8, 8, 3), "images", 1000),
}


def test_every_built_in_is_listed_with_a_description():
    assert sorted(list_datasets()) == sorted(EXPECTED)
    assert all(DATASETS[name] for name in list_datasets())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_built_in_shapes_kinds_and_labels(name):
    size, shape, kind, modes = EXPECTED[name]
    data = load_dataset(name)
    assert isinstance(data, Dataset) and data.name == name
    assert data.x.shape == (size, *shape) and data.example_shape == shape
    assert data.x.dtype == np.float32 and data.x.flags.c_contiguous
    assert data.kind == kind and data.num_modes == modes
    assert data.labels.dtype == np.int64 and data.labels.shape == (size,)
    assert data.labels.min() >= 0 and data.labels.max() < modes
    assert np.isfinite(data.x).all()
    if kind == "images":
        assert data.x.min() == -1.0 and data.x.max() == 1.0
    if data.centres is not None:
        assert data.centres.shape == (modes, shape[0]) and data.stds.shape == (modes,)
        nearest = np.argmin(((data.x[:500, None, :] - data.centres[None]) ** 2).sum(-1), axis=1)
        assert np.mean(nearest == data.labels[:500]) > 0.95  # axes1024 modes overlap a little in 1024-d


def test_gaussians3_counts_means_and_stds_match_the_constants():
    data = load_dataset("gaussians3")
    np.testing.assert_array_equal(np.bincount(data.labels), [7000, 5000, 3000])
    angles = np.deg2rad([90, 210, 330])
    expected = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    np.testing.assert_allclose(data.centres, expected, atol=1e-12)
    for mode in range(3):
        points = data.x[data.labels == mode]
        np.testing.assert_allclose(points.mean(0), expected[mode], atol=0.01)
        np.testing.assert_allclose(points.std(0), 0.1, rtol=0.05)
    assert data.labels[:100].min() != data.labels[:100].max(), "modes should be shuffled together"


def test_toy_constants_of_the_other_mixtures():
    grid = load_dataset("grid25", num_examples=2500)
    assert sorted(set(grid.centres[:, 0])) == [-4, -2, 0, 2, 4] and np.all(grid.stds == 0.05)
    ring = load_dataset("ring8", num_examples=800)
    np.testing.assert_allclose(np.linalg.norm(ring.centres, axis=1), 2.0)
    assert np.all(ring.stds == 0.01) and np.abs(np.linalg.norm(ring.x, axis=1) - 2).max() < 0.1
    axes = load_dataset("axes1024", num_examples=3000)
    np.testing.assert_array_equal(axes.centres, np.eye(3, 1024))
    np.testing.assert_allclose((axes.x - axes.centres[axes.labels]).var(), 0.09, rtol=0.02)


def test_parabolas_lie_on_their_curves():
    data = load_dataset("parabolas")
    x, y = data.x[:, 0], data.x[:, 1]
    np.testing.assert_array_equal(np.bincount(data.labels), [5000, 5000])
    np.testing.assert_allclose(y, np.where(data.labels == 0, x**2 - 1, 1 - x**2), atol=1e-5)
    assert -1.5 <= x.min() < -1.4 and 1.4 < x.max() <= 1.5
    assert data.centres is None and data.stds is None


def test_split_counts_are_proportional_and_exact():
    np.testing.assert_array_equal(toy.split_counts(15000, (7000, 5000, 3000)), [7000, 5000, 3000])
    counts = toy.split_counts(100, (7, 5, 3))
    assert counts.sum() == 100 and list(counts) == [47, 33, 20]


def test_num_examples_and_seed_are_deterministic():
    a = load_dataset("gaussians3", num_examples=150, seed=1)
    np.testing.assert_array_equal(np.bincount(a.labels), [70, 50, 30])
    np.testing.assert_array_equal(a.x, load_dataset("gaussians3", num_examples=150, seed=1).x)
    assert not np.array_equal(a.x, load_dataset("gaussians3", num_examples=150, seed=2).x)
    digits = load_dataset("digits", num_examples=100, seed=3)
    assert len(digits.x) == 100
    np.testing.assert_array_equal(digits.labels, load_dataset("digits", num_examples=100, seed=3).labels)
    assert len(load_dataset("digits", num_examples=10**6).x) == 1797  # a cap, not a size, for fixed data
    with pytest.raises(DataError, match="positive integer"):
        load_dataset("ring8", num_examples=0)


def test_stacked_digits_channels_are_independent_digits():
    digits = load_dataset("digits")
    data = load_dataset("stacked_digits")
    assert len(np.unique(data.labels)) == 1000
    for i in range(20):
        for channel, digit in enumerate(f"{data.labels[i]:03d}"):
            matches = np.all(digits.x[..., 0] == data.x[i, ..., channel], axis=(1, 2))
            assert matches.any() and int(digit) in digits.labels[matches]
    same = [np.array_equal(data.x[i, ..., 0], data.x[i, ..., 1]) for i in range(200)]
    assert sum(same) < 5


def test_unknown_name_lists_the_built_ins():
    with pytest.raises(DataError, match="unknown dataset 'nope'") as info:
        load_dataset("nope")
    assert all(name in str(info.value) for name in EXPECTED)


# ---------------------------------------------------------------------- tfds (mock data, no downloads)
def test_tfds_mnist_through_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        data = load_dataset("tfds:mnist", num_examples=10)
        test_split = load_dataset("tfds:mnist:test")
    assert data.name == "tfds:mnist:train" and test_split.name == "tfds:mnist:test"
    assert data.x.shape == (10, 28, 28, 1) and data.kind == "images" and data.x.dtype == np.float32
    assert -1.0 <= data.x.min() and data.x.max() <= 1.0
    assert data.num_modes == 10 and data.labels.shape == (10,) and data.labels.max() < 10
    assert len(test_split.x) == 12


def test_tfds_unknown_name_is_a_data_error():
    with pytest.raises(DataError, match="unknown tfds dataset 'no_such_dataset_xyz'"):
        load_dataset("tfds:no_such_dataset_xyz")


# ---------------------------------------------------------------------- user files
def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        np.save(path, content)
    return str(path)


BAD_FILES = [  # (file name, content, expected message)
    ("missing.npy", None, "missing.npy: data file not found"),
    ("empty.csv", "", "empty"),
    ("empty.npy", np.zeros((0, 3), np.float32), r"empty \(shape \(0, 3\)\)"),
    ("header_only.csv", "a,b\n", "no data rows"),
    ("rank1.npy", np.zeros(10, np.float32), "rank 1"),
    ("rank3.npy", np.zeros((4, 5, 6), np.float32), "rank 3"),
    ("rank5.npy", np.zeros((2, 2, 2, 2, 2), np.float32), "rank 5"),
    ("text.npy", np.array([["a", "b"]]), "expected numbers"),
    ("cell.csv", "x,y\n1,2\n3,abc\n", r"row 3, column 2: 'abc' is not a number"),
    ("mixed_header.csv", "x,2\n1,2\n", r"row 1, column 1: 'x'"),
    ("ragged.csv", "1,2\n3,4,5\n", "row 2 has 3 columns, expected 2"),
    ("nan.csv", "1,2\n3,nan\n5,6\n7,inf\n", "2 example.* NaN or inf.*first is row 2"),
    ("nan.npy", np.array([[1, 2], [3, 4], [np.inf, 0]], np.float32), "1 example.* NaN or inf.*first is index 2"),
    ("binary.csv", b"1,2\n\xff\xfe,3\n", "not a readable CSV"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[row[0] for row in BAD_FILES])
def test_bad_files_raise_a_data_error_naming_file_and_problem(tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    with pytest.raises(DataError, match=message) as info:
        load_dataset(path)
    assert name in str(info.value)


def test_csv_with_header_and_blank_lines(tmp_path):
    path = write(tmp_path, "points.csv", "# a, b ,c\n1,2,3\n\n4.5, -6,7e-1\n")
    data = load_dataset(path)
    assert data.kind == "points" and data.labels is None and data.name == path
    np.testing.assert_array_equal(data.x, np.array([[1, 2, 3], [4.5, -6, 0.7]], np.float32))


def test_npy_points_and_uint8_images(tmp_path):
    points = np.arange(12, dtype=np.float64).reshape(6, 2)
    data = load_dataset(write(tmp_path, "p.npy", points))
    assert data.kind == "points" and data.x.dtype == np.float32
    np.testing.assert_array_equal(data.x, points)
    images = np.array([0, 255, 128, 51], np.uint8).reshape(1, 2, 2, 1).repeat(5, axis=0)
    data = load_dataset(write(tmp_path, "img.npy", images))
    assert data.kind == "images" and data.example_shape == (2, 2, 1)
    np.testing.assert_allclose(data.x[0, :, :, 0], [[-1, 1], [128 / 127.5 - 1, 51 / 127.5 - 1]], atol=1e-6)


def test_file_num_examples_is_a_seeded_subsample_in_file_order(tmp_path):
    path = write(tmp_path, "p.npy", np.arange(100, dtype=np.float32).reshape(50, 2))
    data = load_dataset(path, num_examples=10, seed=4)
    assert len(data.x) == 10 and np.all(np.diff(data.x[:, 0]) > 0)
    np.testing.assert_array_equal(data.x, load_dataset(path, num_examples=10, seed=4).x)
