"""Drawing outlier-free samples from an exported sampler: an ONNX file (onnxruntime, noise drawn
here as the model card describes) or a SavedModel version directory (its ``serving_default``).

Each request row yields one sample that is ``accepted`` or not; rows are requested in rounds until
``n`` accepted samples are in hand or ``max_rounds`` rounds have run, so a sampler that accepts
little cannot loop forever.
"""
import json
import os

import numpy as np

from tfgan_mix.export.writer import CARD_FILE

MAX_ROUNDS = 20
_DRAW = {
    "uniform(-1, 1)": lambda rng, shape: rng.uniform(-1.0, 1.0, shape),
    "normal(0, 1)": lambda rng, shape: rng.standard_normal(shape),
    "uniform(0, 1)": lambda rng, shape: rng.uniform(0.0, 1.0, shape),
}


def read_card(version_dir):
    path = os.path.join(version_dir, CARD_FILE)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{version_dir} has no model card ({CARD_FILE}): is it an exported sampler version?")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def onnx_requester(onnx_path, seed=0):
    """A function rows -> outputs dict running the ONNX sampler on noise drawn per the model card."""
    import onnxruntime as ort

    card = read_card(os.path.dirname(os.path.abspath(onnx_path)))
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)

    def request(rows):
        feeds = {i["name"]: _DRAW[i["distribution"]](rng, [rows, *i["shape"][1:]]).astype(np.float32)
                 for i in card["noise_inputs"]}
        return dict(zip(names, session.run(None, feeds)))

    return request


def savedmodel_requester(version_dir, seed=0):
    """A function rows -> outputs dict calling the SavedModel's ``serving_default`` with fresh seeds."""
    import tensorflow as tf

    signature = tf.saved_model.load(version_dir, tags=["serve"]).signatures["serving_default"]
    next_seed = [int(seed) * 1_000_003]

    def request(rows):
        seeds = tf.range(next_seed[0], next_seed[0] + rows, dtype=tf.int64)
        next_seed[0] += rows
        return {k: v.numpy() for k, v in signature(seed=seeds).items()}

    return request


def accepted_samples(request, n, batch_size=1024, max_rounds=MAX_ROUNDS):
    """Up to ``n`` accepted samples and the acceptance rate over all rows requested."""
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    kept, rows, accepted = [], 0, 0
    for _ in range(max_rounds):
        out = request(batch_size)
        mask = np.asarray(out["accepted"], bool)
        kept.append(np.asarray(out["samples"])[mask])
        rows, accepted = rows + len(mask), accepted + int(mask.sum())
        if accepted >= n:
            break
    return np.concatenate(kept)[:n], accepted / rows
