"""Hostile input against the TF-Serving-compatible server: every case gets a 4xx (gRPC
INVALID_ARGUMENT or the code named) with a message, allocates nothing it declared, and the server
answers a normal request right after. Also: the version policy with a corrupt version, connection
deadlines, and bounded threads. Loopback only; every wait is bounded."""
import json
import os
import resource
import shutil
import socket
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from helpers import TIMEOUT_S, http
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from tfgan_mix.export import writer
from tfgan_mix.serving.model_server import REJECTED_ROWS_KEY, serve

# The module's fixtures train or export once per process: keep its tests in one process.
pytestmark = pytest.mark.xdist_group("serving_hostile")

IDLE_S = 1.0  # the hostile server's header deadline and body deadline
MAX_BODY = 1 << 16
MAX_BATCH = 64


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    base = tmp_path_factory.mktemp("export") / "sampler"
    # Truncation at L2 radius 0.5 of 4-D uniform z: z at the prior's corner fails, z = 0 passes.
    writer.export_run(tiny_run, str(base), formats="savedmodel", rule="truncation", threshold=-0.5, candidates=4)
    return base


@pytest.fixture(scope="module")
def server(exported):
    running = serve(str(exported), port=0, grpc_port=0, poll_seconds=0.5, max_body_bytes=MAX_BODY,
                    max_batch=MAX_BATCH, idle_timeout_s=IDLE_S, body_timeout_s=IDLE_S)
    yield running
    running.stop()


