"""Test-session set-up: quiet TensorFlow, and split the CPU into 2 logical devices before the
runtime starts so MirroredStrategy tests have two replicas on a GPU-less machine."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfgan_mix.training.strategy import split_cpu  # noqa: E402

split_cpu(2)

import tfgan_mix  # noqa: E402


def tiny_options(method, images=False):
    """The smallest sensible network for each method, so shared tests stay fast."""
    cls = tfgan_mix.get_method(method)
    k = 1 if cls.max_generators == 1 else 4
    options = {
        "num_generators": k,
        "latent_dim": 8,
        "generator_units": (16, 16),
        "discriminator_units": (32, 32),
        "seed": 3,
    }
    if images:
        options.update(data_shape=(8, 8, 1), generator_filters=(8, 8), discriminator_filters=(8, 8))
    else:
        options["data_shape"] = (2,)
    if "router_units" in cls.config_class.field_names():
        options["router_units"] = (16,)
    return options


def toy_batches(data_shape, batch_size=16, n=256, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, *data_shape)).astype("float32")
    if len(data_shape) == 3:
        x = np.tanh(x)
    return tf.data.Dataset.from_tensor_slices(x).repeat().batch(batch_size, drop_remainder=True)


@pytest.fixture
def cpu_devices():
    return [d.name for d in tf.config.list_logical_devices("CPU")]
