"""A model server that speaks TensorFlow Serving's REST and gRPC APIs over exported samplers.

No TF Serving binary can be installed here, so this front serves ``BASE/<version>/`` SavedModels
the way TF Serving does, for unchanged TF Serving clients:

    GET  /v1/models/NAME[/versions/V]            version status
    GET  /v1/models/NAME[/versions/V]/metadata   signature defs
    POST /v1/models/NAME[/versions/V]:predict    {"instances": [...]} or {"inputs": ...}
    gRPC tensorflow.serving.PredictionService    Predict, GetModelMetadata

The newest version serves by default; new versions under BASE are picked up by a polling thread
(and on a request for a version not yet loaded). Bad requests get a 4xx (gRPC INVALID_ARGUMENT /
NOT_FOUND) with a message and never take the server down.
"""
import json
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import tensorflow as tf

DEFAULT_SIGNATURE = "serving_default"
MAX_BODY_BYTES = 1 << 20
MAX_BATCH = 1024


class RequestError(Exception):
    """A client error: HTTP ``status`` and a TF-Serving-style message."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------------- versions on disk
class ModelStore:
    """The loaded versions of one model under ``base``; thread-safe."""

    def __init__(self, base, name):
        self.base, self.name = base, name
        self._versions = {}
        self._lock = threading.Lock()
        self.refresh()
        if not self._versions:
            raise FileNotFoundError(f"{base} holds no model version (an integer directory with saved_model.pb)")

    def refresh(self):
        """Load every version directory not loaded yet (temporary '.tmp-*' directories are skipped)."""
        found = [int(d) for d in os.listdir(self.base) if d.isdigit()
                 and os.path.exists(os.path.join(self.base, d, "saved_model.pb"))] if os.path.isdir(self.base) else []
        for version in sorted(set(found) - set(self._versions)):
            loaded = tf.saved_model.load(os.path.join(self.base, str(version)), tags=["serve"])
            with self._lock:
                self._versions[version] = loaded

    def versions(self):
        with self._lock:
            return sorted(self._versions)

    def get(self, name, version=None):
        """``(version, loaded model)``; RequestError 404 for an unknown model or version."""
        if name != self.name:
            raise RequestError(404, f"Servable not found for request: Latest({name})")
        if version is not None and version not in self._versions:
            self.refresh()
        with self._lock:
            if not self._versions:
                raise RequestError(404, f"Servable not found for request: Latest({name})")
            version = max(self._versions) if version is None else version
            if version not in self._versions:
                raise RequestError(404, f"Servable not found for request: Specific({name}, {version})")
            return version, self._versions[version]

    def signature_defs(self, version):
        """The version's SignatureDefs as protos, read from saved_model.pb."""
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(self.base, str(version), "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        graph = next(m for m in proto.meta_graphs if "serve" in m.meta_info_def.tags)
        return {k: v for k, v in graph.signature_def.items() if not k.startswith("__")}


# ---------------------------------------------------------------------- prediction
def run_signature(loaded, signature_name, arrays, max_batch):
    """Check ``arrays`` (name -> numpy) against the signature and run it: name -> numpy output."""
    signature_name = signature_name or DEFAULT_SIGNATURE
    if signature_name not in loaded.signatures:
        raise RequestError(404, f"Serving signature name: \"{signature_name}\" not found in signature def")
    function = loaded.signatures[signature_name]
    specs = function.structured_input_signature[1]
    missing, extra = sorted(set(specs) - set(arrays)), sorted(set(arrays) - set(specs))
    if missing or extra:
        raise RequestError(400, f"input names must be {sorted(specs)}; missing {missing}, unexpected {extra}")
    tensors, batch = {}, None
    for name, spec in specs.items():
        tensors[name] = _checked_tensor(name, arrays[name], spec)
        rows = tensors[name].shape[0]
        if batch is not None and rows != batch:
            raise RequestError(400, f"inputs have different batch sizes ({batch} and {rows})")
        batch = rows
    if not 1 <= batch <= max_batch:
        raise RequestError(400, f"batch size must be between 1 and {max_batch}, got {batch}")
    return {k: v.numpy() for k, v in function(**tensors).items()}


def _checked_tensor(name, value, spec):
    array = np.asarray(value)
    if spec.dtype.is_integer:
        if array.dtype.kind not in "iu":
            raise RequestError(400, f"input '{name}' expects {spec.dtype.name} values, got {_kind(array)}")
    elif spec.dtype.is_floating:
        if array.dtype.kind not in "iuf":
            raise RequestError(400, f"input '{name}' expects {spec.dtype.name} values, got {_kind(array)}")
    if array.ndim != len(spec.shape) or not spec.shape[1:].is_compatible_with(array.shape[1:]):
        raise RequestError(400, f"input '{name}' must have shape {_shape(spec.shape)}, got {list(array.shape)}")
    try:
        return tf.constant(array, dtype=spec.dtype)
    except (OverflowError, ValueError, tf.errors.InvalidArgumentError) as error:
        raise RequestError(400, f"input '{name}': {error}") from None


def _kind(array):
    return {"b": "booleans", "U": "strings", "O": "mixed or ragged values", "f": "floats"}.get(array.dtype.kind,
                                                                                               str(array.dtype))


def _shape(shape):
    return [-1 if d is None else d for d in shape.as_list()]


# ---------------------------------------------------------------------- REST
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<rest>/metadata|:predict)?$")


