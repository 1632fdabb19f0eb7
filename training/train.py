"""Train a registered method with ``model.fit``: build in the strategy's scope, feed a tf.data
pipeline, write TensorBoard logs and sample pictures, back up for resumption, save ``.keras``.

Run directory layout::

    DIR/model.keras      the trained model (written atomically at the end)
    DIR/run.json         what was trained: method, data, options, steps, batch size, seed
    DIR/logs/            TensorBoard scalars (every loss term) and sample pictures
    DIR/backup/          BackupAndRestore state while training; re-running the same command resumes
"""
import dataclasses
import json
import os

import keras
import tensorflow as tf

from tfgan_mix.core import get_method
from tfgan_mix.training.callbacks import SamplePictures

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"


@dataclasses.dataclass
class TrainSpec:
    method: str
    data: str
    steps: int
    num_generators: int | None = None
    batch_size: int = 256
    seed: int = 0
    options: dict = dataclasses.field(default_factory=dict)
    epoch_steps: int = 500  # steps between logs, pictures and backups
    steps_per_execution: int = 1  # train steps per call into the compiled function (TPUs want many)

    def model_options(self, dataset):
        options = {"data_shape": dataset.example_shape, "seed": self.seed, **self.options}
        if self.num_generators is not None:
            options["num_generators"] = self.num_generators
        return options


def build_model(method, options, strategy=None, **compile_kwargs):
    """Create, build and compile ``method`` inside ``strategy.scope()`` (networks and optimizers)."""
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = get_method(method)(**options)
        model.compile(**compile_kwargs)
    return model


def make_dataset(x, batch_size, seed=0):
    """Shuffled, repeated, fixed-size batches. In-memory data is sharded by example (DATA policy):
    every worker holds the same array, so file-based sharding would not apply."""
    if batch_size > len(x):
        raise ValueError(f"batch size {batch_size} is larger than the dataset ({len(x)} examples)")
    dataset = (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def epoch_plan(steps, epoch_steps):
    """(steps_per_epoch, epochs) covering exactly ``steps``: the largest divisor of ``steps`` not
    above ``epoch_steps`` (one epoch when ``steps`` has no divisor in a useful range)."""
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    for length in range(min(steps, epoch_steps), 0, -1):
        if steps % length == 0 and length >= min(steps, max(1, epoch_steps // 5)):
            return length, steps // length
    return steps, 1


def check_out_dir(out_dir, overwrite=False):
    """Refuse to clobber a finished run; a run with a backup is resumed, not restarted."""
    if os.path.exists(os.path.join(out_dir, MODEL_FILE)) and not overwrite:
        raise FileExistsError(
            f"{out_dir} already holds a trained model ({MODEL_FILE}); choose another --out or pass --overwrite"
        )


def train(spec, dataset, out_dir, strategy=None, jit_compile="auto", verbose=1, extra_callbacks=()):
    """Train per ``spec`` on ``dataset`` (a ``tfgan_mix.data.Dataset``); returns (model, history)."""
    strategy = strategy or tf.distribute.get_strategy()
    options = spec.model_options(dataset)
    get_method(spec.method)._make_config(options)  # bad options fail before anything is written
    global_batch = spec.batch_size
    steps_per_epoch, epochs = epoch_plan(spec.steps, spec.epoch_steps)
    if spec.steps_per_execution < 1 or steps_per_epoch % spec.steps_per_execution:
        raise ValueError(f"steps per execution ({spec.steps_per_execution}) must divide the epoch length "
                         f"({steps_per_epoch} steps; set with --epoch-steps)")
    data = make_dataset(dataset.x, global_batch, seed=spec.seed)

    run_dir = worker_dir(out_dir)
    os.makedirs(run_dir, exist_ok=True)
    _write_json(os.path.join(run_dir, RUN_FILE), {**dataclasses.asdict(spec), "model_options": options})
    keras.utils.set_random_seed(spec.seed)  # weight initialisation too, so a run repeats exactly
    model = build_model(spec.method, options, strategy, jit_compile=jit_compile,
                        steps_per_execution=spec.steps_per_execution)
    callbacks = [
        # double_checkpoint: a kill while writing a backup falls back to the one before it.
        keras.callbacks.BackupAndRestore(os.path.join(run_dir, "backup"), save_freq="epoch", double_checkpoint=True),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), update_freq="epoch"),
        SamplePictures(os.path.join(run_dir, "logs", "samples"), real=dataset.x, seed=spec.seed),
        *extra_callbacks,
    ]
    history = model.fit(data, epochs=epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks, verbose=verbose,
                        shuffle=False)  # the tf.data pipeline shuffles
    save_model_atomically(model, os.path.join(run_dir, MODEL_FILE))
    return model, history


def worker_dir(out_dir):
    """Where this process writes: ``out_dir`` for the chief (or a single process), and
    ``out_dir/workers/<index>`` for the other workers of a multi-worker cluster, so workers
    sharing a file system never write the same file. The chief's run is the one to use."""
    if _is_chief():
        return out_dir
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    return os.path.join(out_dir, "workers", f"{task['type']}-{task['index']}")


def save_model_atomically(model, path):
    """Write to a temporary name and rename, so a reader never sees half a file."""
    tmp = f"{path}.tmp-{os.getpid()}.keras"
    model.save(tmp)
    os.replace(tmp, path)


def load_run(run_dir):
    """Load the trained model of a run directory."""
    path = os.path.join(run_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no trained model ({MODEL_FILE}); train one with `tfgan-mix train`")
    import tfgan_mix.methods  # noqa: F401  (registers every method class for deserialisation)

    return keras.models.load_model(path)


def read_run_info(run_dir):
    with open(os.path.join(run_dir, RUN_FILE), encoding="utf-8") as f:
        return json.load(f)


def _write_json(path, obj):
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _is_chief():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    return task.get("type", "chief") == "chief" or (task.get("type") == "worker" and task.get("index", 0) == 0
                                                    and "chief" not in config.get("cluster", {}))
