"""The ``Dataset`` every loader returns, and ``DataError``, the error for bad names and files.

Kept apart from the package's ``__init__`` so the loaders (toy, images, files) and the package that
dispatches to them all import it, and none of them imports another.
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
