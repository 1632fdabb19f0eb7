"""Keras callbacks for GAN training: sample pictures, a NaN stop and crash-safe backups."""
import json
import os
import shutil
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tfgan_mix import runs


class SamplePictures(keras.callbacks.Callback):
    """At the end of each epoch, draw samples and write a picture of them to TensorBoard.

    Points are drawn coloured by generator over the real data; images as one row per generator.
    The same fixed noise seed is used every epoch, so the pictures show one noise set evolving.
    """

    def __init__(self, log_dir, real, num_samples=1000, seed=0):
        super().__init__()
        self.log_dir = log_dir
        self.real = real[:num_samples]
        self.num_samples = num_samples
        self.seed = seed
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        from tfgan_mix import vis

        samples, generator = self.model.sample(self.num_samples, seed=self.seed)
        k = self.model.config.num_generators
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "samples.png")
            if samples.ndim == 4:
                vis.image_grid_per_generator(samples, generator, path, num_generators=k)
            else:
                vis.scatter_by_generator(samples, generator, path, real=self.real, num_generators=k)
            with open(path, "rb") as f:
                picture = tf.io.decode_png(f.read(), channels=4)
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        with self._writer.as_default():
            tf.summary.image("samples", picture[None], step=int(self.model.g_optimizer.iterations.numpy()))
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()


def _warn(message):
    print(f"tfgan-mix: warning: {message}", file=sys.stderr, flush=True)


def _non_finite(logs):
    """Names of the log entries that are NaN or infinite."""
    return sorted(name for name, value in (logs or {}).items() if not np.all(np.isfinite(np.asarray(value, float))))


class StopOnNaN(keras.callbacks.Callback):
    """Stop training when any logged loss is NaN or infinite, and remember what went wrong.

    ``keras.callbacks.TerminateOnNaN`` looks only at ``logs["loss"]``, which a GAN's logs do not
    have (they hold ``d_loss``, ``g_loss`` and every loss term). The check runs at the end of each
    epoch on the epoch means: a NaN at any step of the epoch makes its running mean NaN, and a
    per-step check would make Keras read the logs back from the device after every step.
    ``failure`` is ``None`` while training is healthy, else a one-line description.
    """

    def __init__(self, steps_per_epoch):
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.failure = None

    def on_epoch_end(self, epoch, logs=None):
        bad = _non_finite(logs)
        if bad:
            first, last = epoch * self.steps_per_epoch + 1, (epoch + 1) * self.steps_per_epoch
            self.failure = f"{', '.join(bad)} became NaN or infinite during steps {first}-{last}"
            self.model.stop_training = True


