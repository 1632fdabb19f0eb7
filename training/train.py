"""Train a registered method with ``model.fit``: build in the strategy's scope, feed a tf.data
pipeline, write TensorBoard logs and sample pictures, back up for resumption, save ``.keras``.

Run directory layout::

    DIR/model.keras      the trained model (written atomically at the end)
    DIR/run.json         what was trained: method, data, options, steps, batch size, seed
    DIR/logs/            TensorBoard scalars (every loss term) and sample pictures
    DIR/backup/          crash-safe backups while training (``RunBackup``); re-running the same
                         command resumes from the newest intact one

The file names, loading a run and the atomic writes are ``tfgan_mix.runs``, which export shares.

Crash safety: a backup is a complete directory or absent; the backup is deleted only after
``model.keras`` is in place; a rerun with other arguments is refused; a resumed run ends with the
same weights as an uninterrupted one (the noise is a function of the step, the data stream is
replayed up to the resumed step, and both optimizers' state is restored);
a NaN or infinite loss stops training with ``TrainingDiverged`` and no ``model.keras``.
"""
import dataclasses
import glob
import hashlib
import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from tfgan_mix import constants, runs
from tfgan_mix.core import build_model, get_method
# MODEL_FILE, RUN_FILE, load_run and read_run_info live in tfgan_mix.runs (export reads runs too);
# they stay importable from here.
from tfgan_mix.runs import MODEL_FILE, RUN_FILE, load_run, read_run_info  # noqa: F401
from tfgan_mix.training.callbacks import RunBackup, SamplePictures, StopOnNaN

BACKUP_DIR = "backup"


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run's ``model.keras`` was not written."""


@dataclasses.dataclass
class TrainSpec:
    method: str
    data: str
    steps: int
    num_generators: int | None = None
    batch_size: int = constants.BATCH_SIZE
    seed: int = 0
    options: dict = dataclasses.field(default_factory=dict)
    epoch_steps: int = constants.EPOCH_STEPS  # steps between logs, pictures and backups
    steps_per_execution: int = 1  # train steps per call into the compiled function (TPUs want many)

    def model_options(self, dataset):
        """The model's options: the spec's, the data's shape and the seed; a linear rate decay
        without its length decays over this run's ``steps``."""
        options = {"data_shape": dataset.example_shape, "seed": self.seed, **self.options}
        if self.num_generators is not None:
            options["num_generators"] = self.num_generators
        if options.get("learning_rate_decay") == "linear":
            options.setdefault("learning_rate_decay_steps", self.steps)
        return options


