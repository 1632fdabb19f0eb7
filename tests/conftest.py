"""Test-session set-up: quiet TensorFlow, and split the CPU into 2 logical devices before the
runtime starts so MirroredStrategy tests have two replicas on a GPU-less machine. Fixtures shared
by several modules live here; plain helpers live in helpers.py."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under pytest-xdist each test process would size TensorFlow's intra-op pool to every core, so two
# processes on 2 cores oversubscribe them; most of a test's time is single-threaded tracing anyway.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfgan_mix.training.strategy import split_cpu  # noqa: E402

split_cpu(2)

from helpers import train_tiny_run  # noqa: E402


def pytest_collection_modifyitems(items):
    """Tests marked ``slow`` first: pytest-xdist hands tests out in this order, so the long ones
    start early and the short ones even out the processes' loads at the end, instead of one long
    test running alone at the end of the suite."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def cpu_devices():
    return [d.name for d in tf.config.list_logical_devices("CPU")]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny npgan run of ``helpers.TINY_RUN`` (4 steps on gaussians3), trained once per test
    process and shared by the export and serving tests. Read it, never write into it."""
    return train_tiny_run(tmp_path_factory.mktemp("tiny_run"))


@pytest.fixture(scope="session")
def truncated_export(tiny_run, tmp_path_factory):
    """``tiny_run`` exported (SavedModel and ONNX) with the truncation rule at L2 radius 0.9 and one
    candidate per row: of 4-D uniform z it accepts the 4-ball's share of the cube [-1, 1]^4.
    Returns the version directory; read it, never write into it."""
    from tfgan_mix.export import writer

    return writer.export_run(tiny_run, str(tmp_path_factory.mktemp("truncated")), rule="truncation",
                             threshold=-0.9, candidates=1)

