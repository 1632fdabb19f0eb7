"""A model server that speaks TensorFlow Serving's REST and gRPC APIs over exported samplers.

No TF Serving binary can be installed here, so this front serves ``BASE/<version>/`` SavedModels
the way TF Serving does, for unchanged TF Serving clients:

    GET  /v1/models/NAME[/versions/V]            version status
    GET  /v1/models/NAME[/versions/V]/metadata   signature defs
    POST /v1/models/NAME[/versions/V]:predict    {"instances": [...]} or {"inputs": ...}
    gRPC tensorflow.serving.PredictionService    Predict, GetModelMetadata

REST runs on Starlette under uvicorn (asyncio: an idle socket costs no thread); gRPC on grpcio.

Versions follow TF Serving's "latest N" policy (``keep_versions``, default 1): the N newest version
directories that load are served, older ones are unloaded, and a request for any other version
gets 404. A version directory must be named with ASCII digits and hold ``saved_model.pb``; one that
fails to load is skipped (logged, and reported with its error by the status endpoint) and never
blocks the others; it is retried only when its ``saved_model.pb`` changes. A polling thread picks
up new versions, and so does a request for a version not loaded yet.

Every declared size is checked before anything is allocated: REST bodies against
``max_body_bytes`` (from Content-Length, before reading, and while reading chunked bodies), gRPC
tensor shapes (the product of the declared dims, per input) against the batch limit before the
TensorProto is expanded. Inputs must be finite and in range for their dtype; a response is strict
JSON or an error. Bad requests get a 4xx (gRPC INVALID_ARGUMENT / NOT_FOUND) with a one-line
message that names no server path; an internal failure gets a 500 without details (the log has them).

Predict answers carry one extra field next to the outputs, ignored by TF Serving clients: the number
of rows where every candidate failed the rejection rule (rows with ``accepted`` false): REST
``"rejected_rows": N`` next to ``"predictions"``/``"outputs"``, gRPC the trailing metadata entry
``rejected-rows``.
"""
import asyncio
import functools
import json
import logging
import math
import os
import re
import socket
import threading
import time
from concurrent import futures
from dataclasses import dataclass

import anyio
import grpc
import numpy as np
import tensorflow as tf
import uvicorn
from google.protobuf import json_format
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Route
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc
from uvicorn.protocols.http.h11_impl import H11Protocol

from tfgan_mix.constants import IDLE_TIMEOUT_S, MAX_BATCH, MAX_BODY_BYTES, SERVE_WORKERS

DEFAULT_SIGNATURE = "serving_default"
MAX_ELEMENTS = 1 << 22  # per input, for signatures whose row shape has unknown dims
REJECTED_ROWS_KEY = "rejected-rows"  # gRPC trailing metadata
_VERSION_TEXT = re.compile(r"[0-9]{1,18}")  # ASCII digits only, and it fits an int64

log = logging.getLogger("tfgan_mix.serving")


@dataclass(frozen=True)
class Limits:
    """What one client may ask of the server; every bound is enforced before work is done."""

    max_body_bytes: int = MAX_BODY_BYTES  # REST body and gRPC message
    max_batch: int = MAX_BATCH  # rows per request
    idle_timeout_s: float = IDLE_TIMEOUT_S  # a connection that sends no complete request header within this is closed
    body_timeout_s: float = 30.0  # a request body must arrive within this (408 otherwise)
    workers: int = SERVE_WORKERS  # predictions running at once (REST and gRPC each)
    max_connections: int = 256  # REST: above this many connections or requests, 503
    backlog: int = 1024  # listen queue of the REST socket
    max_concurrent_rpcs: int = 64  # gRPC: above this, RESOURCE_EXHAUSTED

    def __post_init__(self):
        for key, value in self.__dict__.items():
            if not value > 0:
                raise ValueError(f"{key} must be positive, got {value}")


class RequestError(Exception):
    """A client error: HTTP ``status`` and a TF-Serving-style message."""

    def __init__(self, status, message, close=False):
        super().__init__(message)
        self.status, self.close = status, close