def make_dataset(x, batch_size, seed=0, start_step=0):
    """Shuffled, repeated, fixed-size batches, starting at batch ``start_step`` of the stream.

    The stream is a function of (seed, the global seed): a fresh iterator replays the same
    per-pass shuffles, so a resumed run skips the ``start_step * batch_size`` examples it already
    saw and then sees exactly the batches an uninterrupted run would. (Without the skip it would
    replay the first epoch's order.) The skip reads those examples through the shuffle once, at
    resumption only: 23 s for 20000 steps of 256 two-dimensional examples on a 2-core CPU. In-memory data is sharded by
    example (DATA policy): every worker holds the same array, so file-based sharding would not apply."""
    if batch_size > len(x):
        raise ValueError(f"batch size {batch_size} is larger than the dataset ({len(x)} examples)")
    if start_step < 0:
        raise ValueError(f"start_step must be >= 0, got {start_step}")
    dataset = (
        tf.data.Dataset.from_tensor_slices(x)
        .shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
        .repeat()
        .skip(start_step * batch_size)
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


def run_info(spec, options, dataset):
    """What run.json records, normalised through JSON so it compares equal to what is read back.
    ``data_sha256`` fingerprints the examples themselves, so an edited data file counts as other data."""
    info = {**dataclasses.asdict(spec), "model_options": options,
            "data_sha256": hashlib.sha256(np.ascontiguousarray(dataset.x).tobytes()).hexdigest()}
    return json.loads(json.dumps(info, default=runs.json_default))


def run_differences(old, new):
    """``key old -> new`` for every argument that differs between two run.json records. The resolved
    ``model_options`` stand for ``options``; the data's checksum counts only when both records have
    one (older records do not) and the data's name is the same."""
    def flat(info):
        out = {k: v for k, v in info.items() if k not in ("options", "model_options")}
        out.update({f"model_options.{k}": v for k, v in (info.get("model_options") or {}).items()})
        return out

    old, new = flat(old), flat(new)
    differences = []
    for key in sorted(set(old) | set(new)):
        if key == "data_sha256":
            if key in old and key in new and old[key] != new[key] and old.get("data") == new.get("data"):
                differences.append(f"the contents of {new['data']}")
        elif old.get(key, "<unset>") != new.get(key, "<unset>"):
            differences.append(f"{key} {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}")
    return differences


def check_resume(run_dir, info, overwrite=False):
    """Refuse to resume an unfinished run with other arguments than it was started with: its backup
    holds another model, and run.json would no longer describe what was trained."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.exists(path):
        return
    try:
        old = read_run_info(run_dir)
    except (OSError, ValueError):
        return  # unreadable: the backups' own fingerprints still guard against a mismatch
    differences = run_differences(old, info)
    if differences and not overwrite:
        raise ValueError(f"{run_dir} holds an unfinished run with other arguments ({'; '.join(differences)}); "
                         f"rerun with the same arguments to resume it, pass --overwrite to start over, "
                         f"or choose another --out")


def train(spec, dataset, out_dir, strategy=None, jit_compile="auto", verbose=1, extra_callbacks=(), overwrite=False):
    """Train per ``spec`` on ``dataset`` (a ``tfgan_mix.data.Dataset``); returns (model, history).

    Resumes from ``out_dir/backup`` when an earlier attempt at the same run was interrupted;
    ``overwrite=True`` starts over instead. Raises ``FileExistsError`` over a finished run,
    ``ValueError`` for other arguments than the interrupted run's, and ``TrainingDiverged`` when a
    loss becomes NaN or infinite (no ``model.keras`` is written then).
    """
    strategy = strategy or tf.distribute.get_strategy()
    options = spec.model_options(dataset)
    get_method(spec.method).make_config(options)  # bad options fail before anything is written
    global_batch = spec.batch_size
    steps_per_epoch, epochs = epoch_plan(spec.steps, spec.epoch_steps)
    if spec.steps_per_execution < 1 or steps_per_epoch % spec.steps_per_execution:
        raise ValueError(f"steps per execution ({spec.steps_per_execution}) must divide the epoch length "
                         f"({steps_per_epoch} steps; set with --epoch-steps)")
    if global_batch > len(dataset.x):
        raise ValueError(f"batch size {global_batch} is larger than the dataset ({len(dataset.x)} examples)")

    run_dir = worker_dir(out_dir)
    check_out_dir(run_dir, overwrite=overwrite)
    info = run_info(spec, options, dataset)
    check_resume(run_dir, info, overwrite=overwrite)
    backup_dir = os.path.join(run_dir, BACKUP_DIR)
    backup = RunBackup(backup_dir, fingerprint=_fingerprint(info), steps_per_epoch=steps_per_epoch)
    if overwrite:
        shutil.rmtree(backup_dir, ignore_errors=True)
    else:
        backup.check_fingerprints()  # run.json lost or edited: the backups still name their run
    os.makedirs(run_dir, exist_ok=True)
    remove_stale_temporaries(run_dir)
    runs.write_run_info(run_dir, info)
    keras.utils.set_random_seed(spec.seed)  # weight initialisation too, so a run repeats exactly
    model = build_model(spec.method, options, strategy, jit_compile=jit_compile,
                        steps_per_execution=spec.steps_per_execution)
    resolve_auto_jit(model, jit_compile, strategy)
    initial_epoch = backup.restore(model, max_epoch=epochs)
    data = make_dataset(dataset.x, global_batch, seed=spec.seed, start_step=initial_epoch * steps_per_epoch)
    nan_stop = StopOnNaN(steps_per_epoch)
    callbacks = [
        nan_stop,  # before the backup, which skips an epoch that stopped training
        backup,
        keras.callbacks.TensorBoard(os.path.join(run_dir, "logs"), update_freq="epoch"),
        SamplePictures(os.path.join(run_dir, "logs", "samples"), real=dataset.x, seed=spec.seed),
        *extra_callbacks,
    ]
    history = model.fit(data, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps_per_epoch,
                        callbacks=callbacks, verbose=verbose, shuffle=False)  # the pipeline shuffles
    if nan_stop.failure or not all(np.all(np.isfinite(v.numpy())) for v in model.variables):
        good = backup._backups()
        kept = (f"the last good backup ({good[0]}) is kept in {backup_dir}, but a rerun resumes there and, "
                f"training being deterministic, diverges again" if good else "no good backup was written")
        raise TrainingDiverged(f"training diverged: {nan_stop.failure or 'the weights hold NaN or infinite values'}; "
                               f"{MODEL_FILE} was not written; {kept}; change the learning rates or the data and "
                               f"pass --overwrite to start over")
    runs.save_model(model, run_dir)
    shutil.rmtree(backup_dir, ignore_errors=True)  # only now: a crash before this point resumes from it
    return model, history


def resolve_auto_jit(model, jit_compile, strategy):
    """``jit_compile="auto"`` compiles a single-process, single-replica run's step with XLA where
    the model's step compiles (Keras 3 alone turns XLA off on machines without an accelerator).
    Measured on a 2-core CPU: the demo (npgan, gaussians3 preset) trained in 74.1 s with XLA against
    84.4 s without (whole process, median of 3 interleaved runs), and in BENCHMARKS.md's speed
    tables the package's own steps run faster with XLA at every size measured (GeneratorBank
    K = 1-200, npgan K = 3 and 32, PGMGAN k = 1-200). Under several replicas or workers the
    choice stays Keras's (XLA off there), which was not measured."""
    single = strategy.num_replicas_in_sync == 1 and not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    if jit_compile == "auto" and single and model.step_compiles_with_xla:
        model.jit_compile = True
    return model.jit_compile


def remove_stale_temporaries(run_dir):
    """Delete half-written files that a killed process left behind (the model's temporary save and
    run.json's), unless the process that named them is still running."""
    runs.remove_stale_temporaries(run_dir)
    for path in glob.glob(os.path.join(run_dir, "*.json.tmp")):  # run.json's temporary as earlier versions named it
        os.remove(path)


def _fingerprint(info):
    return hashlib.sha256(json.dumps(info, sort_keys=True).encode()).hexdigest()


def worker_dir(out_dir):
    """Where this process writes: ``out_dir`` for the chief (or a single process), and
    ``out_dir/workers/<index>`` for the other workers of a multi-worker cluster, so workers
    sharing a file system never write the same file. The chief's run is the one to use."""
    if _is_chief():
        return out_dir
    task = json.loads(os.environ["TF_CONFIG"])["task"]
    return os.path.join(out_dir, "workers", f"{task['type']}-{task['index']}")


def _is_chief():
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    task = config.get("task", {})
    return task.get("type", "chief") == "chief" or (task.get("type") == "worker" and task.get("index", 0) == 0
                                                    and "chief" not in config.get("cluster", {}))