# ---------------------------------------------------------------------- helpers
def raw_http(server, data, wait_s=10.0):
    """Send bytes on a fresh socket; return (status, body bytes) of the answer, read until the
    server closes (the hostile server closes idle connections after IDLE_S)."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=wait_s) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):  # the server answered and closed mid-upload
            pass
        received = b""
        end = time.monotonic() + wait_s
        while time.monotonic() < end:
            try:
                chunk = sock.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def still_serves(server):
    status, body = http(server, "POST", "/v1/models/sampler:predict", {"instances": [7]})
    assert status == 200 and len(body["predictions"]) == 1
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sampler"
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([7], np.int64)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=TIMEOUT_S)
    assert tf.make_ndarray(response.outputs["samples"]).shape == (1, 2)


def noise(rows, value=0.1):
    return {"z": np.full((rows, 4, 4), value).tolist(), "u": np.full((rows, 4), 0.5).tolist()}


def predict_body(raw_json):
    """A raw POST :predict with the exact JSON text given."""
    body = raw_json.encode()
    return (b"POST /v1/models/sampler:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


# ---------------------------------------------------------------------- REST, JSON bodies
RAGGED_Z = {"signature_name": "from_noise",
            "inputs": {"z": [[[0.1] * 4] * 4, [[0.1] * 4] * 3], "u": [[0.5] * 4] * 2}}

REST_CASES = [
    # (case, body, status, words in the error)
    ("ragged instances", {"signature_name": "from_noise",
                          "instances": [{"z": [[0.1] * 4] * 4, "u": [0.5] * 4},
                                        {"z": [[0.1] * 3] * 4, "u": [0.5] * 4}]}, 400, "ragged"),
    ("ragged inputs", RAGGED_Z, 400, "ragged"),
    ("ragged seeds", {"inputs": {"seed": [1, [2]]}}, 400, "must have shape"),
    ("5000-digit integer", '{"instances": [' + "9" * 5000 + "]}", 400, "JSON Parse error"),
    ("4000-digit integer", '{"instances": [' + "9" * 4000 + "]}", 400, "outside the int64 range"),
    ("seed 2^64-1", {"instances": [2**64 - 1]}, 400, "outside the int64 range"),
    ("seed 2^63", {"instances": [2**63]}, 400, "outside the int64 range"),
    ("seed -2^63-1", {"instances": [-(2**63) - 1]}, 400, "outside the int64 range"),
    ("boolean seed", {"instances": [True]}, 400, "expects int64 values, got booleans"),
    ("null seed", {"instances": [None]}, 400, "expects int64 values, got nulls"),
    ("signature_name list", {"signature_name": ["serving_default"], "instances": [1]}, 400,
     "signature_name must be a string"),
    ("signature_name dict", {"signature_name": {"a": 1}, "instances": [1]}, 400, "signature_name must be a string"),
    ("deep nesting", '{"instances": ' + "[" * 30000 + "]" * 30000 + "}", 400, "nested too deeply"),
    ("deep but parseable nesting", {"instances": [[[[[1]]]]]}, 400, "must have shape"),
    ("NaN literal noise", json.dumps({"signature_name": "from_noise", "inputs": noise(1)}).replace("0.1", "NaN", 1),
     400, "JSON Parse error"),
    ("Infinity literal noise",
     json.dumps({"signature_name": "from_noise", "inputs": noise(1)}).replace("0.1", "-Infinity", 1),
     400, "JSON Parse error"),
    ("noise beyond float32", {"signature_name": "from_noise", "inputs": noise(1, 1e39)}, 400, "non-finite"),
    ("noise 1e38", {"signature_name": "from_noise", "inputs": noise(1, 1e38)}, 400, "not finite"),
    ("noise 10^400 as an integer", {"signature_name": "from_noise", "inputs": noise(1, 10**400)}, 400, "non-finite"),
    ("string noise", {"signature_name": "from_noise", "inputs": noise(1, "x")}, 400, "expects float32"),
    ("batch over the limit", {"inputs": {"seed": list(range(MAX_BATCH + 1))}}, 400, f"between 1 and {MAX_BATCH}"),
    ("noise batch over the limit", {"signature_name": "from_noise", "inputs": noise(MAX_BATCH + 1)}, 400,
     f"between 1 and {MAX_BATCH}"),
    ("scalar input", {"inputs": {"seed": 5}}, 400, "must have shape"),
    ("inputs of unequal batch", {"signature_name": "from_noise",
                                 "inputs": {"z": noise(2)["z"], "u": noise(3)["u"]}}, 400, "different batch sizes"),
    ("invalid UTF-8", b'{"instances": ["\xff"]}', 400, "JSON Parse error"),
]


@pytest.mark.parametrize("case, body, status, words", REST_CASES, ids=[c[0] for c in REST_CASES])
def test_hostile_rest_bodies_get_4xx_and_the_server_keeps_serving(server, case, body, status, words):
    raw = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else None)
    got, answer = http(server, "POST", "/v1/models/sampler:predict", body=None if raw else body, raw=raw)
    assert got == status and words in answer["error"], (case, answer)
    assert str(server.store.base) not in answer["error"], "no server path in an error"
    still_serves(server)


def test_finite_noise_is_served_as_strict_json(server):
    status, text = raw_http(server, predict_body(json.dumps({"signature_name": "from_noise", "inputs": noise(3)})))
    assert status == 200
    answer = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert len(answer["outputs"]["samples"]) == 3


# ---------------------------------------------------------------------- REST, HTTP level
def _request(path, headers, body=b""):
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _chunked(payload, size=7):
    parts = [f"{len(payload[i:i + size]):x}\r\n".encode() + payload[i:i + size] + b"\r\n"
             for i in range(0, len(payload), size)]
    return b"".join(parts) + b"0\r\n\r\n"


HTTP_CASES = [
    # (case, raw request, allowed statuses, words in the body or None)
    ("negative Content-Length", _request("/v1/models/sampler:predict", ["Content-Length: -5"]), {400}, None),
    ("non-numeric Content-Length", _request("/v1/models/sampler:predict", ["Content-Length: ten"]), {400}, None),
    ("Content-Length over the limit, no body sent",
     _request("/v1/models/sampler:predict", [f"Content-Length: {10**12}"]), {413}, b"exceeds the limit"),
    ("chunked body over the limit",
     _request("/v1/models/sampler:predict", ["Transfer-Encoding: chunked"], _chunked(b" " * (MAX_BODY + 1), 4096)),
     {413}, b"exceeds the limit"),
    ("short body", _request("/v1/models/sampler:predict", ["Content-Length: 100"], b'{"instances"'), {408},
     b"did not arrive"),
    ("non-ASCII-digit version", _request("/v1/models/sampler/versions/%C2%B2:predict", ["Content-Length: 2"], b"{}"),
     {400}, b"non-negative integer"),
    ("Arabic-Indic digit version", _request("/v1/models/sampler/versions/%D9%A3:predict", ["Content-Length: 2"],
                                            b"{}"), {400}, b"non-negative integer"),
    ("version beyond int64", _request("/v1/models/sampler/versions/" + "9" * 30 + ":predict", ["Content-Length: 2"],
                                      b"{}"), {400}, b"non-negative integer"),
    ("unfinished header over 16 KiB", b"POST /v1/models/sampler:predict HTTP/1.1\r\nX-Big: " + b"a" * 100_000,
     {400}, None),
]


@pytest.mark.parametrize("case, data, statuses, words", HTTP_CASES, ids=[c[0] for c in HTTP_CASES])
def test_hostile_http_requests_get_4xx_and_the_server_keeps_serving(server, case, data, statuses, words):
    status, body = raw_http(server, data)
    assert status in statuses, (case, status, body[:300])
    if words:
        assert words in body, (case, body[:300])
    still_serves(server)


def test_a_chunked_body_is_read(server):
    payload = json.dumps({"instances": [1, 2, 3]}).encode()
    status, body = raw_http(server, _request("/v1/models/sampler:predict", ["Transfer-Encoding: chunked"],
                                             _chunked(payload)))
    assert status == 200 and len(json.loads(body)["predictions"]) == 3


# ---------------------------------------------------------------------- gRPC
def _proto(dtype, dims, **values):
    proto = tensor_pb2.TensorProto(dtype=dtype, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))
    for field, vals in values.items():
        if field == "tensor_content":
            proto.tensor_content = vals
        else:
            getattr(proto, field).extend(vals)
    return proto


def _unknown_rank():
    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_INT64)
    proto.tensor_shape.unknown_rank = True
    proto.int64_val.append(1)
    return proto


Z = types_pb2.DT_FLOAT
GOOD_U = _proto(Z, [1, 4], float_val=[0.5])

GRPC_CASES = [
    # (case, signature, inputs, status code, words in the details)
    ("declared seed shape of 125,000,000", "", {"seed": _proto(types_pb2.DT_INT64, [125_000_000], int64_val=[7])},
     grpc.StatusCode.INVALID_ARGUMENT, "[125000000]"),
    ("declared noise shape of 10^12 values", "from_noise",
     {"z": _proto(Z, [1, 1_000_000, 1_000_000], float_val=[0.1]), "u": GOOD_U},
     grpc.StatusCode.INVALID_ARGUMENT, "[1, 1000000, 1000000]"),
    ("declared batch of 2^40 for noise", "from_noise",
     {"z": _proto(Z, [2**40, 4, 4], float_val=[0.1]), "u": GOOD_U}, grpc.StatusCode.INVALID_ARGUMENT,
     str(2**40 * 16)),
    ("the second input declares the huge shape", "from_noise",
     {"z": _proto(Z, [1, 4, 4], float_val=[0.1]), "u": _proto(Z, [1, 10**9], float_val=[0.5])},
     grpc.StatusCode.INVALID_ARGUMENT, "[1, 1000000000]"),
    ("negative dim", "", {"seed": _proto(types_pb2.DT_INT64, [-1], int64_val=[7])},
     grpc.StatusCode.INVALID_ARGUMENT, "declares shape [-1]"),
    ("zero rows", "", {"seed": _proto(types_pb2.DT_INT64, [0])}, grpc.StatusCode.INVALID_ARGUMENT, "batch size"),
    ("unknown rank", "", {"seed": _unknown_rank()}, grpc.StatusCode.INVALID_ARGUMENT, "unknown rank"),
    ("wrong rank", "", {"seed": _proto(types_pb2.DT_INT64, [1, 1], int64_val=[7])},
     grpc.StatusCode.INVALID_ARGUMENT, "must have shape"),
    ("tensor_content of the wrong length", "",
     {"seed": _proto(types_pb2.DT_INT64, [4], tensor_content=b"\x00" * 8)}, grpc.StatusCode.INVALID_ARGUMENT,
     "tensor_content has 8 bytes"),
    ("value count not 1 and not the shape's", "", {"seed": _proto(types_pb2.DT_INT64, [5], int64_val=[1, 2, 3])},
     grpc.StatusCode.INVALID_ARGUMENT, "holds 3 values for a shape of 5"),
    ("float seeds", "", {"seed": _proto(Z, [1], float_val=[0.5])}, grpc.StatusCode.INVALID_ARGUMENT,
     "expects int64"),
    ("NaN noise", "from_noise", {"z": _proto(Z, [1, 4, 4], float_val=[float("nan")]), "u": GOOD_U},
     grpc.StatusCode.INVALID_ARGUMENT, "non-finite"),
    ("infinite noise", "from_noise", {"z": _proto(Z, [1, 4, 4], float_val=[float("inf")]), "u": GOOD_U},
     grpc.StatusCode.INVALID_ARGUMENT, "non-finite"),
    ("noise 1e38", "from_noise", {"z": _proto(Z, [1, 4, 4], float_val=[1e38]), "u": GOOD_U},
     grpc.StatusCode.INVALID_ARGUMENT, "not finite"),
    ("missing input", "from_noise", {"z": _proto(Z, [1, 4, 4], float_val=[0.1])},
     grpc.StatusCode.INVALID_ARGUMENT, "missing ['u']"),
    ("unknown signature", "nope", {"seed": _proto(types_pb2.DT_INT64, [1], int64_val=[7])},
     grpc.StatusCode.NOT_FOUND, "not found"),
    ("message over the size limit", "", {"seed": _proto(types_pb2.DT_INT64, [MAX_BODY], int64_val=range(MAX_BODY))},
     grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
]


@pytest.mark.parametrize("case, signature, inputs, code, words", GRPC_CASES, ids=[c[0] for c in GRPC_CASES])
def test_hostile_grpc_requests_are_refused_before_allocating(server, case, signature, inputs, code, words):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sampler"
    request.model_spec.signature_name = signature
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(value)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=TIMEOUT_S)
    assert error.value.code() == code, (case, error.value.details())
    assert words in (error.value.details() or ""), (case, error.value.details())
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 200, f"{case}: peak memory grew by {grown_mib:.0f} MiB"
    still_serves(server)


def test_version_labels_are_refused(server):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sampler"
    request.model_spec.version_label = "stable"
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int64)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        with pytest.raises(grpc.RpcError) as error:
            prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=TIMEOUT_S)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "labels" in error.value.details()


# ---------------------------------------------------------------------- rejected rows
def test_rejected_rows_over_rest_and_grpc(server):
    """Rows whose every candidate fails the rule (z at the corner of the prior fails truncation
    at radius 0.5, z = 0 passes) are counted next to the outputs; the count matches the rows with
    accepted false."""
    body = {"signature_name": "from_noise",
            "inputs": {"z": noise(2, 0.99)["z"] + noise(3, 0.0)["z"], "u": noise(5)["u"]}}
    status, answer = http(server, "POST", "/v1/models/sampler:predict", body)
    assert status == 200
    accepted = answer["outputs"]["accepted"]
    assert accepted == [False, False, True, True, True]
    assert answer["rejected_rows"] == 2
    status, rows = http(server, "POST", "/v1/models/sampler:predict", {"instances": list(range(20))})
    assert rows["rejected_rows"] == sum(not r["accepted"] for r in rows["predictions"])

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sampler"
    request.model_spec.signature_name = "from_noise"
    request.inputs["z"].CopyFrom(tf.make_tensor_proto(np.array(body["inputs"]["z"], np.float32)))
    request.inputs["u"].CopyFrom(tf.make_tensor_proto(np.array(body["inputs"]["u"], np.float32)))
    with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
        response, call = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict.with_call(
            request, timeout=TIMEOUT_S)
    trailing = dict(call.trailing_metadata())
    assert int(trailing[REJECTED_ROWS_KEY]) == answer["rejected_rows"]
    assert tf.make_ndarray(response.outputs["accepted"]).tolist() == accepted


# ---------------------------------------------------------------------- connection deadlines
def _closed_within(sock, bound_s):
    """True when the server closes ``sock`` within ``bound_s`` (recv returns b'' or resets)."""
    sock.settimeout(bound_s)
    try:
        while True:
            if not sock.recv(4096):
                return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_a_silent_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT_S) as sock:
        assert _closed_within(sock, IDLE_S * 10), "a connection that sent nothing stayed open"
    still_serves(server)


def test_a_byte_at_a_time_header_is_closed(server):
    """A client that keeps sending header bytes but never finishes the header is cut off after
    the header deadline, even though every byte arrives well inside it."""
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"GET /v1/models/sampler HTTP/1.1\r\n")
        closed = False
        for _ in range(int(IDLE_S * 10 / 0.2)):
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.2)
            try:
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except socket.timeout:
                pass
            except ConnectionResetError:
                closed = True
                break
        assert closed, "a never-ending header kept the connection open"
    still_serves(server)


def test_an_idle_keep_alive_connection_is_closed(server):
    with socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT_S) as sock:
        sock.sendall(b"GET /v1/models/sampler HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(TIMEOUT_S)
        answer = b""
        while b"AVAILABLE" not in answer:  # the body may come in a later segment than the header
            chunk = sock.recv(65536)
            assert chunk, f"closed before the answer was complete: {answer!r}"
            answer += chunk
        assert _closed_within(sock, IDLE_S * 10), "an idle keep-alive connection stayed open"


def test_many_idle_sockets_cost_no_threads(server):
    threads_before = threading.active_count()
    sockets = [socket.create_connection(("127.0.0.1", server.rest_port), timeout=TIMEOUT_S) for _ in range(200)]
    try:
        time.sleep(0.3)
        assert threading.active_count() - threads_before < 10
        still_serves(server)
    finally:
        for sock in sockets:
            sock.close()


# ---------------------------------------------------------------------- version policy
@pytest.fixture
def versions(exported, tmp_path):
    """BASE with good versions 1 and 2, a corrupt 6, and a '²' directory (a non-ASCII digit)."""
    base = tmp_path / "sampler"
    for name in ("1", "2", "²"):
        shutil.copytree(exported / "1", base / name)
    os.makedirs(base / "6")
    (base / "6" / "saved_model.pb").write_bytes(np.random.default_rng(0).bytes(4096))
    return base


def test_a_corrupt_version_is_skipped_and_reported_without_paths(versions):
    running = serve(str(versions), port=0, grpc_port=0, poll_seconds=0.3, keep_versions=2)
    try:
        assert running.store.versions() == [1, 2]
        status, body = http(running, "GET", "/v1/models/sampler")
        assert status == 200
        states = {s["version"]: s for s in body["model_version_status"]}
        assert set(states) == {"1", "2", "6"}
        assert states["2"]["state"] == "AVAILABLE" and states["1"]["state"] == "AVAILABLE"
        assert states["6"]["state"] == "END" and states["6"]["status"]["error_code"] == "UNKNOWN"
        assert "failed to load" in states["6"]["status"]["error_message"]
        status, one = http(running, "GET", "/v1/models/sampler/versions/6")
        assert status == 200 and one["model_version_status"] == [states["6"]]
        status, answer = http(running, "POST", "/v1/models/sampler/versions/6:predict", {"instances": [1]})
        assert status == 404 and "Specific(sampler, 6)" in answer["error"]
        for text in (json.dumps(body), json.dumps(answer)):
            assert str(versions) not in text and "saved_model" not in text
        assert http(running, "POST", "/v1/models/sampler:predict", {"instances": [1]})[0] == 200  # version 2

        # A good model copied over the corrupt one is picked up; with latest 2 that unloads version 1.
        shutil.rmtree(versions / "6")
        shutil.copytree(versions / "1", versions / "7.tmp")
        os.rename(versions / "7.tmp", versions / "6")
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and running.store.versions() != [2, 6]:
            time.sleep(0.1)
        assert running.store.versions() == [2, 6]
        assert http(running, "POST", "/v1/models/sampler/versions/6:predict", {"instances": [1]})[0] == 200
        status, answer = http(running, "POST", "/v1/models/sampler/versions/1:predict", {"instances": [1]})
        assert status == 404 and "Specific(sampler, 1)" in answer["error"]
    finally:
        running.stop()


def test_latest_one_by_default_and_older_versions_get_404(versions):
    shutil.rmtree(versions / "6")
    running = serve(str(versions), port=0, grpc_port=0, poll_seconds=60)
    try:
        assert running.store.versions() == [2]
        assert http(running, "GET", "/v1/models/sampler/versions/2")[0] == 200
        assert http(running, "GET", "/v1/models/sampler/versions/1")[0] == 404
        status, answer = http(running, "POST", "/v1/models/sampler/versions/1:predict", {"instances": [1]})
        assert status == 404 and "Specific(sampler, 1)" in answer["error"]
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "sampler"
        request.model_spec.version.value = 1
        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.array([1], np.int64)))
        with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
            with pytest.raises(grpc.RpcError) as error:
                prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=TIMEOUT_S)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        running.stop()


def test_a_base_with_only_broken_versions_is_refused_in_one_line(tmp_path):
    os.makedirs(tmp_path / "3")
    (tmp_path / "3" / "saved_model.pb").write_bytes(b"not a model")
    with pytest.raises(FileNotFoundError, match=r"no loadable model version .*; version 3: the version failed to load"):
        serve(str(tmp_path), port=0, grpc_port=0)


@pytest.mark.parametrize("option, value", [("keep_versions", 0), ("idle_timeout_s", 0), ("max_batch", -1)])
def test_bad_server_options_are_refused(exported, option, value):
    with pytest.raises(ValueError, match=option):
        serve(str(exported), port=0, grpc_port=0, **{option: value})


def test_a_port_in_use_is_a_one_line_error(server, exported):
    with pytest.raises(ValueError, match="cannot listen for REST on 127.0.0.1:"):
        serve(str(exported), port=server.rest_port, grpc_port=0)
    with pytest.raises(ValueError, match="cannot listen for gRPC on 127.0.0.1:"):
        serve(str(exported), port=0, grpc_port=server.grpc_port)
    still_serves(server)