def rest_predict(store, name, version, body, max_batch):
    """The body of POST ...:predict, as TF Serving answers it (row or columnar form)."""
    if not isinstance(body, dict):
        raise RequestError(400, "the request body must be a JSON object")
    unknown = sorted(set(body) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(400, f"unknown field(s) {unknown}; expected 'instances' or 'inputs' and 'signature_name'")
    if ("instances" in body) == ("inputs" in body):
        raise RequestError(400, "exactly one of 'instances' (row format) or 'inputs' (columnar format) is required")
    _, loaded = store.get(name, version)
    signature = body.get("signature_name") or DEFAULT_SIGNATURE
    if signature not in loaded.signatures:
        raise RequestError(404, f"Serving signature name: \"{signature}\" not found in signature def")
    names = list(loaded.signatures[signature].structured_input_signature[1])
    if "instances" in body:
        outputs = run_signature(loaded, signature, _rows_to_columns(body["instances"], names), max_batch)
        rows = len(next(iter(outputs.values())))
        return {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(rows)]}
    inputs = body["inputs"]
    arrays = inputs if isinstance(inputs, dict) else ({names[0]: inputs} if len(names) == 1 else None)
    if arrays is None:
        raise RequestError(400, f"'inputs' must be an object with keys {names}")
    return {"outputs": {k: v.tolist() for k, v in run_signature(loaded, signature, arrays, max_batch).items()}}


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
    store.get(name, version)  # 404 for an unknown model or version
    versions = [version] if version is not None else store.versions()
    ok = {"error_code": "OK", "error_message": ""}
    return {"model_version_status": [{"version": str(v), "state": "AVAILABLE", "status": ok} for v in versions]}


def rest_metadata(store, name, version):
    from google.protobuf import json_format

    version, _ = store.get(name, version)
    defs = {k: json_format.MessageToDict(v) for k, v in store.signature_defs(version).items()}
    return {"model_spec": {"name": name, "signature_name": "", "version": str(version)},
            "metadata": {"signature_def": {"signature_def": defs}}}


