"""The Node.js example (serving/node) samples an exported ONNX sampler with onnxruntime-node,
feeding the noise the model card describes."""
import json
import math
import os
import shutil
import subprocess

import pytest

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("node_example")

BALL = math.pi**2 / 2 * 0.9**4 / 2**4  # volume of the 4-ball of radius 0.9 over that of [-1, 1]^4
EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, "serving", "node")


@pytest.fixture(scope="module")
def node_example(tmp_path_factory):
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("Node.js and npm are not installed: the onnxruntime-node example cannot run here")
    work = tmp_path_factory.mktemp("node")
    for name in ("package.json", "sample.js"):
        shutil.copy(os.path.join(EXAMPLE, name), work)
    # --ignore-scripts: the package ships its CPU binaries; its install script only fetches CUDA ones.
    install = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=work,
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-2000:]
    return work


def test_node_example_draws_noise_per_the_card_and_keeps_accepted_samples(node_example, truncated_export):
    """Truncation at L2 radius 0.9 of 4-D uniform z with one candidate accepts BALL of the rows."""
    result = subprocess.run(["node", "sample.js", truncated_export, "4000"], cwd=node_example, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["rows"] == 4000 and out["accepted"] == len(out["samples"])
    assert abs(out["acceptance_rate"] - BALL) < 0.03
    assert all(len(s) == 2 for s in out["samples"])


def test_node_example_reports_a_missing_version(node_example, tmp_path):
    result = subprocess.run(["node", "sample.js", str(tmp_path / "nope")], cwd=node_example, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and "error:" in result.stderr