# ---------------------------------------------------------------------- versions on disk
class _Servable:
    def __init__(self, path):
        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        graph = next((m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags), None)
        if graph is None:
            raise ValueError("the SavedModel has no 'serve' meta graph")
        self.signature_defs = {k: v for k, v in graph.signature_def.items() if not k.startswith("__")}
        self.model = tf.saved_model.load(path, tags=["serve"])
        if DEFAULT_SIGNATURE not in self.model.signatures:
            raise ValueError(f"the SavedModel has no '{DEFAULT_SIGNATURE}' signature")


class ModelStore:
    """The served versions of one model under ``base`` (latest ``keep_versions``); thread-safe."""

    def __init__(self, base, name, keep_versions=1):
        if not (isinstance(keep_versions, int) and keep_versions >= 1):
            raise ValueError(f"keep_versions must be an integer >= 1, got {keep_versions!r}")
        self.base, self.name, self.keep_versions = base, name, keep_versions
        self._loaded = {}  # version -> _Servable
        self._failed = {}  # version -> ((mtime_ns, size) of saved_model.pb, client-safe message)
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self.refresh()
        if not self._loaded:
            failures = "; ".join(f"version {v}: {m}" for v, (_, m) in sorted(self._failed.items()))
            raise FileNotFoundError(f"{base} holds no loadable model version (an ASCII-digit directory with "
                                    f"saved_model.pb)" + (f"; {failures}" if failures else ""))

    def on_disk(self):
        """version -> stamp of its saved_model.pb, for every ASCII-digit directory that has one."""
        try:
            names = os.listdir(self.base)
        except OSError:
            return {}
        found = {}
        for name in names:
            if _VERSION_TEXT.fullmatch(name):
                try:
                    stat = os.stat(os.path.join(self.base, name, "saved_model.pb"))
                except OSError:
                    continue
                found[int(name)] = (stat.st_mtime_ns, stat.st_size)
        return found

    def refresh(self):
        """Apply the version policy to what is on disk: load the newest loadable versions, unload the rest."""
        with self._refresh_lock:
            disk = self.on_disk()
            keep = []
            for version in sorted(disk, reverse=True):
                if len(keep) == self.keep_versions:
                    break
                if version in self._loaded:
                    keep.append(version)
                    continue
                failed = self._failed.get(version)
                if failed and failed[0] == disk[version]:
                    continue  # unchanged since it failed
                try:
                    servable = _Servable(os.path.join(self.base, str(version)))
                except Exception as error:  # any broken directory: skip it, keep serving the others
                    log.warning("model %s version %s failed to load: %s", self.name, version, error)
                    self._failed[version] = (disk[version], f"the version failed to load ({type(error).__name__}); "
                                                            "the server log has the details")
                    continue
                self._failed.pop(version, None)
                with self._lock:
                    self._loaded[version] = servable
                log.info("model %s version %s loaded", self.name, version)
                keep.append(version)
            with self._lock:
                for version in sorted(set(self._loaded) - set(keep)):
                    del self._loaded[version]
                    log.info("model %s version %s unloaded (policy: latest %d)", self.name, version,
                             self.keep_versions)
                for version in set(self._failed) - set(disk):
                    del self._failed[version]

    def versions(self):
        with self._lock:
            return sorted(self._loaded)

    def failed(self):
        """version -> client-safe error message, for the versions that failed to load."""
        with self._lock:
            return {v: message for v, (_, message) in self._failed.items()}

    def get(self, name, version=None):
        """``(version, _Servable)``; RequestError 404 for an unknown model or a version not served."""
        if name != self.name:
            raise RequestError(404, f"Servable not found for request: Latest({name})")
        if version is not None and version not in self._loaded:
            self.refresh()
        with self._lock:
            if version is None:
                if not self._loaded:
                    raise RequestError(404, f"Servable not found for request: Latest({name})")
                version = max(self._loaded)
            if version not in self._loaded:
                raise RequestError(404, f"Servable not found for request: Specific({name}, {version})")
            return version, self._loaded[version]

    def status(self, name, version=None):
        """TF Serving's GetModelStatus answer as a dict; 404 for a version neither served nor failed."""
        if name != self.name:
            raise RequestError(404, f"Servable not found for request: Latest({name})")
        if version is not None and version not in self._loaded:
            self.refresh()
        ok = {"error_code": "OK", "error_message": ""}
        with self._lock:
            entries = {v: {"version": str(v), "state": "AVAILABLE", "status": ok} for v in self._loaded}
            entries.update({v: {"version": str(v), "state": "END",
                                "status": {"error_code": "UNKNOWN", "error_message": message}}
                            for v, (_, message) in self._failed.items()})
        if version is not None:
            if version not in entries:
                raise RequestError(404, f"Could not find version {version} of model {name}")
            return {"model_version_status": [entries[version]]}
        return {"model_version_status": [entries[v] for v in sorted(entries)]}


