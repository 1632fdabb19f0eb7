"""Drawing outlier-free samples from an exported sampler: an ONNX file (onnxruntime, noise drawn
here as the model card describes) or a SavedModel version directory (its ``serving_default``).

Each request row yields one sample that is ``accepted`` or not; rows are requested in batches and
only accepted samples are kept, until exactly ``n`` are in hand. A sampler whose acceptance falls
below ``MIN_ACCEPTANCE`` is given up on (an error, not a short file), so it cannot loop forever.
"""
import json
import os

import numpy as np

from tfgan_mix.export.writer import CARD_FILE

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


MIN_ACCEPTANCE = 0.01  # below this share of accepted rows, writing n samples is given up


class LowAcceptance(RuntimeError):
    """The sampler accepted too few rows to deliver the requested count."""


def write_accepted(request, n, path, batch_size=1024, min_acceptance=MIN_ACCEPTANCE):
    """Write exactly ``n`` accepted samples to the ``.npy`` file ``path``, streaming in batches of
    rows (memory bounded by one batch), through a temporary file renamed into place: ``path`` is
    either complete or untouched. Returns the acceptance rate over all rows requested; raises
    ``LowAcceptance`` after ``n / min_acceptance`` rows without ``n`` accepted."""
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    max_rows = int(np.ceil(n / min_acceptance)) + batch_size
    tmp = f"{path}.tmp-{os.getpid()}.npy"
    out, written, rows = None, 0, 0
    try:
        while written < n:
            if rows >= max_rows:
                raise LowAcceptance(f"only {written} of {n} samples accepted in {rows} rows (acceptance "
                                    f"{written / rows:.4f} < {min_acceptance}); nothing written")
            batch = request(batch_size)
            kept = np.asarray(batch["samples"])[np.asarray(batch["accepted"], bool)][: n - written]
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *kept.shape[1:]))
            out[written:written + len(kept)] = kept
            written, rows = written + len(kept), rows + batch_size
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return written / rows
