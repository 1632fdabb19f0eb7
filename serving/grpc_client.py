"""Ask a TF-Serving-compatible server for samples over gRPC with the official stub.

    python -m tfgan_mix.serving.grpc_client [--host 127.0.0.1] [--port 8500] [--name sampler] [-n 8] [--seed 0]

Sends one ``PredictRequest`` to ``serving_default`` with the int64 seeds ``seed .. seed+n-1`` and
prints each row's sample, ``accepted`` flag, generator and score. Works unchanged against TF
Serving itself (the same protos, ``tensorflow-serving-api``).
"""
import argparse
import sys

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

TIMEOUT_S = 30


def predict_seeds(host, port, name, seeds, timeout=TIMEOUT_S):
    """The server's outputs for ``seeds`` as a dict of numpy arrays."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["seed"].CopyFrom(tf.make_tensor_proto(np.asarray(seeds, np.int64)))
    with grpc.insecure_channel(f"{host}:{port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=timeout)
    return {key: tf.make_ndarray(value) for key, value in response.outputs.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8500)
    parser.add_argument("--name", default="sampler")
    parser.add_argument("-n", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error(f"-n must be >= 1, got {args.n}")
    try:
        out = predict_seeds(args.host, args.port, args.name, range(args.seed, args.seed + args.n))
    except grpc.RpcError as error:
        print(f"grpc_client: error: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    for row in range(args.n):
        sample = np.array2string(out["samples"][row].ravel()[:8], precision=3)
        print(f"seed {args.seed + row}: accepted={bool(out['accepted'][row])} "
              f"generator={int(out['generator'][row])} score={float(out['score'][row]):.3f} sample={sample}")
    print(f"accepted {int(out['accepted'].sum())}/{args.n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