# ---------------------------------------------------------------------- input checks
_PROTO_FIELDS = {tf.int64: "int64_val", tf.int32: "int_val", tf.float32: "float_val", tf.float64: "double_val",
                 tf.bool: "bool_val", tf.float16: "half_val", tf.int16: "int_val", tf.int8: "int_val",
                 tf.uint8: "int_val"}


def _signature(servable, signature_name):
    signature_name = signature_name or DEFAULT_SIGNATURE
    if not isinstance(signature_name, str):
        raise RequestError(400, f"signature_name must be a string, got {type(signature_name).__name__}")
    if signature_name not in servable.model.signatures:
        raise RequestError(404, f"Serving signature name: \"{_clip(signature_name)}\" not found in signature def")
    function = servable.model.signatures[signature_name]
    return signature_name, function, function.structured_input_signature[1]


def _check_names(specs, names):
    missing, extra = sorted(set(specs) - set(names)), sorted(set(names) - set(specs))
    if missing or extra:
        raise RequestError(400, f"input names must be {sorted(specs)}; missing {missing}, "
                                f"unexpected {[_clip(e) for e in extra[:5]]}")


def check_declared_shape(name, shape, spec, max_batch):
    """Refuse a declared ``shape`` (list of ints) that does not fit ``spec`` or the batch limit.

    Runs before any array of that shape exists, so a tiny request cannot declare a huge tensor."""
    wanted = _shape(spec.shape)
    declared = f"input '{name}' declares shape {list(shape)}"
    if len(shape) != len(wanted) or any(d < 0 for d in shape):
        raise RequestError(400, f"{declared}; it must have shape {wanted}")
    total = math.prod(shape)
    if not 1 <= shape[0] <= max_batch:
        raise RequestError(400, f"{declared} ({total} values): batch size must be between 1 and {max_batch}, "
                                f"got {shape[0]}")
    if not spec.shape[1:].is_compatible_with(shape[1:]):
        raise RequestError(400, f"{declared}; it must have shape {wanted}")
    if total > MAX_ELEMENTS:
        raise RequestError(400, f"{declared} ({total} values): more than {MAX_ELEMENTS} values per input")
    return total


def array_from_json(name, value, spec, max_batch):
    """A numpy array for ``spec`` from JSON ``value`` (nested lists), checked before it is built:
    rectangular, of the signature's rank and row shape, batch within ``max_batch``, every value a
    number of the right kind, in range for the dtype and finite."""
    rank, shape, node = len(spec.shape), [], value
    while isinstance(node, list) and len(shape) < rank:
        shape.append(len(node))
        if not node:
            break
        node = node[0]
    if shape and shape[-1] == 0:
        shape += [0] * (rank - len(shape))  # an empty list: refused below with the shape it declares
    if len(shape) != rank:
        raise RequestError(400, f"input '{name}' must have shape {_shape(spec.shape)}, got {len(shape)} dimension(s)")
    check_declared_shape(name, shape, spec, max_batch)
    leaves = []
    _flatten(name, value, shape, 0, leaves, _shape(spec.shape))
    dtype = spec.dtype.as_numpy_dtype
    if spec.dtype.is_integer:
        info = np.iinfo(dtype)
        for v in leaves:
            if type(v) is not int:
                raise RequestError(400, f"input '{name}' expects {spec.dtype.name} values, got {_kind(v)}")
            if not info.min <= v <= info.max:
                raise RequestError(400, f"input '{name}': {_clip(str(v))} is outside the {spec.dtype.name} range "
                                        f"[{info.min}, {info.max}]")
        return np.array(leaves, dtype).reshape(shape)
    if spec.dtype.is_floating:
        for v in leaves:
            if type(v) not in (int, float):
                raise RequestError(400, f"input '{name}' expects {spec.dtype.name} values, got {_kind(v)}")
        try:
            with np.errstate(over="ignore"):
                array = np.array(leaves, dtype).reshape(shape)
        except OverflowError:
            array = None
        _check_finite(name, array)
        return array
    raise RequestError(400, f"input '{name}' has dtype {spec.dtype.name}, which this server does not accept")


