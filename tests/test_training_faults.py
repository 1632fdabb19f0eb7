"""Crash safety of training runs and refusal of bad data, each fault reproduced as it happens.

Kills are real ``SIGKILL``s of a subprocess at a chosen moment (during the final save, during a
backup write, between epochs), with bounded waits. Resumed runs are compared with an
uninterrupted run of the same arguments: weights and optimizer state must be bitwise equal,
because the resumed run replays exactly the same float32 operations in the same order on the same
CPU (the noise is a function of the step, the data stream is replayed up to the resumed step, and
the optimizer state is restored).
"""
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tracemalloc

import keras
import numpy as np
import pytest

from tfgan_mix.data import DataError, Dataset, load_dataset
from tfgan_mix.training import callbacks as C
from tfgan_mix.training import cli
from tfgan_mix.training import train as T

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("training_faults")

SUBPROCESS_TIMEOUT_S = 240
OPTIONS = {"generator_units": [16], "discriminator_units": [16], "latent_dim": 4}
# 3 epochs of 4 steps: backups after steps 4, 8 and 12.
SPEC = T.TrainSpec(method="gan", data="gaussians3", steps=12, batch_size=64, epoch_steps=4, options=OPTIONS)
EPOCHS = 3
CLI_ARGS = ["--method", "gan", "--data", "gaussians3", "--steps", "12", "--batch-size", "64", "--epoch-steps", "4",
            "--set", "generator_units=[16]", "--set", "discriminator_units=[16]", "--set", "latent_dim=4"]

# Run in a fresh process: train SPEC, killing itself with SIGKILL at the moment MODE names.
_KILLED_RUN = """
import json, os, signal, sys
import keras
from tfgan_mix.data import load_dataset
from tfgan_mix.training import train as T

out, spec, mode = sys.argv[1], T.TrainSpec(**json.loads(sys.argv[2])), sys.argv[3]

def die():
    os.kill(os.getpid(), signal.SIGKILL)

extra = []
if mode == "final-save":  # the model file is half written when the process dies
    def save(self, filepath, *args, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\\x03\\x04 half a zip")
        die()
    keras.Model.save = save
elif mode == "backup-write":  # the second backup's weights are half written when the process dies
    original, calls = keras.Model.save_weights, []
    def save_weights(self, filepath, *args, **kwargs):
        calls.append(filepath)
        if len(calls) == 2:
            with open(filepath, "wb") as f:
                f.write(b"\\x89HDF half")
            die()
        return original(self, filepath, *args, **kwargs)
    keras.Model.save_weights = save_weights
elif mode == "after-epoch-2":  # both backups written, nothing else of epoch 3 begun
    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                die()
    extra.append(Kill())
T.train(spec, load_dataset(spec.data), out, verbose=0, extra_callbacks=extra)
print("finished without being killed")
"""


class CountEpochs(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


class InterruptAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt("simulated preemption")


class StopBeforeTheFirstStep(keras.callbacks.Callback):
    """Records where a (resumed) fit starts, then stops it before its first step is traced."""

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.g_iterations = epoch, int(self.model.g_optimizer.iterations.numpy())
        raise KeyboardInterrupt("stopped before the first step")


def state(model):
    """Every number a resumed run must reproduce: weights and both optimizers' slots and steps."""
    return [v.numpy() for v in [*model.variables, *model.d_optimizer.variables, *model.g_optimizer.variables]]


def assert_same_state(model, reference):
    got = state(model)
    assert len(got) == len(reference)
    different = [i for i, (a, b) in enumerate(zip(got, reference)) if not np.array_equal(a, b)]
    assert not different, f"{len(different)} of {len(got)} variables differ from the uninterrupted run"


def killed_run(out, mode, spec=SPEC):
    result = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(out), json.dumps(dataclasses.asdict(spec)), mode],
                            capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT_S,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == -signal.SIGKILL, f"expected a SIGKILL, got {result.returncode}:\n{result.stderr[-3000:]}"


def backups(run_dir):
    """The backup directory's entries, without the newest-backup note kept for monitoring."""
    path = run_dir / T.BACKUP_DIR
    return sorted(n for n in os.listdir(path) if n != C.RunBackup.LATEST) if path.exists() else []


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("gaussians3")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, dataset):
    """The uninterrupted run every interrupted one must end up equal to."""
    model, _ = T.train(SPEC, dataset, tmp_path_factory.mktemp("reference"), verbose=0)
    assert int(model.g_optimizer.iterations.numpy()) == SPEC.steps
    return state(model)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, dataset):
    """A run stopped after epoch 2 of 3: backups of epochs 1 and 2, no model."""
    out = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(KeyboardInterrupt):
        T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[InterruptAfter(1)])
    assert backups(out) == ["epoch-000001", "epoch-000002"]
    latest = json.loads((out / T.BACKUP_DIR / C.RunBackup.LATEST).read_text())
    assert (latest["epoch"], latest["step"], latest["backup"]) == (2, 8, "epoch-000002")
    return out