def _handler(store, max_body_bytes, max_batch):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet: one line per request is noise in tests and logs
            pass

        def do_GET(self):
            self._answer("GET")

        def do_POST(self):
            self._answer("POST")

        def do_PUT(self):
            self._answer("PUT")

        def do_DELETE(self):
            self._answer("DELETE")

        def _answer(self, method):
            try:
                status, body = 200, self._route(method)
            except RequestError as error:
                status, body = error.status, {"error": str(error)}
            except Exception as error:  # a bug must not take the server down; report it as a 500
                status, body = 500, {"error": f"internal error: {type(error).__name__}: {error}"}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _route(self, method):
            match = _PATH.match(self.path.split("?")[0])
            if not match:
                raise RequestError(404, f"Malformed request: {method} {self.path}")
            name, rest = match["name"], match["rest"]
            version = _version(match["version"])
            if rest == ":predict":
                if method != "POST":
                    raise RequestError(405, f"{method} is not allowed for :predict; use POST")
                return rest_predict(store, name, version, self._json_body(), max_batch)
            if method != "GET":
                raise RequestError(405, f"{method} is not allowed here; use GET")
            return rest_metadata(store, name, version) if rest == "/metadata" else rest_status(store, name, version)

        def _json_body(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > max_body_bytes:
                self.close_connection = True  # the unread body must not be parsed as the next request
                raise RequestError(413, f"request body of {length} bytes exceeds the limit of {max_body_bytes}")
            try:
                return json.loads(self.rfile.read(length) or b"null")
            except (UnicodeDecodeError, json.JSONDecodeError) as error:
                raise RequestError(400, f"JSON Parse error: {error}") from None

    return Handler


def _version(text):
    if text is None:
        return None
    if not text.isdigit():
        raise RequestError(400, f"version must be a non-negative integer, got {text!r}")
    return int(text)


# ---------------------------------------------------------------------- gRPC
def _servicer(store, max_batch):
    import grpc
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    codes = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND}

    class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):
            try:
                version, loaded = store.get(request.model_spec.name, _grpc_version(request.model_spec))
                arrays = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
                outputs = run_signature(loaded, request.model_spec.signature_name, arrays, max_batch)
            except RequestError as error:
                context.abort(codes.get(error.status, grpc.StatusCode.INVALID_ARGUMENT), str(error))
            response = predict_pb2.PredictResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version
            response.model_spec.signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

        def GetModelMetadata(self, request, context):
            if list(request.metadata_field) != ["signature_def"]:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be ['signature_def']")
            try:
                version, _ = store.get(request.model_spec.name, _grpc_version(request.model_spec))
            except RequestError as error:
                context.abort(codes.get(error.status, grpc.StatusCode.INVALID_ARGUMENT), str(error))
            signature_map = get_model_metadata_pb2.SignatureDefMap()
            for key, value in store.signature_defs(version).items():
                signature_map.signature_def[key].CopyFrom(value)
            response = get_model_metadata_pb2.GetModelMetadataResponse()
            response.model_spec.name = request.model_spec.name
            response.model_spec.version.value = version
            response.metadata["signature_def"].Pack(signature_map)
            return response

    return PredictionService()


def _grpc_version(model_spec):
    return model_spec.version.value if model_spec.HasField("version") else None


# ---------------------------------------------------------------------- running
class Server:
    """Both fronts over one ``ModelStore``; ``stop()`` shuts them down."""

    def __init__(self, base, name="sampler", host="127.0.0.1", port=8501, grpc_port=8500, poll_seconds=2.0,
                 max_body_bytes=MAX_BODY_BYTES, max_batch=MAX_BATCH):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.store = ModelStore(base, name)
        self._http = ThreadingHTTPServer((host, port), _handler(self.store, max_body_bytes, max_batch))
        self._http.daemon_threads = True
        self.rest_port = self._http.server_address[1]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_servicer(self.store, max_batch), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"{host}:{grpc_port}")
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._http.serve_forever, daemon=True),
                         threading.Thread(target=self._poll, args=(poll_seconds,), daemon=True)]

    def start(self):
        self._grpc.start()
        for thread in self._threads:
            thread.start()
        return self

    def _poll(self, seconds):
        while not self._stopping.wait(seconds):
            try:
                self.store.refresh()
            except Exception:  # a half-copied version by hand: try again next poll
                pass

    def stop(self):
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._grpc.stop(grace=1).wait()


def serve(base, **kwargs):
    """Start serving ``base``; returns the running ``Server`` (``.rest_port``, ``.grpc_port``, ``.stop()``)."""
    return Server(base, **kwargs).start()
