"""Datasets: the papers' toy distributions, digit images, TensorFlow Datasets and user files.

    from tfgan_mix.data import load_dataset
    data = load_dataset("gaussians3")          # a built-in, see list_datasets()
    data = load_dataset("tfds:mnist:test")     # tfds:NAME[:SPLIT], split defaults to train
    data = load_dataset("points.csv")          # PATH.npy or PATH.csv

Toy constants and their sources are pinned at the top of ``tfgan_mix/data/toy.py``.
"""
import dataclasses

import numpy as np

KINDS = ("points", "images")


class DataError(ValueError):
    """Bad dataset name or data file; the message names the problem."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Examples ``x`` (float32, C-contiguous) with optional per-example mode labels. Wider floats
    are converted, and refused with a ``DataError`` when a finite value would overflow float32.

    ``centres`` (num_modes, d) and ``stds`` (num_modes,) are set for Gaussian mixtures only.
    ``extra_metrics`` names the metrics that apply beyond every dataset's general ones and the
    mixture ones (which follow from ``centres``): ``"uncovered_share"``, the share of real points
    with no sample within epsilon (paper 000, section 4.2), for points lying exactly on curves.
    Evaluation and the export's model card read it instead of checking dataset names.
    """

    name: str
    x: np.ndarray
    kind: str
    labels: np.ndarray | None = None
    centres: np.ndarray | None = None
    stds: np.ndarray | None = None
    num_modes: int | None = None
    description: str = ""
    extra_metrics: tuple[str, ...] = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        x = np.asarray(self.x)
        if x.dtype.kind == "f" and x.dtype.itemsize > 4:
            finite = np.abs(x[np.isfinite(x)])
            if finite.size and finite.max() > np.finfo(np.float32).max:
                raise DataError(f"{self.name}: values up to {finite.max():.3g} do not fit float32 (max "
                                f"{np.finfo(np.float32).max:.3g}), the dtype training uses; rescale the data")
        object.__setattr__(self, "x", np.ascontiguousarray(x, dtype=np.float32))
        if self.labels is not None:
            object.__setattr__(self, "labels", np.asarray(self.labels, dtype=np.int64))

    @property
    def example_shape(self):
        return tuple(self.x.shape[1:])

    def subsample(self, num_examples, seed=0):
        """At most ``num_examples`` examples, drawn without replacement by ``seed``, in original order."""
        if num_examples is None or num_examples >= len(self.x):
            return self
        keep = np.sort(np.random.default_rng(seed).choice(len(self.x), num_examples, replace=False))
        labels = None if self.labels is None else self.labels[keep]
        return dataclasses.replace(self, x=self.x[keep], labels=labels)


# The loaders import Dataset and DataError from here, so they come after both.
from tfgan_mix.data import files, images, toy  # noqa: E402

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
