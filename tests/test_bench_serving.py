"""Benchmark (not part of the suite; run with `python -m pytest -m benchmark -n 0 -s tests/test_bench_serving.py`):
train NPGAN on gaussians3 with its preset, export it, serve it, and print

* acceptance and off-manifold rate of served samples (REST) against the raw generator's;
* samples per second of the Keras sampler, the SavedModel signature and onnxruntime on one batch.
"""
import json
import time
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest
import tensorflow as tf

from tfgan_mix import metrics as M
from tfgan_mix.data import load_dataset
from tfgan_mix.export import writer
from tfgan_mix.export.sampler import Rejection, Sampler
from tfgan_mix.serving.model_server import serve
from tfgan_mix.training import presets
from tfgan_mix.training.train import TrainSpec, load_run, train

ROWS, REPEATS = 4096, 5


def _rate(function):
    function()  # warm-up: tracing and graph optimisation are not throughput
    start = time.perf_counter()
    for _ in range(REPEATS):
        function()
    return ROWS * REPEATS / (time.perf_counter() - start)


@pytest.mark.benchmark
def test_served_npgan_on_gaussians3(tmp_path):
    preset = presets.load("npgan_gaussians3")
    data = load_dataset("gaussians3")
    spec = TrainSpec(method="npgan", data="gaussians3", steps=preset["steps"], num_generators=preset["generators"],
                     batch_size=preset["batch_size"], options=preset["options"])
    train(spec, data, str(tmp_path / "run"), verbose=0)
    version = writer.export_run(str(tmp_path / "run"), str(tmp_path / "export"))
    heldout = load_dataset("gaussians3", seed=1)
    off = lambda s: M.off_manifold_rate(s, heldout.x, heldout.labels, heldout.centres)  # noqa: E731

    server = serve(str(tmp_path / "export"), port=0, grpc_port=0)
    try:
        served, accepted = [], []
        for start in range(0, 5000, 500):
            body = json.dumps({"inputs": {"seed": list(range(start, start + 500))}}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{server.rest_port}/v1/models/sampler:predict", body)
            with urllib.request.urlopen(request, timeout=60) as response:
                outputs = json.loads(response.read())["outputs"]
            served.append(np.array(outputs["samples"]))
            accepted.append(np.array(outputs["accepted"]))
    finally:
        server.stop()
    served, accepted = np.concatenate(served), np.concatenate(accepted)
    raw, _ = load_run(str(tmp_path / "run")).sample(5000, seed=10_000)
    print(f"\nserved: acceptance {accepted.mean():.4f}, off-manifold of accepted {off(served[accepted]):.4f}; "
          f"raw generator off-manifold {off(raw):.4f}")

    card = json.loads(open(f"{version}/sampler.json").read())
    sampler = Sampler(load_run(str(tmp_path / "run")), Rejection.load(version, card))
    noise = sampler.candidate_noise(tf.range(ROWS, dtype=tf.int64))
    keras_fn = sampler.noise_function()
    names = list(sampler.noise_spec)
    saved = tf.saved_model.load(version).signatures["from_noise"]
    session = ort.InferenceSession(f"{version}/model.onnx", providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy() for k, v in noise.items()}
    print(f"samples/s on {ROWS} rows x {sampler.candidates} candidates: "
          f"keras {_rate(lambda: keras_fn(*[noise[n] for n in names])):.0f}, "
          f"savedmodel {_rate(lambda: saved(**noise)):.0f}, onnxruntime {_rate(lambda: session.run(None, feeds)):.0f}")
