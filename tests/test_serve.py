"""The TF-Serving-compatible server: REST with plain HTTP, gRPC with the official stub, bad input,
new versions, and a bounded load test. Loopback only, bounded waits everywhere."""
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from helpers import TIMEOUT_S, http
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from tfgan_mix.export import writer
from tfgan_mix.serving.model_server import serve

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("serve")


@pytest.fixture(scope="module")
def server(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("export") / "sampler"
    writer.export_run(tiny_run, str(base), formats="savedmodel", candidates=4)
    running = serve(str(base), port=0, grpc_port=0, poll_seconds=0.5, max_body_bytes=4096, max_batch=64)
    running.base = base
    yield running
    running.stop()


def predict(server, body, version=None):
    path = "/v1/models/sampler" + (f"/versions/{version}" if version else "") + ":predict"
    return http(server, "POST", path, body)


def test_status_and_metadata(server):
    status, body = http(server, "GET", "/v1/models/sampler")
    assert status == 200
    assert body["model_version_status"] == [{"version": "1", "state": "AVAILABLE",
                                             "status": {"error_code": "OK", "error_message": ""}}]
    status, body = http(server, "GET", "/v1/models/sampler/metadata")
    assert status == 200 and body["model_spec"]["version"] == "1"
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) == {"serving_default", "from_noise"}
    assert signatures["serving_default"]["inputs"]["seed"]["dtype"] == "DT_INT64"
    assert set(signatures["serving_default"]["outputs"]) == {"samples", "accepted", "generator", "score"}


def test_predict_row_and_columnar_forms_agree(server):
    status, rows = predict(server, {"instances": [1, 2, 1]})
    assert status == 200
    predictions = rows["predictions"]
    assert len(predictions) == 3 and set(predictions[0]) == {"samples", "accepted", "generator", "score"}
    assert predictions[0] == predictions[2], "same seed, same sample"
    assert predictions[0]["samples"] != predictions[1]["samples"]
    status, columns = predict(server, {"inputs": {"seed": [1, 2, 1]}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"]["samples"], [p["samples"] for p in predictions])
    assert columns["outputs"]["accepted"] == [p["accepted"] for p in predictions]


def test_predict_with_noise_signature(server):
    rng = np.random.default_rng(0)
    z = rng.uniform(-1, 1, (2, 4, 4)).tolist()
    u = rng.uniform(0, 1, (2, 4)).tolist()
    status, body = predict(server, {"signature_name": "from_noise", "instances": [{"z": z[0], "u": u[0]},
                                                                                   {"z": z[1], "u": u[1]}]})
    assert status == 200 and len(body["predictions"]) == 2
    status, columns = predict(server, {"signature_name": "from_noise", "inputs": {"z": z, "u": u}})
    assert status == 200
    np.testing.assert_allclose(columns["outputs"]["samples"], [p["samples"] for p in body["predictions"]])


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"instances": ["a", "b"]}, 400, "expects int64"),
        ({"instances": [1.5]}, 400, "expects int64"),
        ({"instances": [[1, 2]]}, 400, "must have shape"),
        ({"instances": []}, 400, "non-empty"),
        ({"inputs": {"seed": [1]}, "instances": [1]}, 400, "exactly one"),
        ({}, 400, "exactly one"),
        ({"instances": [1], "extra": 1}, 400, "unknown field"),
        ({"inputs": {"seed": [1], "z": [1]}}, 400, "unexpected ['z']"),
        ({"inputs": {"seed": list(range(65))}}, 400, "batch size must be between 1 and 64"),
        ({"signature_name": "nope", "instances": [1]}, 404, "not found"),
        ([1, 2], 400, "JSON object"),
    ],
)
def test_bad_requests_get_4xx_and_the_server_keeps_serving(server, body, status, message):
    got, answer = predict(server, body)
    assert got == status and message in answer["error"], answer
    assert predict(server, {"instances": [7]})[0] == 200


def test_bad_paths_bodies_and_methods(server):
    assert http(server, "POST", "/v1/models/sampler:predict", raw=b"{not json")[0] == 400
    status, answer = http(server, "POST", "/v1/models/sampler:predict", raw=b"x" * 5000)
    assert status == 413 and "exceeds the limit" in answer["error"]
    assert http(server, "GET", "/v1/models/other")[0] == 404
    assert http(server, "GET", "/v1/models/sampler/versions/99")[0] == 404
    assert http(server, "GET", "/v1/models/sampler/versions/x")[0] == 400
    assert http(server, "GET", "/v1/models/sampler:predict")[0] == 405
    assert http(server, "GET", "/nowhere")[0] == 404
    assert predict(server, {"instances": [7]})[0] == 200


def _stub(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    return channel, prediction_service_pb2_grpc.PredictionServiceStub(channel)


def test_grpc_predict_and_metadata_with_the_official_stub(server):
    channel, stub = _stub(server)
    with channel:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "sampler"
        request.model_spec.signature_name = "serving_default"
        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([1, 2, 1], np.int64)))
        response = stub.Predict(request, timeout=TIMEOUT_S)
        samples = tf.make_ndarray(response.outputs["samples"])
        assert samples.shape == (3, 2) and response.model_spec.version.value == 1
        np.testing.assert_array_equal(samples[0], samples[2])
        _, rest = predict(server, {"instances": [1]})
        np.testing.assert_allclose(samples[0], rest["predictions"][0]["samples"], rtol=1e-6)

        metadata = get_model_metadata_pb2.GetModelMetadataRequest()
        metadata.model_spec.name = "sampler"
        metadata.metadata_field.append("signature_def")
        answer = stub.GetModelMetadata(metadata, timeout=TIMEOUT_S)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        answer.metadata["signature_def"].Unpack(signature_map)
        assert set(signature_map.signature_def) == {"serving_default", "from_noise"}

        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([0.5], np.float32)))
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(request, timeout=TIMEOUT_S)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "expects int64" in error.value.details()
        request.model_spec.name = "other"
        with pytest.raises(grpc.RpcError) as error:
            stub.Predict(request, timeout=TIMEOUT_S)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_new_version_is_picked_up(server, tiny_run):
    writer.export_run(tiny_run, str(server.base), formats="savedmodel", rule="none", candidates=2)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and 2 not in server.store.versions():
        time.sleep(0.2)
    status, body = predict(server, {"instances": [1]}, version=2)
    assert status == 200 and body["predictions"][0]["accepted"] is True  # rule "none" accepts everything
    assert http(server, "GET", "/v1/models/sampler/metadata")[1]["model_spec"]["version"] == "2"


def test_bounded_load_on_loopback(server):
    """4 clients x 25 requests of 16 rows at once: no errors. Prints the measured rate."""
    errors, lock = [], threading.Lock()

    def client(index):
        for i in range(25):
            status, body = predict(server, {"inputs": {"seed": list(range(index * 1000 + i * 16, index * 1000 + i * 16 + 16))}})
            if status != 200 or len(body["outputs"]["samples"]) != 16:
                with lock:
                    errors.append((status, body))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    seconds = time.perf_counter() - start
    assert not any(t.is_alive() for t in threads), "load test did not finish in time"
    assert errors == []
    print(f"\nload test: 100 requests x 16 rows in {seconds:.2f} s = {100 / seconds:.1f} requests/s, "
          f"{1600 / seconds:.0f} samples/s")
