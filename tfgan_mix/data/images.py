"""Image datasets: scikit-learn's 8x8 digits (bundled, no download), stacked digits, and tfds.

Pixels are scaled to [-1, 1]; images have shape (n, height, width, channels).
"""
import numpy as np

from tfgan_mix.data.dataset import DataError, Dataset

DIGITS_MAX_PIXEL = 16.0  # load_digits pixels are integers 0..16
STACKED_CHANNELS = 3  # stacked MNIST protocol: one digit per channel, 10**3 = 1000 modes
STACKED_COUNT = 20000  # our choice

DATASETS = {
    "digits": "scikit-learn 8x8 digits (1797 images), 10 classes",
    "stacked_digits": "3 random 8x8 digits stacked as channels, 1000 modes (label 100a + 10b + c)",
}


def _digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images[..., None] * (2.0 / DIGITS_MAX_PIXEL) - 1.0
    return x, bunch.target.astype(np.int64)


def load(name, num_examples=None, seed=0):
    """``digits`` (capped to ``num_examples`` by a seeded subsample) or ``stacked_digits`` (generated)."""
    x, labels = _digits()
    if name == "digits":
        dataset = Dataset(name, x, "images", labels=labels, num_modes=10, description=DATASETS[name])
        return dataset.subsample(num_examples, seed)
    picks = np.random.default_rng(seed).integers(len(x), size=(num_examples or STACKED_COUNT, STACKED_CHANNELS))
    stacked = np.concatenate([x[picks[:, c]] for c in range(STACKED_CHANNELS)], axis=-1)
    label = labels[picks] @ (10 ** np.arange(STACKED_CHANNELS - 1, -1, -1))
    return Dataset(name, stacked, "images", labels=label, num_modes=10**STACKED_CHANNELS,
                   description=DATASETS[name])


def load_tfds(spec, num_examples=None):
    """``tfds:NAME[:SPLIT]``: the first image feature scaled to [-1, 1], labels from ``label`` if present.

    Takes the first ``num_examples`` examples of the split (all if None).
    """
    import tensorflow_datasets as tfds

    name, _, split = spec[len("tfds:"):].partition(":")
    split = split or "train"
    if not name:
        raise DataError(f"{spec!r}: expected tfds:NAME[:SPLIT]")
    try:
        data, info = tfds.load(name, split=split, as_supervised=False, with_info=True)
    except tfds.core.DatasetNotFoundError:
        raise DataError(f"unknown tfds dataset {name!r} (tfds.list_builders() lists the known ones)") from None
    except Exception as error:  # tfds raises many types: not prepared, bad split, download failures
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise DataError(f"could not load tfds dataset {name!r} split {split!r}: {reason}") from error
    features = info.features
    image_key = next((k for k, f in features.items() if isinstance(f, tfds.features.Image)), None)
    if image_key is None:
        raise DataError(f"tfds dataset {name!r} has no image feature (features: {', '.join(features)})")
    if None in features[image_key].shape:
        raise DataError(f"tfds dataset {name!r} has images of varying size {features[image_key].shape}")
    label = features["label"] if "label" in features else None
    if not isinstance(label, tfds.features.ClassLabel):
        label = None  # only class labels make modes
    keys = [image_key] + (["label"] if label is not None else [])
    if num_examples is not None:
        data = data.take(num_examples)
    batches = list(tfds.as_numpy(data.map(lambda ex: {k: ex[k] for k in keys}).batch(1024)))
    if not batches:
        raise DataError(f"tfds dataset {name!r} split {split!r} has no examples")
    images = np.concatenate([b[image_key] for b in batches])
    if images.dtype != np.uint8:
        raise DataError(f"tfds dataset {name!r}: image feature {image_key!r} is {images.dtype}, expected uint8")
    labels = np.concatenate([b["label"] for b in batches]) if label is not None else None
    return Dataset(f"tfds:{name}:{split}", images.astype(np.float32) / 127.5 - 1.0, "images", labels=labels,
                   num_modes=label.num_classes if label is not None else None,
                   description=f"TensorFlow Datasets {name}, split {split}")
