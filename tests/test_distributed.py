"""Multi-worker training: two local processes, configured by TF_CONFIG on 127.0.0.1, train one model."""
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from helpers import WORKER_TIMEOUT_S, free_ports

import tfgan_mix.methods  # noqa: F401  (registers the methods for load_model)


def _backed_up_epoch(metadata):
    """Epochs in the last backup; 0 while there is none (or it is being written)."""
    try:
        return json.loads(metadata.read_text())["epoch"]
    except (OSError, ValueError, KeyError):
        return 0


@pytest.mark.slow
def test_two_workers_train_together_and_end_with_identical_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    command = [sys.executable, "-m", "tfgan_mix.training.cli", "train", "--method", "npgan", "--data", "gaussians3",
               "--generators", "3", "--steps", "30", "--batch-size", "64", "--strategy", "multiworker",
               "--out", str(tmp_path), "--set", "generator_units=[16]", "--set", "discriminator_units=[16]",
               "--set", "router_units=[8]", "--set", "latent_dim=4"]
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [w.communicate(timeout=WORKER_TIMEOUT_S)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index} failed:\n{output[-3000:]}"

    chief = keras.models.load_model(tmp_path / "model.keras")  # worker 0 is the chief
    other = keras.models.load_model(tmp_path / "workers" / "worker-1" / "model.keras")
    assert int(chief.g_optimizer.iterations.numpy()) == int(other.g_optimizer.iterations.numpy()) == 30
    for a, b in zip(chief.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    # The run really trained: the weights left their seeded initial values.
    keras.utils.set_random_seed(0)
    fresh = type(chief).from_config(chief.get_config())
    assert any(not np.allclose(a, b) for a, b in zip(fresh.get_weights(), chief.get_weights()))


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_backup(tmp_path):
    """SIGKILL mid-run, then the same command again: it continues from the last backup (losing at
    most one backup interval), and the step counters of both optimizers end at the total."""
    import re
    import signal
    import time

    import tfgan_mix.training.train as T

    steps, interval = 2000, 100
    command = [sys.executable, "-m", "tfgan_mix.training.cli", "train", "--method", "gan", "--data", "gaussians3",
               "--steps", str(steps), "--epoch-steps", str(interval), "--batch-size", "64", "--out", str(tmp_path),
               "--set", "generator_units=[16]", "--set", "discriminator_units=[16]", "--set", "latent_dim=4"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    metadata = tmp_path / "backup" / "training_metadata.json"
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + WORKER_TIMEOUT_S
    try:
        while time.monotonic() < deadline and first.poll() is None:
            if _backed_up_epoch(metadata) >= 2:
                break
            time.sleep(0.2)
        assert first.poll() is None, "the run ended before it could be killed: raise --steps"
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        first.kill()
    backed_up_epochs = _backed_up_epoch(metadata)
    assert not (tmp_path / T.MODEL_FILE).exists()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)
    assert second.returncode == 0, second.stderr[-3000:]
    epochs_run = [int(n) for n in re.findall(r"Epoch (\d+)/", second.stdout)]
    assert epochs_run[0] == backed_up_epochs + 1, "the second run must start after the last backed-up epoch"
    assert epochs_run[-1] == steps // interval
    model = T.load_run(tmp_path)
    assert int(model.g_optimizer.iterations.numpy()) == steps
    assert int(model.d_optimizer.iterations.numpy()) == steps
    print(f"\nkilled with {backed_up_epochs * interval} steps backed up; the rerun started at step "
          f"{(epochs_run[0] - 1) * interval} and ended at {int(model.g_optimizer.iterations.numpy())} of {steps}")
