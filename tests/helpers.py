"""Plain helpers shared by the test modules: tiny models and steps, numpy references, the tiny
trained run, and a loopback HTTP client. Fixtures live in conftest.py; this module has none."""
import copy
import json
import socket
import urllib.error
import urllib.request

import keras
import numpy as np
import tensorflow as tf

import tfgan_mix
from tfgan_mix.core import Step

TIMEOUT_S = 30  # every wait on a test server
WORKER_TIMEOUT_S = 240  # every wait on a local multi-worker training process


# ---------------------------------------------------------------------- tiny models
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
    fields = cls.config_class.field_names()
    if "router_units" in fields:
        options["router_units"] = (16,)
    if "partitioner_blocks" in fields:  # the paper's 60-layer partitioner traced 5 s of one image step
        options.update(partitioner_blocks=2, partitioner_layers=2, partitioner_units=16)
    # Critic steps are unrolled in the step graph: two still run the loop (each with its own noise).
    options["d_steps"] = min(2, cls.config_class().d_steps)
    return options


def toy_batches(data_shape, batch_size=16, n=256, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, *data_shape)).astype("float32")
    if len(data_shape) == 3:
        x = np.tanh(x)
    return tf.data.Dataset.from_tensor_slices(x).repeat().batch(batch_size, drop_remainder=True)


def tiny_model(method, *, seed=None, strategy=None, compile_kwargs=None, **overrides):
    """``build_model`` on ``tiny_options(method)`` updated by ``overrides``; with ``seed``, Keras'
    global seed is set first (weight initialisation)."""
    from tfgan_mix.core import build_model

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return build_model(method, {**tiny_options(method), **overrides}, strategy, **(compile_kwargs or {}))


def training_step(model, batch, seed, real=None):
    """A ``Step`` of ``batch`` rows of training noise drawn at the int pair ``seed``; ``real`` is
    zeros of the model's data shape unless given."""
    noise = model.sample_noise(batch, tf.constant(seed, tf.int64), model.training_noise_spec())
    if real is None:
        real = tf.zeros([batch, *model.config.data_shape])
    return Step(real=tf.convert_to_tensor(real), noise=noise)


def snapshot(variables):
    return [v.numpy().copy() for v in variables]


def moved(before, variables):
    return any(not np.allclose(b, v.numpy()) for b, v in zip(before, variables))


# ---------------------------------------------------------------------- numpy references
def sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, dtype=np.float64)))


def softplus(x):
    return np.log1p(np.exp(x))


def log_softmax(x):
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


# ---------------------------------------------------------------------- the tiny trained run
TINY_RUN = {"method": "npgan", "data": "gaussians3", "steps": 4, "batch_size": 32, "num_generators": 3,
            "options": {"generator_units": [16], "discriminator_units": [16], "latent_dim": 4, "router_units": [8]}}


def train_tiny_run(out, **changes):
    """Train ``TINY_RUN`` (updated by ``changes``, TrainSpec fields) into ``out``; returns ``str(out)``.
    Training seeds itself, so every call with the same changes gives the same run."""
    from tfgan_mix.data import load_dataset
    from tfgan_mix.training.train import TrainSpec, train

    spec = TrainSpec(**copy.deepcopy({**TINY_RUN, **changes}))
    train(spec, load_dataset(spec.data), str(out), verbose=0)
    return str(out)


# ---------------------------------------------------------------------- loopback
def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def http(server, method, path, body=None, raw=None, headers=None):
    """One REST request to ``server`` on loopback: (status, decoded JSON answer), 4xx/5xx included."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
