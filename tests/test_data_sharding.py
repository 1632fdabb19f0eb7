"""The training input pipeline under strategies: every example exactly once per epoch, whether the
global batch is split over replicas (MirroredStrategy) or over worker processes
(MultiWorkerMirroredStrategy, 2 local processes with TF_CONFIG)."""
import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from helpers import WORKER_TIMEOUT_S, free_ports

from tfgan_mix.training.strategy import mirrored_strategy
from tfgan_mix.training.train import make_dataset

N, GLOBAL_BATCH, EPOCHS = 64, 8, 2
STEPS_PER_EPOCH = N // GLOBAL_BATCH

# Run by each worker: iterate the distributed pipeline and record what this worker's replicas got.
_WORKER = """
import json, sys
import numpy as np
import tensorflow as tf
from tfgan_mix.training.train import make_dataset
strategy = tf.distribute.MultiWorkerMirroredStrategy()
x = np.arange({n}, dtype=np.float32)[:, None]
batches = iter(strategy.experimental_distribute_dataset(make_dataset(x, {batch}, seed=3)))
seen = [[v.numpy().ravel().tolist() for v in strategy.experimental_local_results(next(batches))]
        for _ in range({steps})]
json.dump(seen, open(sys.argv[1], "w"))
"""


def _check_epochs(steps):
    """``steps``: per step, the example ids every replica of every worker received."""
    for epoch in range(EPOCHS):
        ids = np.concatenate([np.concatenate(step) for step in steps[epoch * STEPS_PER_EPOCH:(epoch + 1) * STEPS_PER_EPOCH]])
        assert len(ids) == N, f"epoch {epoch}: {len(ids)} examples for {N}"
        np.testing.assert_array_equal(np.sort(ids), np.arange(N), err_msg=f"epoch {epoch} repeated or dropped examples")
    assert not np.array_equal(np.concatenate(steps[0]), np.concatenate(steps[STEPS_PER_EPOCH])), \
        "the order should be reshuffled each epoch"


def test_mirrored_replicas_split_each_global_batch(cpu_devices):
    strategy = mirrored_strategy(tuple(cpu_devices[:2]))
    x = np.arange(N, dtype=np.float32)[:, None]
    batches = iter(strategy.experimental_distribute_dataset(make_dataset(x, GLOBAL_BATCH, seed=3)))
    steps = []
    for _ in range(EPOCHS * STEPS_PER_EPOCH):
        local = [v.numpy().ravel() for v in strategy.experimental_local_results(next(batches))]
        assert [len(v) for v in local] == [GLOBAL_BATCH // 2] * 2, "each replica gets half the global batch"
        steps.append(local)
    _check_epochs(steps)


def test_two_workers_see_disjoint_halves_of_every_epoch(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    script = _WORKER.format(n=N, batch=GLOBAL_BATCH, steps=EPOCHS * STEPS_PER_EPOCH)
    workers, outputs = [], [tmp_path / f"worker{i}.json" for i in range(2)]
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen([sys.executable, "-c", script, str(outputs[index])], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        logs = [w.communicate(timeout=WORKER_TIMEOUT_S)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    for index, (worker, log) in enumerate(zip(workers, logs)):
        assert worker.returncode == 0, f"worker {index} failed:\n{log[-3000:]}"
    per_worker = [json.loads(path.read_text()) for path in outputs]
    for step in zip(*per_worker):
        assert [len(replica) for worker in step for replica in worker] == [GLOBAL_BATCH // 2] * 2
    _check_epochs([[replica for worker in step for replica in worker] for step in zip(*per_worker)])


def test_pipeline_options_are_deliberate():
    dataset = make_dataset(np.zeros((16, 2), np.float32), 4)
    assert dataset.options().experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA
    assert dataset.element_spec.shape[0] == 4, "static batch size (drop_remainder) for XLA"
