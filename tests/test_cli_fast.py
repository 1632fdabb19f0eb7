"""``tfgan-mix --help`` and the listing commands load no TensorFlow; the registry finds every
built-in method without importing it; shared defaults have one source (tfgan_mix/constants.py).

The TensorFlow checks run the command in a fresh interpreter and look at ``sys.modules`` after it:
this test process has TensorFlow loaded already (conftest), so it cannot tell.
"""
import dataclasses
import inspect
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

import tfgan_mix
from tfgan_mix import constants
from tfgan_mix.core import registry
from tfgan_mix.data import list_datasets
from tfgan_mix.training import cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "keras", "tensorflow_datasets", "onnxruntime", "tf2onnx", "sklearn")

# Runs the command line in-process, then reports which heavy modules the run loaded.
_PROBE = """
import json, sys
from tfgan_mix.training import cli
try:
    status = cli.main(sys.argv[1:])
except SystemExit as exit:  # --help
    status = exit.code
sys.stdout.flush()
print(json.dumps({"status": status, "loaded": [m for m in %r if m in sys.modules]}), file=sys.stderr)
""" % (HEAVY,)


def _run_fresh(code, *argv):
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, cwd=ROOT)
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return result.stdout, report


@pytest.mark.parametrize("argv", [["--help"], ["methods"], ["datasets"], ["presets"], ["train", "--help"]])
def test_help_and_listing_commands_load_no_tensorflow(argv):
    out, report = _run_fresh(_PROBE, *argv)
    assert report["status"] in (0, None), out
    assert report["loaded"] == [], f"`tfgan-mix {' '.join(argv)}` imported {report['loaded']}"
    assert out.strip()


def test_listings_in_a_fresh_process_match_the_loaded_package():
    out, _ = _run_fresh(_PROBE, "methods")
    assert out.split() == tfgan_mix.list_methods()
    out, _ = _run_fresh(_PROBE, "datasets")
    assert out.splitlines()[:-2] == list_datasets()


def test_importing_the_package_and_its_light_modules_loads_no_tensorflow():
    code = ("import json, sys\n"
            "import tfgan_mix, tfgan_mix.core, tfgan_mix.core.registry, tfgan_mix.data, tfgan_mix.constants\n"
            "import tfgan_mix.training.presets\n"
            "tfgan_mix.list_methods()\n"
            "print(json.dumps({'loaded': [m for m in %r if m in sys.modules]}), file=sys.stderr)\n" % (HEAVY,))
    _, report = _run_fresh(code)
    assert report["loaded"] == []


# ---------------------------------------------------------------------- method discovery
def test_discovered_names_are_what_the_method_files_register():
    import tfgan_mix.methods  # noqa: F401  (runs every built-in's @register_method)

    registered = {name: cls.__module__ for name, cls in registry._METHODS.items()
                  if cls.__module__.startswith(registry.BUILTIN_PACKAGE + ".")}
    assert registered == registry.builtin_methods()
    assert registry.builtin_methods()["wgan-gp"] == "tfgan_mix.methods.wgan_gp"  # a name unlike its module's


def test_get_method_imports_a_builtin_on_demand_in_a_fresh_process():
    code = ("import json, sys\n"
            "import tfgan_mix\n"
            "before = 'tfgan_mix.methods.gan' in sys.modules\n"
            "cls = tfgan_mix.get_method('gan')\n"
            "print(json.dumps({'before': before, 'name': cls.method_name,\n"
            "                  'base': issubclass(cls, tfgan_mix.MixtureGAN)}), file=sys.stderr)\n")
    _, report = _run_fresh(code)
    assert report == {"before": False, "name": "gan", "base": True}


def test_unknown_method_lists_the_known_names():
    with pytest.raises(ValueError, match="unknown method 'nope'; registered methods: .*wgan-gp"):
        tfgan_mix.get_method("nope")


def test_decorator_names_are_read_from_source():
    source = ('@register_method("a-b")\nclass A: pass\n'
              '@registry.register_method("c")\n@other\nclass C: pass\n'
              'register_method("not-a-class")\n'
              '@register_method(NAME)\nclass D: pass\n')
    assert registry._registered_names(source) == ["a-b", "c"]


def test_lazy_package_attributes():
    from tfgan_mix.core import GANConfig, base

    assert tfgan_mix.GANConfig is GANConfig is base.GANConfig
    assert tfgan_mix.MixtureGAN is base.MixtureGAN
    assert {"GANConfig", "MixtureGAN", "get_method"} <= set(dir(tfgan_mix))
    with pytest.raises(AttributeError):
        tfgan_mix.not_a_name  # noqa: B018
    with pytest.raises(AttributeError):
        tfgan_mix.core.not_a_name  # noqa: B018


# ---------------------------------------------------------------------- one source for shared defaults
def _defaults(*argv):
    args = cli._parser().parse_args(list(argv))
    return vars(args)


def test_training_defaults_match_the_train_spec():
    from tfgan_mix.training.train import TrainSpec

    fields = {f.name: f.default for f in dataclasses.fields(TrainSpec)}
    assert fields["batch_size"] == constants.BATCH_SIZE
    assert fields["epoch_steps"] == constants.EPOCH_STEPS == _defaults("train", "--out", "x")["epoch_steps"]


def test_serve_defaults_match_the_server_limits():
    from tfgan_mix.serving.model_server import Limits

    limits, parsed = Limits(), _defaults("serve", "base")
    assert (parsed["max_body_bytes"], parsed["max_batch"], parsed["idle_timeout"], parsed["workers"]) == \
        (limits.max_body_bytes, limits.max_batch, limits.idle_timeout_s, limits.workers)
    assert limits.max_body_bytes == constants.MAX_BODY_BYTES and limits.max_batch == constants.MAX_BATCH


def test_export_candidate_defaults_match_calibration():
    from tfgan_mix.export import calibration

    parameters = inspect.signature(calibration.default_candidates).parameters
    assert (parameters["base"].default, parameters["most"].default) == (constants.CANDIDATES, constants.MAX_CANDIDATES)


def test_noise_vocabulary_is_one_table_for_python_and_javascript():
    from tfgan_mix.core import base
    from tfgan_mix.export import client

    card_names = set(constants.NOISE_CARD_NAMES.values())
    assert set(base.NOISE_PRIORS) <= set(constants.NOISE_CARD_NAMES)
    assert set(client._DRAW) == card_names
    script = (ROOT / "serving" / "node" / "sample.js").read_text(encoding="utf-8")
    table = re.search(r"const DRAW = \{(.*?)\n\};", script, re.S).group(1)
    assert set(re.findall(r'^\s*"([^"]+)":', table, re.M)) == card_names