def _flatten(name, node, shape, axis, out, wanted):
    if axis == len(shape):
        if isinstance(node, list):
            raise RequestError(400, f"input '{name}' must have shape {wanted}; found a list nested deeper")
        out.append(node)
        return
    if not isinstance(node, list) or len(node) != shape[axis]:
        raise RequestError(400, f"input '{name}' is ragged: expected {shape[axis]} values at depth {axis}, got "
                                f"{len(node) if isinstance(node, list) else 'a scalar'} (shape {shape})")
    for child in node:
        _flatten(name, child, shape, axis + 1, out, wanted)


def array_from_proto(name, proto, spec, max_batch):
    """A numpy array from a TensorProto, after checking its dtype, declared shape and value count;
    ``tf.make_ndarray`` (which expands a one-value tensor to the declared shape) runs only then."""
    if proto.dtype != spec.dtype.as_datatype_enum:
        try:
            got = tf.dtypes.as_dtype(proto.dtype).name
        except TypeError:
            got = f"dtype enum {proto.dtype}"
        raise RequestError(400, f"input '{name}' expects {spec.dtype.name} values, got {got}")
    if proto.tensor_shape.unknown_rank:
        raise RequestError(400, f"input '{name}' has an unknown rank; it must have shape {_shape(spec.shape)}")
    total = check_declared_shape(name, [d.size for d in proto.tensor_shape.dim], spec, max_batch)
    if proto.tensor_content:
        if len(proto.tensor_content) != total * spec.dtype.size:
            raise RequestError(400, f"input '{name}': tensor_content has {len(proto.tensor_content)} bytes, its "
                                    f"shape needs {total * spec.dtype.size}")
    else:
        field = _PROTO_FIELDS.get(spec.dtype)
        count = len(getattr(proto, field)) if field else 0
        if count not in (1, total):
            raise RequestError(400, f"input '{name}' holds {count} values for a shape of {total}")
    array = tf.make_ndarray(proto)
    if spec.dtype.is_floating:
        _check_finite(name, array)
    return array


def _check_finite(name, array):
    if array is None or not np.isfinite(array).all():
        raise RequestError(400, f"input '{name}' has non-finite values (NaN, infinity, or beyond the dtype's range)")


def run_signature(servable, signature_name, arrays, max_batch):
    """Run the signature on checked arrays (name -> numpy); name -> numpy output, finite."""
    _, function, specs = _signature(servable, signature_name)
    _check_names(specs, arrays)
    batch = None
    for name in specs:
        rows = arrays[name].shape[0]
        if batch is not None and rows != batch:
            raise RequestError(400, f"inputs have different batch sizes ({batch} and {rows})")
        batch = rows
    tensors = {name: tf.constant(arrays[name], dtype=spec.dtype) for name, spec in specs.items()}
    outputs = {k: v.numpy() for k, v in function(**tensors).items()}
    for key, value in outputs.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            rows = sorted({int(i) for i in np.argwhere(~np.isfinite(value))[:, 0]})
            raise RequestError(400, f"output '{key}' is not finite for row(s) {rows[:10]}: the input is outside "
                                    "what the model handles (noise must follow the model card's distributions)")
    return outputs