# ---------------------------------------------------------------------- kill -9 and exact resumption
def test_kill_during_the_final_save_keeps_the_backup_and_the_rerun_finishes(tmp_path, dataset, reference):
    out = tmp_path / "run"
    killed_run(out, "final-save")
    stale = [name for name in os.listdir(out) if name.startswith(T.MODEL_FILE + ".tmp-")]
    assert stale, "the kill should leave the half-written temporary behind"
    assert not (out / T.MODEL_FILE).exists()
    assert backups(out) == ["epoch-000002", "epoch-000003"], "the backup must outlive a failed final save"
    counter = CountEpochs()
    model, _ = T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[counter])
    assert counter.epochs == [], "every epoch was backed up: nothing is trained again"
    assert int(model.g_optimizer.iterations.numpy()) == SPEC.steps
    assert_same_state(keras.models.load_model(out / T.MODEL_FILE), reference)
    assert not [n for n in os.listdir(out) if ".tmp" in n], "stale temporaries are removed"
    assert not (out / T.BACKUP_DIR).exists(), "the backup goes once the model is in place"


def test_kill_between_epochs_resumes_to_the_uninterrupted_weights(tmp_path, dataset, reference):
    out = tmp_path / "run"
    killed_run(out, "after-epoch-2")
    counter = CountEpochs()
    model, _ = T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[counter])
    assert counter.epochs == [2]
    assert int(model.g_optimizer.iterations.numpy()) == SPEC.steps
    assert_same_state(model, reference)


def test_kill_during_a_backup_write_falls_back_to_the_previous_backup(tmp_path, dataset, reference, capsys):
    out = tmp_path / "run"
    killed_run(out, "backup-write")
    assert backups(out)[0].startswith(".tmp-"), "the half-written backup is only ever under a temporary name"
    assert [b for b in backups(out) if not b.startswith(".")] == ["epoch-000001"]
    counter = CountEpochs()
    model, _ = T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[counter])
    assert counter.epochs == [1, 2]
    assert_same_state(model, reference)


def test_in_process_interruption_resumes_exactly(tmp_path, dataset, reference, interrupted):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    counter = CountEpochs()
    model, _ = T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[counter])
    assert counter.epochs == [2]
    assert_same_state(model, reference)


def test_the_data_stream_restarts_where_it_stopped():
    """A fresh pipeline started at step k yields the batches an uninterrupted one yields from step k
    (a fresh iterator alone would replay the first epoch's order), and every pass is a new permutation."""
    x = np.arange(40, dtype=np.float32)[:, None]
    whole = [b.numpy().ravel() for b in T.make_dataset(x, 8, seed=5).take(15)]
    resumed = [b.numpy().ravel() for b in T.make_dataset(x, 8, seed=5, start_step=7).take(8)]
    np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[7:]))
    passes = np.concatenate(whole).reshape(3, 40)
    for p in passes:
        np.testing.assert_array_equal(np.sort(p), np.arange(40))
    assert not np.array_equal(passes[0], passes[1])
    other_seed = np.concatenate([b.numpy().ravel() for b in T.make_dataset(x, 8, seed=6).take(5)])
    assert not np.array_equal(other_seed, passes[0])


# ---------------------------------------------------------------------- corrupt or partial backups
def _write(name, content):
    def corrupt(path):
        (path / name).write_bytes(content(path / name))
    return corrupt


def _remove(name):
    def corrupt(path):
        (path / name).unlink()
    return corrupt


