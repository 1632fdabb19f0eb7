"""Datasets: the papers' toy distributions, digit images, TensorFlow Datasets and user files.

    from tfgan_mix.data import load_dataset
    data = load_dataset("gaussians3")          # a built-in, see list_datasets()
    data = load_dataset("tfds:mnist:test")     # tfds:NAME[:SPLIT], split defaults to train
    data = load_dataset("points.csv")          # PATH.npy or PATH.csv

Toy constants and their sources are pinned at the top of ``tfgan_mix/data/toy.py``.
"""
import numpy as np

from tfgan_mix.data import files, images, toy
from tfgan_mix.data.dataset import KINDS, DataError, Dataset  # noqa: F401  (public here)

DATASETS = {**toy.DATASETS, **images.DATASETS}  # built-in name -> one-line description
FILE_SUFFIXES = (".npy", ".csv")


def list_datasets():
    """Names of the built-in datasets (descriptions in ``DATASETS``)."""
    return list(DATASETS)


def load_dataset(spec, *, seed=0, num_examples=None):
    """Load a built-in name, ``tfds:NAME[:SPLIT]`` or a ``.npy``/``.csv`` path.

    ``num_examples`` sets the size of generated datasets and caps the others (a seeded subsample;
    the first examples for tfds). Raises ``DataError`` for unknown names and bad files.
    """
    spec = str(spec)
    if num_examples is not None and (not isinstance(num_examples, (int, np.integer)) or num_examples < 1):
        raise DataError(f"num_examples must be a positive integer, got {num_examples!r}")
    if spec.startswith("tfds:"):
        return images.load_tfds(spec, num_examples)
    if spec.lower().endswith(FILE_SUFFIXES):
        return files.load_file(spec).subsample(num_examples, seed)
    if spec in toy.DATASETS:
        return toy.load(spec, num_examples, seed)
    if spec in images.DATASETS:
        return images.load(spec, num_examples, seed)
    raise DataError(
        f"unknown dataset {spec!r}; built-in datasets: {', '.join(DATASETS)}; "
        f"or tfds:NAME[:SPLIT], or a path ending in {' or '.join(FILE_SUFFIXES)}"
    )


__all__ = ["DATASETS", "DataError", "Dataset", "list_datasets", "load_dataset"]