def rejected_rows(outputs):
    """Rows where every candidate failed the rejection rule (``accepted`` false); None without it."""
    accepted = outputs.get("accepted")
    return None if accepted is None else int(np.size(accepted) - np.count_nonzero(accepted))


def _kind(value):
    return {bool: "booleans", str: "strings", dict: "objects", float: "floats", type(None): "nulls",
            list: "lists"}.get(type(value), type(value).__name__)


def _shape(shape):
    return [-1 if d is None else d for d in shape.as_list()]


def _clip(text, limit=80):
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------- REST
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<rest>/metadata|:predict)?$")


def parse_json(raw):
    """The request body as JSON; 400 for bad UTF-8, bad JSON, NaN/Infinity literals, huge numbers
    or nesting too deep to parse."""

    def refuse_constant(name):
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(raw.decode("utf-8") if raw else "null", parse_constant=refuse_constant)
    except RecursionError:
        raise RequestError(400, "JSON Parse error: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, int digit limit, NaN literals
        raise RequestError(400, f"JSON Parse error: {_clip(error, 200)}") from None


def rest_predict(store, name, version, body, max_batch):
    """The answer to POST ...:predict, as TF Serving gives it (row or columnar form), plus ``rejected_rows``."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(400, f"unknown field(s) {[_clip(u) for u in unknown[:5]]}; expected 'instances' or "
                                "'inputs' and 'signature_name'")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "exactly one of 'instances' (row format) or 'inputs' (columnar format) is required")
    _, servable = store.get(name, version)
    signature, _, specs = _signature(servable, body.get("signature_name"))
    names = list(specs)
    if "instances" in body:
        columns = _rows_to_columns(body["instances"], names)
    else:
        inputs = body["inputs"]
        columns = inputs if isinstance(inputs, dict) else ({names[0]: inputs} if len(names) == 1 else None)
        if columns is None:
            raise RequestError(400, f"'inputs' must be an object with keys {names}")
    _check_names(specs, columns)
    arrays = {k: array_from_json(k, columns[k], specs[k], max_batch) for k in names}
    outputs = run_signature(servable, signature, arrays, max_batch)
    if "instances" in body:
        rows = len(next(iter(outputs.values())))
        answer = {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(rows)]}
    else:
        answer = {"outputs": {k: v.tolist() for k, v in outputs.items()}}
    rejected = rejected_rows(outputs)
    if rejected is not None:
        answer["rejected_rows"] = rejected
    return answer


def _rows_to_columns(instances, names):
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "'instances' must be a non-empty list")
    if all(isinstance(row, dict) for row in instances):
        keys = set(instances[0])
        if any(set(row) != keys for row in instances):
            raise RequestError(400, "every instance must have the same keys")
        return {k: [row[k] for row in instances] for k in keys}
    if len(names) != 1 or any(isinstance(row, dict) for row in instances):
        raise RequestError(400, f"instances must be objects with keys {names}")
    return {names[0]: instances}


def rest_status(store, name, version):
    return store.status(name, version)


def rest_metadata(store, name, version):
    version, servable = store.get(name, version)
    defs = {k: json_format.MessageToDict(v) for k, v in servable.signature_defs.items()}
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": defs}}}


def parse_version(text):
    """A version from a path segment: ASCII digits only (``str.isdigit`` also accepts '²')."""
    if text is None:
        return None
    if not _VERSION_TEXT.fullmatch(text):
        raise RequestError(400, f"version must be a non-negative integer below 10^18, got {_clip(text)!r}")
    return int(text)


def _route(store, limits, method, path, raw):
    match = _PATH.match(path)
    if not match:
        raise RequestError(404, f"Malformed request: {method} {_clip(path)}")
    name, rest = match["name"], match["rest"]
    version = parse_version(match["version"])
    if rest == ":predict":
        if method != "POST":
            raise RequestError(405, f"{method} is not allowed for :predict; use POST")
        return rest_predict(store, name, version, parse_json(raw), limits.max_batch)
    if method not in ("GET", "HEAD"):
        raise RequestError(405, f"{method} is not allowed here; use GET")
    return rest_metadata(store, name, version) if rest == "/metadata" else rest_status(store, name, version)


def _answer(status, body, close=False):
    """Strict JSON (``allow_nan=False``): a response that cannot be strict becomes a 500."""
    try:
        payload = json.dumps(body, allow_nan=False)
    except ValueError:
        log.exception("response is not strict JSON")
        status, payload = 500, json.dumps({"error": "internal error: the response was not valid JSON"})
    headers = {"connection": "close"} if close else None
    return Response(payload, status_code=status, media_type="application/json", headers=headers)


async def _read_body(request, limits):
    """The request body, refused (413) when its declared or actual size passes the limit and (408)
    when it does not arrive within ``body_timeout_s``; chunked bodies are read too."""
    length = request.headers.get("content-length")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise RequestError(400, f"Content-Length must be a non-negative integer, got {_clip(length)!r}", True)
        if int(length) > limits.max_body_bytes:
            raise RequestError(413, f"request body of {_clip(length)} bytes exceeds the limit of "
                                    f"{limits.max_body_bytes}", close=True)
    chunks, size = [], 0

    async def read():
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise RequestError(413, f"request body exceeds the limit of {limits.max_body_bytes} bytes", True)
            chunks.append(chunk)

    try:
        await asyncio.wait_for(read(), limits.body_timeout_s)
    except asyncio.TimeoutError:
        raise RequestError(408, f"the request body did not arrive within {limits.body_timeout_s:g} s", True) from None
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected while sending the body", True) from None
    return b"".join(chunks)


def rest_app(store, limits):
    """The Starlette application for TF Serving's REST API over ``store``."""
    limiter = anyio.CapacityLimiter(limits.workers)

    async def endpoint(request):
        try:
            raw = await _read_body(request, limits) if request.method == "POST" else b""
            work = functools.partial(_route, store, limits, request.method, request.url.path, raw)
            return _answer(200, await anyio.to_thread.run_sync(work, limiter=limiter))
        except RequestError as error:
            return _answer(error.status, {"error": str(error)}, close=error.close)
        except Exception:  # a bug must not take the server down, nor show its internals to clients
            log.exception("REST %s %s failed", request.method, _clip(request.url.path))
            return _answer(500, {"error": "internal error; the server log has the details"})

    methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])