def _flip_byte(path):
    data = bytearray((path / C.RunBackup.WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / C.RunBackup.WEIGHTS).write_bytes(bytes(data))


def _legacy_keras_layout(run_dir):
    """What keras.callbacks.BackupAndRestore leaves when killed between its two writes."""
    shutil.rmtree(run_dir / T.BACKUP_DIR)
    (run_dir / T.BACKUP_DIR).mkdir()
    (run_dir / T.BACKUP_DIR / "latest.weights.h5").write_bytes(b"\x89HDF")
    (run_dir / T.BACKUP_DIR / "training_metadata.json").write_text("")


HALF = {
    "empty-meta": ("latest", _write(C.RunBackup.META, lambda p: b""), "not readable JSON"),
    "half-meta": ("latest", _write(C.RunBackup.META, lambda p: p.read_bytes()[: len(p.read_bytes()) // 2]),
                  "not readable JSON"),
    "weights-without-meta": ("latest", _remove(C.RunBackup.META), "missing"),
    "meta-without-weights": ("latest", _remove(C.RunBackup.WEIGHTS), "missing"),
    "truncated-weights": ("latest", _write(C.RunBackup.WEIGHTS, lambda p: p.read_bytes()[:1000]), "checksum"),
    "flipped-byte": ("latest", _flip_byte, "checksum"),
    "meta-epoch-lies": ("latest", _write(C.RunBackup.META, lambda p: p.read_bytes().replace(b'"epoch": 2', b'"epoch": 3')),
                        "does not match"),
    "both-broken": ("both", _write(C.RunBackup.META, lambda p: b"{"), "training starts from step 0"),
    "keras-layout": ("run", _legacy_keras_layout, "training starts from step 0"),
}


# The corruptions of the newest backup differ only in what ``restore`` meets, so all but this one
# stop once the run has restored (before a step is traced); it trains on to the end, as
# test_kill_during_a_backup_write_falls_back_to_the_previous_backup does from a real kill.
LATEST_RUN_TO_THE_END = "flipped-byte"


@pytest.mark.parametrize("case", list(HALF), ids=list(HALF))
def test_a_corrupt_backup_falls_back_or_starts_fresh_and_never_overtrains(case, tmp_path, dataset, reference,
                                                                          interrupted, capsys):
    which, corrupt, warning = HALF[case]
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    if which == "run":
        corrupt(out)
    for name in {"latest": ["epoch-000002"], "both": ["epoch-000001", "epoch-000002"]}.get(which, []):
        corrupt(out / T.BACKUP_DIR / name)
    if which == "latest" and case != LATEST_RUN_TO_THE_END:
        stop = StopBeforeTheFirstStep()
        with pytest.raises(KeyboardInterrupt, match="before the first step"):
            T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[stop])
        assert warning in capsys.readouterr().err
        assert (stop.epoch, stop.g_iterations) == (1, SPEC.epoch_steps), "resumes from the backup before"
        assert backups(out) == ["epoch-000001"], "the unusable backup is removed"
        return
    counter = CountEpochs()
    model, _ = T.train(SPEC, dataset, out, verbose=0, extra_callbacks=[counter])
    err = capsys.readouterr().err
    assert warning in err, err
    assert counter.epochs == ([1, 2] if which == "latest" else [0, 1, 2])
    assert int(model.g_optimizer.iterations.numpy()) == SPEC.steps, "never more steps than asked"
    assert_same_state(model, reference)


def test_a_backup_from_other_arguments_is_refused_even_without_run_json(tmp_path, dataset, interrupted):
    out = tmp_path / "run"
    shutil.copytree(interrupted, out)
    (out / T.RUN_FILE).unlink()
    with pytest.raises(ValueError, match="written by a run with other arguments"):
        T.train(dataclasses.replace(SPEC, seed=1), dataset, out, verbose=0)


# ---------------------------------------------------------------------- rerun with other arguments
@pytest.fixture(scope="module")
def interrupted_cli_run(tmp_path_factory):
    """An interrupted `tfgan-mix train` run on a user .npy file: (run dir, data path)."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "points.npy"
    np.save(data, load_dataset("gaussians3").x[:600])
    out = root / "run"
    original = C.SamplePictures.on_epoch_end

    def stop(self, epoch, logs=None):
        original(self, epoch, logs)
        raise KeyboardInterrupt("simulated preemption")

    C.SamplePictures.on_epoch_end = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            cli.main(["train", *[str(data) if a == "gaussians3" else a for a in CLI_ARGS], "--out", str(out)])
    finally:
        C.SamplePictures.on_epoch_end = original
    assert backups(out) == ["epoch-000001"]
    return out, data


DIFFERENT = {
    "data": (["--data", "ring8"], "data '{data}' -> 'ring8'"),
    "seed": (["--seed", "1"], "seed 0 -> 1"),
    "steps": (["--steps", "16"], "steps 12 -> 16"),
    "option": (["--set", "latent_dim=5"], "model_options.latent_dim 4 -> 5"),
    "new-option": (["--set", "loss=hinge"], "model_options.loss '<unset>' -> 'hinge'"),
    "epoch-steps": (["--epoch-steps", "6"], "epoch_steps 4 -> 6"),
    "data-contents": ([], "the contents of {data}"),
}


@pytest.mark.parametrize("case", list(DIFFERENT), ids=list(DIFFERENT))
def test_rerun_with_other_arguments_is_refused(case, interrupted_cli_run, capsys):
    out, data = interrupted_cli_run
    extra, message = DIFFERENT[case]
    run_json = (out / T.RUN_FILE).read_text()
    args = [str(data) if a == "gaussians3" else a for a in CLI_ARGS]
    saved = data.read_bytes()
    if case == "data-contents":
        np.save(data, np.load(data) * 2)
    try:
        code = cli.main(["train", *args, *extra, "--out", str(out)])
    finally:
        data.write_bytes(saved)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tfgan-mix train: error:") and len(err.strip().splitlines()) == 1, err
    assert message.format(data=data) in err, err
    assert (out / T.RUN_FILE).read_text() == run_json, "run.json must still describe the interrupted run"
    assert backups(out) == ["epoch-000001"]


def test_the_same_command_resumes_and_says_so(interrupted_cli_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(interrupted_cli_run[0], out)
    args = [str(interrupted_cli_run[1]) if a == "gaussians3" else a for a in CLI_ARGS]
    code = cli.main(["train", *args, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    assert "for 12 steps (resumed from a backup at step 4); 8 steps in this run" in printed, printed
    assert int(T.load_run(out).g_optimizer.iterations.numpy()) == 12


def test_overwrite_starts_an_interrupted_run_over_with_the_new_arguments(interrupted_cli_run, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(interrupted_cli_run[0], out)
    code = cli.main(["train", *CLI_ARGS, "--steps", "4", "--out", str(out), "--overwrite"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / T.RUN_FILE).read_text())["data"] == "gaussians3"
    assert int(T.load_run(out).g_optimizer.iterations.numpy()) == 4


# ---------------------------------------------------------------------- NaN losses
def test_nan_losses_stop_training_with_an_error_and_no_model(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", *CLI_ARGS, "--out", str(out), "--set", "d_learning_rate=1e30",
                     "--set", "g_learning_rate=1e30"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "training diverged" in err and "NaN" in err and "d_loss" in err, err
    assert not (out / T.MODEL_FILE).exists(), "a NaN model must never become the run's model"
    for name in backups(out):  # whatever was backed up is from before the divergence
        model = T.build_model("gan", {**OPTIONS, "data_shape": (2,)})
        model.load_weights(out / T.BACKUP_DIR / name / C.RunBackup.WEIGHTS)
        assert all(np.all(np.isfinite(v)) for v in state(model))


@pytest.mark.parametrize("logs, bad", [({"d_loss": float("nan"), "g_loss": 1.0}, "d_loss"),
                                       ({"d_loss": 0.5, "g_loss": float("inf"), "d_real": 0.1}, "g_loss"),
                                       ({"d_loss": np.array([np.nan]), "g_loss": 1.0}, "d_loss")],
                         ids=["nan", "inf", "vector"])
def test_nan_stop_reads_gan_logs(logs, bad):
    stop = C.StopOnNaN(steps_per_epoch=10)
    stop.set_model(keras.Sequential())
    stop.on_epoch_end(0, {"d_loss": 0.3, "g_loss": 0.7})
    assert stop.failure is None
    stop.on_epoch_end(1, logs)
    assert bad in stop.failure and "steps 11-20" in stop.failure and stop.model.stop_training


# ---------------------------------------------------------------------- data files
def _huge_header(path):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"shape": (10**12, 2), "fortran_order": False, "descr": "<f8"})


def _short_data(path):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"shape": (1000, 2), "fortran_order": False, "descr": "<f4"})
        f.write(b"\0" * 100)


BAD_FILES = {
    "overflow-npy": ("f.npy", lambda p: np.save(p, np.random.default_rng(0).normal(size=(600, 2)) * 1e300),
                     "beyond float32's range"),
    "overflow-one-value": ("g.npy", lambda p: np.save(p, np.r_[np.zeros((599, 2)), [[0.0, -1e39]]]), "index 599"),
    "overflow-csv": ("f.csv", lambda p: p.write_text("1,2\n3,1e300\n"), "row 2"),
    "huge-header": ("h.npy", _huge_header, "(1000000000000, 2)"),
    "short-data": ("s.npy", _short_data, "holds 100 bytes"),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_data_files_exit_2_in_one_line(case, tmp_path, capsys):
    name, write, message = BAD_FILES[case]
    path = tmp_path / name
    write(path)
    out = tmp_path / "never"
    code = cli.main(["train", "--method", "gan", "--data", str(path), "--steps", "5", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_a_lying_npy_header_is_refused_before_allocating(tmp_path):
    path = tmp_path / "big.npy"
    with open(path, "wb") as f:  # claims 80 MB, holds nothing
        np.lib.format.write_array_header_1_0(f, {"shape": (100_000, 100), "fortran_order": False, "descr": "<f8"})
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match="80,000,000 bytes"):
            load_dataset(str(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"{peak} bytes allocated for a file with no data"


def test_in_memory_float64_that_overflows_float32_is_refused():
    with pytest.raises(DataError, match="do not fit float32"):
        Dataset("mine", np.array([[1.0, 1e40]]), "points")
    assert Dataset("mine", np.array([[1.0, 3e38]]), "points").x.dtype == np.float32
