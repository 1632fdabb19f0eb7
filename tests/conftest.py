"""Test-session set-up: quiet TensorFlow, and split the CPU into 2 logical devices before the
runtime starts so MirroredStrategy tests have two replicas on a GPU-less machine. Fixtures shared
by several modules live here; plain helpers live in helpers.py."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfgan_mix.training.strategy import split_cpu  # noqa: E402

split_cpu(2)

# Re-exported for modules that still import them from here; new code imports from helpers.
from helpers import tiny_options, toy_batches  # noqa: E402, F401


@pytest.fixture
def cpu_devices():
    return [d.name for d in tf.config.list_logical_devices("CPU")]