def _protocol_class(idle_timeout_s):
    """uvicorn's h11 protocol with a header deadline: a connection that has not sent a complete
    request header within ``idle_timeout_s`` of connecting (or of its last response) is closed.
    uvicorn alone never times out a connection that sends nothing, and every byte restarts its
    keep-alive timer, so a byte-at-a-time client would hold a connection forever."""
    class TimedH11Protocol(H11Protocol):
        _deadline = None
        _armed_cycle = None

        def connection_made(self, transport):
            super().connection_made(transport)
            self._arm()

        def _arm(self):
            self._disarm()
            self._armed_cycle = self.cycle
            self._deadline = self.loop.call_later(idle_timeout_s, self._expire)

        def _disarm(self):
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self):
            self._deadline = None
            if self.cycle is self._armed_cycle and not self.transport.is_closing():
                self.transport.close()  # no new request started in time

        def handle_events(self):
            super().handle_events()
            if self._deadline is not None and self.cycle is not self._armed_cycle:
                self._disarm()  # a request header arrived; its body has its own deadline

        def on_response_complete(self):
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc):
            self._disarm()
            super().connection_lost(exc)

    return TimedH11Protocol


class _RestFront:
    """uvicorn serving ``rest_app`` on a socket bound here (so port 0 and the backlog are ours)."""

    def __init__(self, app, host, port, limits):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.socket.bind((host, port))
            self.socket.listen(limits.backlog)
        except OSError as error:
            self.socket.close()
            raise ValueError(f"cannot listen for REST on {host}:{port} ({error.strerror})") from None
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, http=_protocol_class(limits.idle_timeout_s), lifespan="off",
                                log_config=None, access_log=False, timeout_keep_alive=limits.idle_timeout_s,
                                limit_concurrency=limits.max_connections, backlog=limits.backlog,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True,
                                       name="rest")

    def start(self, deadline_s=30.0):
        self.thread.start()
        end = time.monotonic() + deadline_s
        while not self.server.started and self.thread.is_alive() and time.monotonic() < end:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the REST server did not start")

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