class RunBackup(keras.callbacks.Callback):
    """Crash-safe training backups, replacing ``keras.callbacks.BackupAndRestore``.

    Keras's callback writes ``latest.weights.h5`` and then ``training_metadata.json`` in place. A
    kill between the two leaves weights of epoch N+1 with the epoch number N (the rerun trains one
    epoch too many), and an empty or half-written metadata file fails every rerun with a JSON error
    (its fallback to the previous backup only catches ``OSError``). It also deletes the backup at
    the end of ``fit``, before the caller has saved the model.

    Here each backup is a directory ``epoch-NNNNNN/`` holding ``state.weights.h5`` (networks and
    both optimizers' state) and ``meta.json`` (epoch, step, the weights' size and SHA-256, and the
    fingerprint of the run's arguments). It is written under a temporary name, flushed to disk and
    renamed into place, so a backup directory either is complete or does not exist. The newest
    ``keep`` backups are kept; ``training_metadata.json`` names the newest, for monitoring only.
    ``restore`` takes the newest one that verifies, warns about each one that does not (and removes
    it), and starts from step 0 with a warning when none does. Nothing is deleted at the end of
    training: the caller removes the backup once the trained model is safely on disk.
    """

    WEIGHTS = "state.weights.h5"
    META = "meta.json"
    PREFIX = "epoch-"
    LATEST = "training_metadata.json"

    def __init__(self, backup_dir, fingerprint, steps_per_epoch, keep=2):
        super().__init__()
        self.backup_dir = backup_dir
        self.fingerprint = fingerprint
        self.steps_per_epoch = steps_per_epoch
        self.keep = max(1, keep)
        self._steps_done = 0

    # ------------------------------------------------------------------ saving
    def on_epoch_begin(self, epoch, logs=None):
        self._steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps_done = batch + 1  # Keras passes the index of the last step run

    def on_epoch_end(self, epoch, logs=None):
        # A stopped or diverged epoch is not a state to resume from.
        if self.model.stop_training or self._steps_done != self.steps_per_epoch or _non_finite(logs):
            return
        self.save(epoch + 1)

    def save(self, epoch):
        os.makedirs(self.backup_dir, exist_ok=True)
        name = f"{self.PREFIX}{epoch:06d}"
        tmp = os.path.join(self.backup_dir, f".tmp-{name}-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        weights = os.path.join(tmp, self.WEIGHTS)
        self.model.save_weights(weights)
        runs.fsync(weights)
        meta = {
            "epoch": epoch,
            "step": epoch * self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "g_iterations": int(self.model.g_optimizer.iterations.numpy()),
            "fingerprint": self.fingerprint,
            "weights_bytes": os.path.getsize(weights),
            "weights_sha256": runs.file_digest(weights),
        }
        with open(os.path.join(tmp, self.META), "w", encoding="utf-8") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        runs.fsync(tmp)
        final = os.path.join(self.backup_dir, name)
        shutil.rmtree(final, ignore_errors=True)  # an unusable backup of this epoch from an earlier attempt
        os.rename(tmp, final)
        runs.fsync(self.backup_dir)
        # For monitoring only (restore() reads the backup directories, never this): the newest
        # complete backup, under the name Keras's BackupAndRestore uses for its epoch count.
        note = {"epoch": epoch, "step": meta["step"], "backup": name}
        runs.write_json(os.path.join(self.backup_dir, self.LATEST), note)
        for old in self._backups()[self.keep:]:
            shutil.rmtree(os.path.join(self.backup_dir, old), ignore_errors=True)

    # ------------------------------------------------------------------ restoring
    def _backups(self):
        """Backup directory names, newest first."""
        if not os.path.isdir(self.backup_dir):
            return []
        names = [n for n in os.listdir(self.backup_dir) if n.startswith(self.PREFIX) and n[len(self.PREFIX):].isdigit()]
        return sorted(names, key=lambda n: int(n[len(self.PREFIX):]), reverse=True)

    def restore(self, model, max_epoch):
        """Load the newest backup that verifies into ``model``; returns the epoch to start from.

        Raises ``ValueError`` when an intact backup was written with other arguments (another
        fingerprint): resuming it would silently mix two runs.
        """
        if not os.path.isdir(self.backup_dir):
            return 0
        for name in os.listdir(self.backup_dir):
            if name.startswith(".tmp-"):  # something being written when the process died
                path = os.path.join(self.backup_dir, name)
                shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
        runs.remove_stale_temporaries(self.backup_dir)  # the newest-backup note's, if a kill caught it
        candidates = self._backups()
        if not candidates:
            leftovers = sorted(n for n in os.listdir(self.backup_dir) if n != self.LATEST)
            if leftovers:
                _warn(f"{self.backup_dir} holds no backup this version writes ({', '.join(leftovers)}); "
                      f"training starts from step 0")
            return 0
        snapshot = None
        for name in candidates:
            path = os.path.join(self.backup_dir, name)
            meta, problem = self._verify(path, name, max_epoch)
            if problem is None:
                if snapshot is None:
                    snapshot = os.path.join(self.backup_dir, f".tmp-initial-{os.getpid()}.weights.h5")
                    model.save_weights(snapshot)
                try:
                    model.load_weights(os.path.join(path, self.WEIGHTS))
                except Exception as error:  # noqa: BLE001  (h5py and Keras raise many kinds)
                    problem = f"its weights do not load ({type(error).__name__}: {error})"
                else:
                    if int(model.g_optimizer.iterations.numpy()) != meta["g_iterations"]:
                        problem = "the restored optimizer step does not match its metadata"
            if problem is None:
                os.remove(snapshot)
                return meta["epoch"]
            _warn(f"backup {path} is unusable: {problem}; removed it, trying the one before it")
            shutil.rmtree(path, ignore_errors=True)
        if snapshot is not None:
            model.load_weights(snapshot)  # undo any partial load: start from the fresh initialisation
            os.remove(snapshot)
        _warn(f"no usable backup in {self.backup_dir}; training starts from step 0")
        return 0

    def check_fingerprints(self):
        """Raise ``ValueError`` if a backup whose metadata is readable was written by another run."""
        for name in self._backups():
            try:
                with open(os.path.join(self.backup_dir, name, self.META), encoding="utf-8") as f:
                    fingerprint = json.load(f).get("fingerprint", self.fingerprint)
            except (OSError, ValueError, AttributeError):
                continue  # unreadable: restore() reports it and falls back
            if fingerprint != self.fingerprint:
                raise ValueError(self._foreign(os.path.join(self.backup_dir, name)))

    def _foreign(self, path):
        return (f"backup {path} was written by a run with other arguments than this one; rerun with that "
                f"run's arguments (see run.json) to resume it, or pass --overwrite to start over")

    def _verify(self, path, name, max_epoch):
        """(metadata, None) when the backup at ``path`` is complete and intact, else (None, reason)."""
        try:
            with open(os.path.join(path, self.META), encoding="utf-8") as f:
                meta = json.load(f)
        except FileNotFoundError:
            return None, f"{self.META} is missing"
        except (OSError, ValueError) as error:
            return None, f"{self.META} is not readable JSON ({error})"
        keys = ("epoch", "step", "steps_per_epoch", "g_iterations", "fingerprint", "weights_bytes", "weights_sha256")
        if not isinstance(meta, dict) or any(key not in meta for key in keys):
            return None, f"{self.META} lacks some of {', '.join(keys)}"
        if meta["fingerprint"] != self.fingerprint:
            raise ValueError(self._foreign(path))
        if f"{self.PREFIX}{meta['epoch']:06d}" != name or meta["steps_per_epoch"] != self.steps_per_epoch \
                or meta["step"] != meta["epoch"] * self.steps_per_epoch:
            return None, f"{self.META} does not match its directory or this run's epoch length"
        if not 1 <= meta["epoch"] <= max_epoch:
            return None, f"epoch {meta['epoch']} is outside this run's 1-{max_epoch}"
        weights = os.path.join(path, self.WEIGHTS)
        if not os.path.isfile(weights):
            return None, f"{self.WEIGHTS} is missing"
        if os.path.getsize(weights) != meta["weights_bytes"] or runs.file_digest(weights) != meta["weights_sha256"]:
            return None, f"{self.WEIGHTS} does not match the size and checksum recorded when it was written"
        return meta, None
