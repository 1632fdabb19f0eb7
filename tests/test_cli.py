"""The ``tfgan-mix`` command line, run in-process: the contract, the run directory, bad input."""
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_model

import tfgan_mix
from tfgan_mix.data import load_dataset
from tfgan_mix.training import cli, presets
from tfgan_mix.training import train as T
from tfgan_mix.training.strategy import mirrored_strategy

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("cli")

TINY = ["--set", "generator_units=[16,16]", "--set", "discriminator_units=[32,32]", "--set", "latent_dim=8"]


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_methods_lists_every_registered_method(capsys):
    code, out, _ = run(capsys, "methods")
    assert code == 0
    assert out.split() == tfgan_mix.list_methods()
    assert {"gan", "wgan-gp", "npgan", "mog", "hmog"} <= set(out.split())


def test_auto_jit_is_xla_on_one_device_and_keras_choice_elsewhere(cpu_devices):
    one_device = tf.distribute.get_strategy()
    assert T.resolve_auto_jit(tiny_model("npgan"), "auto", one_device) is True
    assert T.resolve_auto_jit(tiny_model("npgan"), False, one_device) is False  # an explicit choice stays
    two = mirrored_strategy(tuple(cpu_devices[:2]))
    assert T.resolve_auto_jit(tiny_model("npgan", strategy=two), "auto", two) is False  # Keras's, not measured
    # MIX+GAN placed over devices: XLA compiles a step for one device only.
    placed = tiny_model("mixgan", num_discriminators=2, placement="model_parallel")
    assert placed.step_compiles_with_xla is False and T.resolve_auto_jit(placed, "auto", one_device) is False


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny NPGAN run shared by the tests that read a run directory."""
    out = tmp_path_factory.mktemp("runs") / "npgan"
    code = cli.main(["train", "--method", "npgan", "--data", "gaussians3", "--generators", "3", "--steps", "20",
                     "--batch-size", "64", "--out", str(out), "--set", "router_units=[16]", *TINY])
    assert code == 0
    return out


def test_train_writes_a_loadable_model_logs_and_run_info(trained_run):
    model = keras.models.load_model(trained_run / T.MODEL_FILE)
    assert model.method_name == "npgan" and model.config.num_generators == 3
    assert int(model.g_optimizer.iterations.numpy()) == 20
    assert model.jit_compile is True  # the default --jit-compile auto on one device: XLA (measured faster)
    info = json.loads((trained_run / T.RUN_FILE).read_text())
    assert info["method"] == "npgan" and info["steps"] == 20 and info["model_options"]["latent_dim"] == 8
    events = [f for _, _, files in os.walk(trained_run / "logs") for f in files if "tfevents" in f]
    assert len(events) >= 2, "expected TensorBoard scalars and sample pictures"
    assert not os.path.exists(trained_run / "backup"), "a finished run leaves no backup behind"


def test_evaluate_prints_and_writes_metrics_and_pictures(trained_run, tmp_path, capsys):
    out_json = tmp_path / "m.json"
    code, out, _ = run(capsys, "evaluate", trained_run, "--data", "gaussians3", "--num-samples", "500",
                       "--json", out_json)
    assert code == 0
    metrics = json.loads(out_json.read_text())
    assert metrics["num_samples"] == 500 and metrics["method"] == "npgan"
    for key in ("off_manifold_rate", "mode_proportions", "frechet_distance", "emd", "knn2st_accuracy",
                "precision", "recall", "density", "coverage", "generator_usage", "outlier_manifold_distance"):
        assert key in metrics, key
    assert 0.0 <= metrics["off_manifold_rate"] <= 1.0
    assert abs(sum(metrics["generator_usage"]) - 1) < 1e-6
    assert '"off_manifold_rate"' in out
    assert os.path.getsize(trained_run / "eval" / "samples_by_generator.png") > 1000


def test_evaluate_draws_the_noise_routing_map_for_2d_noise(tmp_path, capsys):
    out = tmp_path / "run"
    assert run(capsys, "train", "--method", "npgan", "--data", "gaussians3", "--generators", "3", "--steps", "5",
               "--batch-size", "64", "--out", out, *TINY, "--set", "latent_dim=2")[0] == 0
    code, printed, _ = run(capsys, "evaluate", out, "--data", "gaussians3", "--num-samples", "200")
    assert code == 0
    assert os.path.getsize(out / "eval" / "noise_routing_map.png") > 1000
    assert "routing_map" in printed


def test_sample_writes_the_requested_number(trained_run, tmp_path, capsys):
    path = tmp_path / "s.npy"
    code, _, _ = run(capsys, "sample", trained_run, "-n", "123", "--out", path)
    assert code == 0
    samples = np.load(path)
    assert samples.shape == (123, 2) and np.all(np.isfinite(samples))


def test_a_finished_run_is_not_overwritten(trained_run, capsys):
    before = os.path.getmtime(trained_run / T.MODEL_FILE)
    code, _, err = run(capsys, "train", "--method", "npgan", "--data", "gaussians3", "--steps", "5",
                       "--out", trained_run)
    assert code == 2 and "already holds a trained model" in err
    assert os.path.getmtime(trained_run / T.MODEL_FILE) == before


def test_preset_fills_method_data_and_generators(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = run(capsys, "train", "--preset", "npgan_gaussians3", "--steps", "3", "--batch-size", "32",
                     "--out", out, *TINY, "--set", "router_units=[8]")
    assert code == 0
    info = json.loads((out / T.RUN_FILE).read_text())
    assert (info["method"], info["data"], info["num_generators"], info["steps"]) == ("npgan", "gaussians3", 3, 3)
    assert info["model_options"]["g_learning_rate"] == presets.load("npgan_gaussians3")["options"]["g_learning_rate"]


def test_image_run_draws_grids_and_saliency(tmp_path, capsys):
    out = tmp_path / "digits"
    code, printed, err = run(capsys, "train", "--method", "mog", "--data", "digits", "--generators", "2", "--steps", "3",
                             "--batch-size", "32", "--out", out, "--set", "generator_filters=[8,8]",
                             "--set", "discriminator_filters=[8,8]", "--set", "latent_dim=8", "--jit-compile", "off")
    assert code == 0, err
    assert "XLA off" in printed and T.load_run(out).jit_compile is False  # as asked
    code, _, _ = run(capsys, "evaluate", out, "--data", "digits", "--num-samples", "64")
    assert code == 0
    for picture in ("samples_by_generator.png", "saliency.png"):
        assert os.path.getsize(out / "eval" / picture) > 1000


def test_training_resumes_from_its_backup(tmp_path):
    """Interrupt after the first epoch; the same call again continues, it does not start over."""
    spec = T.TrainSpec(method="gan", data="gaussians3", steps=6, batch_size=32, epoch_steps=2,
                       options={"generator_units": [8], "discriminator_units": [8], "latent_dim": 4})
    dataset = load_dataset("gaussians3")

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt("simulated preemption")

    class CountEpochs(keras.callbacks.Callback):
        epochs = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(epoch)

    with pytest.raises(KeyboardInterrupt):
        T.train(spec, dataset, tmp_path, verbose=0, extra_callbacks=[Interrupt()])
    assert os.path.isdir(tmp_path / "backup") and not os.path.exists(tmp_path / T.MODEL_FILE)
    counter = CountEpochs()
    model, _ = T.train(spec, dataset, tmp_path, verbose=0, extra_callbacks=[counter])
    assert counter.epochs == [1, 2], "resumed run should skip the finished epoch"
    assert int(model.g_optimizer.iterations.numpy()) == 6


def test_train_with_mixed_precision_and_several_steps_per_execution(tmp_path, capsys):
    out = tmp_path / "mixed"
    code, printed, _ = run(capsys, "train", "--method", "npgan", "--data", "gaussians3", "--steps", "10",
                           "--epoch-steps", "5", "--steps-per-execution", "5", "--precision", "mixed_float16",
                           "--batch-size", "64", "--out", out, "--set", "router_units=[8]", *TINY)
    assert code == 0, printed
    assert "XLA on" in printed  # the default on one device, with float16 and 5 steps per call
    model = T.load_run(out)
    assert model.config.precision == "mixed_float16" and model.generators.compute_dtype == "float16"
    assert int(model.g_optimizer.iterations.numpy()) == 10


# ---------------------------------------------------------------------- bad input: exit 2, nothing written
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "nope", "--data", "gaussians3"], "unknown method 'nope'"),
        (["--method", "gan", "--data", "gaussians3", "--generators", "3"], "at most 1 generator"),
        (["--method", "npgan", "--data", "gaussians3", "--set", "bogus=1"], "'bogus'"),
        (["--method", "npgan", "--data", "gaussians3", "--set", "novalue"], "key=value"),
        (["--method", "npgan", "--data", "no_such_set"], "no_such_set"),
        (["--method", "npgan", "--data", "gaussians3", "--preset", "nope"], "unknown preset 'nope'"),
        (["--method", "gan", "--data", "gaussians3", "--steps-per-execution", "3"], "must divide the epoch length"),
    ],
    ids=["method", "k-for-single", "option", "set-syntax", "dataset", "preset", "steps-per-execution"],
)
def test_bad_arguments_exit_2_and_create_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    code, _, err = run(capsys, "train", "--steps", "5", "--out", out, *extra)
    assert code == 2
    assert message in err and err.startswith("tfgan-mix train: error:")
    assert not out.exists()


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.npy", None, "missing.npy"),
        ("empty.csv", "", "empty"),
        ("nan.csv", "1,2\n3,nan\n5,6\n", "NaN"),
        ("text.csv", "1,2\n3,abc\n", "row 2"),
        ("rank1.npy", np.zeros(10, np.float32), "rank"),
    ],
    ids=["missing", "empty", "nan", "non-numeric", "wrong-rank"],
)
def test_invalid_data_file_exits_2_before_any_directory_exists(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        np.save(path, content)
    out = tmp_path / "never"
    code, _, err = run(capsys, "train", "--method", "npgan", "--data", path, "--steps", "5", "--out", out)
    assert code == 2
    assert message.lower() in err.lower(), err
    assert not out.exists()


def test_user_csv_trains(tmp_path, capsys):
    path = tmp_path / "points.csv"
    rng = np.random.default_rng(0)
    np.savetxt(path, rng.normal(size=(200, 3)), delimiter=",", header="a,b,c", comments="")
    out = tmp_path / "run"
    code, _, err = run(capsys, "train", "--method", "gan", "--data", path, "--steps", "2", "--batch-size", "50",
                       "--out", out, *TINY)
    assert code == 0, err
    assert keras.models.load_model(out / T.MODEL_FILE).config.data_shape == (3,)


def test_sample_and_evaluate_refuse_a_directory_without_a_model(tmp_path, capsys):
    code, _, err = run(capsys, "sample", tmp_path, "-n", "5", "--out", tmp_path / "s.npy")
    assert code == 2 and "no trained model" in err
    assert not (tmp_path / "s.npy").exists()
    code, _, err = run(capsys, "evaluate", tmp_path, "--data", "gaussians3")
    assert code == 2 and "no trained model" in err


def test_sample_refuses_bad_counts_and_paths(trained_run, tmp_path, capsys):
    assert run(capsys, "sample", trained_run, "-n", "0", "--out", tmp_path / "s.npy")[0] == 2
    code, _, err = run(capsys, "sample", trained_run, "-n", "3", "--out", tmp_path / "s.txt")
    assert code == 2 and ".npy" in err