# ---------------------------------------------------------------------- gRPC
def _servicer(store, limits):
    codes = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND}
    slots = threading.BoundedSemaphore(limits.workers)

    def abort(context, error):
        context.abort(codes.get(error.status, grpc.StatusCode.INVALID_ARGUMENT), str(error))

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                version, servable = store.get(request.model_spec.name, _grpc_version(request.model_spec))
                signature, _, specs = _signature(servable, request.model_spec.signature_name)
                _check_names(specs, request.inputs)
                arrays = {k: array_from_proto(k, request.inputs[k], specs[k], limits.max_batch) for k in specs}
                with slots:
                    outputs = run_signature(servable, signature, arrays, limits.max_batch)
            except RequestError as error:
                abort(context, error)
            except Exception:
                log.exception("gRPC Predict failed")
                context.abort(grpc.StatusCode.INTERNAL, "internal error; the server log has the details")
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version
            response.model_spec.signature_name = signature
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            rejected = rejected_rows(outputs)
            if rejected is not None:
                context.set_trailing_metadata(((REJECTED_ROWS_KEY, str(rejected)),))
            return response

        def GetModelMetadata(self, request, context):
            if list(request.metadata_field) != ["signature_def"]:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be ['signature_def']")
            try:
                version, servable = store.get(request.model_spec.name, _grpc_version(request.model_spec))
            except RequestError as error:
                abort(context, error)
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in servable.signature_defs.items():
                signature_map.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version
            response.metadata["signature_def"].Pack(signature_map)
            return response

    return PredictionService()


def _grpc_version(model_spec):
    if model_spec.version_label:
        raise RequestError(400, "version labels are not supported; give a version number or none")
    if model_spec.HasField("version"):
        if model_spec.version.value < 0:
            raise RequestError(400, f"version must be non-negative, got {model_spec.version.value}")
        return model_spec.version.value
    return None


# ---------------------------------------------------------------------- running
class Server:
    """Both fronts over one ``ModelStore``; ``stop()`` shuts them down."""

    def __init__(self, base, name="sampler", host="127.0.0.1", port=8501, grpc_port=8500, poll_seconds=2.0,
                 keep_versions=1, **limits):
        self.limits = Limits(**limits)
        self.store = ModelStore(base, name, keep_versions)
        self._rest = _RestFront(rest_app(self.store, self.limits), host, port, self.limits)
        self.rest_port = self._rest.port
        options = [("grpc.max_receive_message_length", self.limits.max_body_bytes),
                   ("grpc.max_send_message_length", 256 << 20),
                   ("grpc.max_connection_idle_ms", int(self.limits.idle_timeout_s * 1000)),
                   ("grpc.so_reuseport", 0)]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=self.limits.workers * 2),
                                 options=options, maximum_concurrent_rpcs=self.limits.max_concurrent_rpcs)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_servicer(self.store, self.limits),
                                                                            self._grpc)
        try:
            self.grpc_port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
        except RuntimeError:
            self._rest.socket.close()
            raise ValueError(f"cannot listen for gRPC on {host}:{grpc_port} (in use?)") from None
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True, name="poll")

    def start(self):
        self._grpc.start()
        self._rest.start()
        self._poller.start()
        return self

    def _poll(self, seconds):
        while not self._stopping.wait(seconds):
            try:
                self.store.refresh()
            except Exception:  # e.g. the base directory vanished for a moment: try again next poll
                log.exception("refreshing model versions failed")

    def stop(self):
        self._stopping.set()
        self._rest.stop()
        self._grpc.stop(grace=1).wait()


def serve(base, **kwargs):
    """Start serving ``base``; returns the running ``Server`` (``.rest_port``, ``.grpc_port``, ``.stop()``).

    Keyword arguments: ``name``, ``host``, ``port``, ``grpc_port``, ``poll_seconds``, ``keep_versions``
    and the fields of ``Limits``."""
    return Server(base, **kwargs).start()
