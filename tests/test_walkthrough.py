"""The README's serving walkthrough, command for command: train -> export -> serve -> REST and
gRPC requests -> samples that passed the exported rejection rule."""
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

TIMEOUT_S = 180
TINY = ["--set", "generator_units=[16]", "--set", "discriminator_units=[16]", "--set", "latent_dim=4",
        "--set", "router_units=[8]"]


def _cli(*args):
    return [sys.executable, "-m", "tfgan_mix.training.cli", *args]


def _run(command):
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{command}\n{result.stderr[-3000:]}"
    return result.stdout


def _wait_for_ports(server, deadline_s=120):
    """Read the serve command's banner line (it prints the bound ports) within a bounded time."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        line = server.stdout.readline()
        if not line and server.poll() is not None:
            raise AssertionError(f"serve exited: {server.stderr.read()[-3000:]}")
        found = re.search(r"http://127\.0\.0\.1:(\d+)/.*gRPC 127\.0\.0\.1:(\d+)", line)
        if found:
            return int(found.group(1)), int(found.group(2))
    raise AssertionError("serve printed no ports in time")


@pytest.mark.slow
def test_train_export_serve_and_request_over_rest_and_grpc(tmp_path):
    run, base = str(tmp_path / "run"), str(tmp_path / "exported")
    _run(_cli("train", "--preset", "npgan_gaussians3", "--steps", "20", "--batch-size", "64", "--out", run, *TINY))
    printed = _run(_cli("export", run, "--out", base))
    assert os.path.isdir(os.path.join(base, "1")), printed
    card = json.loads(open(os.path.join(base, "1", "sampler.json")).read())
    threshold = card["rejection"]["threshold"]
    assert card["rejection"]["rule"] == "manifold"  # the default: k-NN balls of held-back data

    server = subprocess.Popen(_cli("serve", base, "--port", "0", "--grpc-port", "0"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        rest_port, grpc_port = _wait_for_ports(server)
        body = json.dumps({"instances": list(range(50))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{rest_port}/v1/models/sampler:predict", body)
        with urllib.request.urlopen(request, timeout=60) as response:
            rows = json.loads(response.read())["predictions"]
        accepted = [row for row in rows if row["accepted"]]
        assert len(rows) == 50 and len(accepted) >= 45  # calibration keeps each generator's rows >= 99% accepted
        assert all(row["score"] >= threshold - 1e-6 for row in accepted), "a served sample failed the rule"

        printed = _run([sys.executable, "-m", "tfgan_mix.serving.grpc_client", "--port", str(grpc_port), "-n", "5"])
        assert re.search(r"accepted [45]/5", printed), printed
        first = re.search(r"seed 0: accepted=True generator=(\d) score=(-?[\d.]+) sample=\[(.*)\]", printed)
        assert first, printed
        np.testing.assert_allclose([float(v) for v in first.group(3).split()], rows[0]["samples"], atol=1e-3)
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_grpc_client_reports_a_refused_connection(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tfgan_mix.serving.grpc_client", "--port", "1", "-n", "1"],
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 1 and "UNAVAILABLE" in result.stderr
