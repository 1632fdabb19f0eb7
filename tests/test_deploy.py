"""deploy/: TensorFlow Serving's models.config, the docker run script and the KServe YAML parse,
agree with each other, and point at the layout `tfgan-mix export` writes. No container runtime or
cluster runs here; these checks are what this machine allows."""
import json
import os
import re
import shlex
import shutil
import subprocess
import urllib.request

import pytest
import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfgan_mix.training.cli import _parser

DEPLOY = os.path.join(os.path.dirname(__file__), os.pardir, "deploy")


def _read(*parts):
    with open(os.path.join(DEPLOY, *parts), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def model_config():
    config = text_format.Parse(_read("models.config"), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    return entry


@pytest.fixture(scope="module")
def kserve():
    documents = {}
    for name in sorted(os.listdir(os.path.join(DEPLOY, "kserve"))):
        for doc in yaml.safe_load_all(_read("kserve", name)):
            documents[(doc["kind"], doc["metadata"]["name"])] = doc
    return documents


def _serve_defaults():
    return _parser().parse_args(["serve", "BASE"])


def test_models_config_matches_the_serve_command(model_config):
    assert model_config.name == _serve_defaults().name == "sampler"
    assert model_config.model_platform == "tensorflow"
    assert model_config.base_path == "/models/sampler"
    assert model_config.model_version_policy.WhichOneof("policy_choice") == "latest"
    assert model_config.model_version_policy.latest.num_versions == _serve_defaults().keep_versions == 1


def test_docker_script_mounts_the_base_where_models_config_points(model_config):
    script = _read("docker-run.sh")
    if shutil.which("bash"):
        check = subprocess.run(["bash", "-n", os.path.join(DEPLOY, "docker-run.sh")], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
    mounts = dict(re.findall(r"source=([^,]+),target=([^,\"]+)", script))
    assert mounts["${BASE}"] == model_config.base_path
    config_target = mounts["${HERE}/models.config"]
    assert f"--model_config_file={config_target}" in script
    assert "tensorflow/serving" in script
    ports = re.findall(r"-p 127\.0\.0\.1:(\d+):(\d+)", script)
    defaults = _serve_defaults()
    assert sorted(ports) == sorted([(str(defaults.port), str(defaults.port)),
                                    (str(defaults.grpc_port), str(defaults.grpc_port))])
    shlex.split(script.replace("\\\n", " "), comments=True)  # quoting is balanced


def test_kserve_inference_service_names_the_model_and_the_claim(kserve):
    service = kserve[("InferenceService", "sampler")]
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["metadata"]["name"] == _serve_defaults().name  # the model name in request paths
    model = service["spec"]["predictor"]["model"]
    assert model["modelFormat"]["name"] == "tensorflow"
    claim, path = re.fullmatch(r"pvc://([^/]+)/(.+)", model["storageUri"]).groups()
    assert ("PersistentVolumeClaim", claim) in kserve
    copy = kserve[("Pod", "tfgan-mix-copy")]
    (volume,) = copy["spec"]["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == claim
    (mount,) = copy["spec"]["containers"][0]["volumeMounts"]
    assert f"{mount['mountPath']}/{path}" == "/models/sampler"  # where the README copies versions to
    assert service["spec"]["predictor"]["containerConcurrency"] >= 1


def test_an_export_has_the_layout_the_configs_point_at(tmp_path, model_config):
    """Export into <root>/sampler (the directory docker-run.sh mounts and the claim holds), then
    serve that directory with the name and policy of models.config."""
    from tfgan_mix.data import load_dataset
    from tfgan_mix.export import writer
    from tfgan_mix.serving.model_server import serve
    from tfgan_mix.training.train import TrainSpec, train

    spec = TrainSpec(method="npgan", data="gaussians3", steps=4, batch_size=32, num_generators=3,
                     options={"generator_units": [16], "discriminator_units": [16], "latent_dim": 4,
                              "router_units": [8]})
    train(spec, load_dataset("gaussians3"), str(tmp_path / "run"), verbose=0)
    base = tmp_path / os.path.basename(model_config.base_path)
    version_dir = writer.export_run(str(tmp_path / "run"), str(base), formats="savedmodel")
    assert os.path.dirname(version_dir) == str(base) and re.fullmatch(r"[0-9]+", os.path.basename(version_dir))
    assert os.path.isfile(os.path.join(version_dir, "saved_model.pb"))
    assert os.path.isdir(os.path.join(version_dir, "variables"))

    running = serve(str(base), name=model_config.name, port=0, grpc_port=0,
                    keep_versions=model_config.model_version_policy.latest.num_versions)
    try:
        body = json.dumps({"instances": [1, 2]}).encode()
        url = f"http://127.0.0.1:{running.rest_port}/v1/models/{model_config.name}:predict"
        with urllib.request.urlopen(urllib.request.Request(url, body), timeout=30) as response:
            assert len(json.loads(response.read())["predictions"]) == 2
    finally:
        running.stop()
