"""Drawing outlier-free samples from an exported sampler: an ONNX file (onnxruntime, noise drawn
here as the model card describes) or a SavedModel version directory (its ``serving_default``).

Each request row yields one sample that is ``accepted`` or not; rows are requested in batches and
only accepted samples are kept, until exactly ``n`` are in hand. A sampler whose acceptance falls
below ``MIN_ACCEPTANCE`` is given up on (an error, not a short file), so it cannot loop forever.
"""
import glob
import json
import math
import os
import re

import numpy as np

from tfgan_mix.constants import NOISE_CARD_NAMES
from tfgan_mix.export.writer import CARD_FILE, file_digest, pid_alive

_DRAW = {  # the model card's noise distribution -> a numpy draw of it
    NOISE_CARD_NAMES["uniform"]: lambda rng, shape: rng.uniform(-1.0, 1.0, shape),
    NOISE_CARD_NAMES["normal"]: lambda rng, shape: rng.standard_normal(shape),
    NOISE_CARD_NAMES["uniform01"]: lambda rng, shape: rng.uniform(0.0, 1.0, shape),
}
MAX_CARD_BYTES = 16 << 20  # a model card is a few kB; refuse to parse anything absurd
MAX_ROW_ELEMENTS = 1 << 20  # floats per request row, noise or sample (a row of 16 candidates x 512 noise is 8192)
BATCH_BYTES = 256 << 20  # the most one batch of rows' noise and samples may take


class BadSampler(ValueError):
    """An exported version that cannot be trusted or used: missing, corrupt or inconsistent files."""


def read_card(version_dir):
    """The version's model card, checked (types, shapes, bounded sizes) before anything is sized
    from it; ``BadSampler`` names the first problem."""
    path = os.path.join(version_dir, CARD_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{version_dir} has no model card ({CARD_FILE}): is it an exported sampler version?")
    if os.path.getsize(path) > MAX_CARD_BYTES:
        raise BadSampler(f"{path}: model card of {os.path.getsize(path)} bytes is larger than {MAX_CARD_BYTES}")
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BadSampler(f"{path} is not a valid JSON model card: {str(error).splitlines()[0]}") from None
    check_card(card, path)
    return card


def _positive_int(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_card(card, where=CARD_FILE):
    """Raise ``BadSampler`` unless ``card`` has what a client sizes its requests from: positive
    integer shapes with at most ``MAX_ROW_ELEMENTS`` per row, known noise distributions, and the
    file checksums."""
    def bad(message):
        raise BadSampler(f"{where}: {message}")

    if not isinstance(card, dict):
        bad(f"a model card is a JSON object, got {type(card).__name__}")
    for key in ("candidates", "data_shape", "noise_inputs", "files"):
        if key not in card:
            bad(f"missing '{key}'" + (" (no file checksums: re-export the version)" if key == "files" else ""))
    if not _positive_int(card["candidates"]):
        bad(f"'candidates' must be a positive integer, got {card['candidates']!r}")
    shape = card["data_shape"]
    if not (isinstance(shape, list) and shape and all(_positive_int(d) for d in shape)):
        bad(f"'data_shape' must be a list of positive integers, got {shape!r}")
    if math.prod(shape) > MAX_ROW_ELEMENTS:
        bad(f"'data_shape' {shape} has {math.prod(shape)} elements per sample, more than {MAX_ROW_ELEMENTS}")
    inputs = card["noise_inputs"]
    if not (isinstance(inputs, list) and inputs):
        bad("'noise_inputs' must be a non-empty list")
    names = set()
    for entry in inputs:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or not entry["name"]:
            bad(f"each noise input needs a 'name' string, got {entry!r:.80}")
        name, dims = entry["name"], entry.get("shape")
        if name in names:
            bad(f"noise input '{name}' is listed twice")
        names.add(name)
        if not (isinstance(dims, list) and len(dims) >= 2 and dims[0] is None
                and all(_positive_int(d) for d in dims[1:])):
            bad(f"noise input '{name}': shape must be [null, candidates, positive ints...], got {dims!r:.80}")
        if dims[1] != card["candidates"]:
            bad(f"noise input '{name}': {dims[1]} candidates in its shape, the card says {card['candidates']}")
        if math.prod(dims[1:]) > MAX_ROW_ELEMENTS:
            bad(f"noise input '{name}': {math.prod(dims[1:])} elements per row, more than {MAX_ROW_ELEMENTS}")
        if entry.get("dtype") != "float32":
            bad(f"noise input '{name}': dtype must be float32, got {entry.get('dtype')!r}")
        if entry.get("distribution") not in _DRAW:
            bad(f"noise input '{name}': unknown distribution {entry.get('distribution')!r} "
                f"(known: {', '.join(_DRAW)})")
    files = card["files"]
    if not (isinstance(files, dict) and files):
        bad("'files' must be a non-empty object of file checksums")
    for name, entry in files.items():
        if (os.path.isabs(name) or ".." in name.split("/") or not isinstance(entry, dict)
                or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("bytes"), int)):
            bad(f"bad 'files' entry {name!r:.80}: a relative path inside the version with sha256 and bytes")
    return card


def row_elements(card):
    """Floats one request row takes: every noise input plus the sample."""
    return sum(math.prod(i["shape"][1:]) for i in card["noise_inputs"]) + math.prod(card["data_shape"])


def batch_rows(card, limit=1024, budget=BATCH_BYTES):
    """Rows per request: at most ``limit``, and no more than ``budget`` bytes of float32 per batch."""
    return max(1, min(limit, budget // (4 * row_elements(card))))


def verify_files(version_dir, card, only=None):
    """Check the SHA-256 and size of the version's files against its card (``only``: just these
    relative paths); ``BadSampler`` names the first missing or changed file."""
    for name, entry in sorted(card["files"].items()):
        if only is not None and name not in only:
            continue
        path = os.path.join(version_dir, *name.split("/"))
        if not os.path.isfile(path):
            raise BadSampler(f"{path} is missing (listed in the model card)")
        if os.path.getsize(path) != entry["bytes"] or file_digest(path) != entry["sha256"]:
            raise BadSampler(f"{path} does not match the model card's SHA-256 checksum: the file is corrupt or "
                             "was changed after export")


def load_version(version_dir, only=None):
    """The checked model card of ``version_dir`` after verifying its files' checksums."""
    card = read_card(version_dir)
    verify_files(version_dir, card, only)
    return card


def _check_onnx_io(session, card, path):
    """The graph's inputs must be exactly the card's noise inputs, float32 with matching static
    dimensions, and its outputs must include samples and accepted."""
    graph = {i.name: i for i in session.get_inputs()}
    listed = {i["name"]: i for i in card["noise_inputs"]}
    if set(graph) != set(listed):
        raise BadSampler(f"{path}: the card's noise inputs {sorted(listed)} do not match the ONNX graph's inputs "
                         f"{sorted(graph)}")
    for name, entry in listed.items():
        node = graph[name]
        if node.type != "tensor(float)":
            raise BadSampler(f"{path}: ONNX input '{name}' is {node.type}, the card says float32")
        if len(node.shape) != len(entry["shape"]) or any(
                isinstance(g, int) and g != c for g, c in zip(node.shape[1:], entry["shape"][1:])):
            raise BadSampler(f"{path}: ONNX input '{name}' has shape {node.shape}, the card says {entry['shape']}")
    missing = {"samples", "accepted"} - {o.name for o in session.get_outputs()}
    if missing:
        raise BadSampler(f"{path}: the ONNX graph has no output(s) {sorted(missing)}")


def onnx_requester(onnx_path, seed=0):
    """A function rows -> outputs dict running the ONNX sampler on noise drawn per the model card.
    The card is checked and every file's checksum verified first (``BadSampler`` otherwise)."""
    import onnxruntime as ort

    version_dir = os.path.dirname(os.path.abspath(onnx_path))
    card = read_card(version_dir)
    relative = os.path.basename(onnx_path)
    if relative not in card["files"]:
        raise BadSampler(f"{onnx_path} is not listed in the model card's checksums")
    verify_files(version_dir, card)
    try:
        session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own classes for every kind of bad file
        raise BadSampler(f"{onnx_path} is not a loadable ONNX model: {_first_line(error)}") from None
    _check_onnx_io(session, card, onnx_path)
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(seed)

    def request(rows):
        feeds = {i["name"]: _DRAW[i["distribution"]](rng, [rows, *i["shape"][1:]]).astype(np.float32)
                 for i in card["noise_inputs"]}
        return _checked_outputs(dict(zip(names, session.run(None, feeds))), rows, card, onnx_path)

    return request


def savedmodel_requester(version_dir, seed=0):
    """A function rows -> outputs dict calling the SavedModel's ``serving_default`` with fresh seeds.
    The card is checked and every file's checksum verified first (``BadSampler`` otherwise)."""
    import tensorflow as tf

    card = load_version(version_dir)
    if "saved_model.pb" not in card["files"]:
        raise BadSampler(f"{version_dir} holds no SavedModel (formats {card.get('formats')}); "
                         "sample its model.onnx instead")
    try:
        signature = tf.saved_model.load(version_dir, tags=["serve"]).signatures["serving_default"]
    except Exception as error:  # TensorFlow raises many kinds for a bad SavedModel
        raise BadSampler(f"{version_dir} is not a loadable SavedModel: {_first_line(error)}") from None
    next_seed = [int(seed) * 1_000_003]

    def request(rows):
        seeds = tf.range(next_seed[0], next_seed[0] + rows, dtype=tf.int64)
        next_seed[0] += rows
        return _checked_outputs({k: v.numpy() for k, v in signature(seed=seeds).items()}, rows, card, version_dir)

    return request


def _checked_outputs(out, rows, card, where):
    samples, accepted = out.get("samples"), out.get("accepted")
    if samples is None or accepted is None or samples.shape != (rows, *card["data_shape"]) \
            or accepted.shape != (rows,):
        raise BadSampler(f"{where}: the sampler returned shapes {getattr(samples, 'shape', None)} and "
                         f"{getattr(accepted, 'shape', None)} for {rows} rows; the card says samples "
                         f"{[rows, *card['data_shape']]}")
    return out


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__


def served_rows(request, n, batch=1024):
    """(accepted samples, acceptance) of ``n`` rows drawn from an exported sampler's ``request`` in
    calls of at most ``batch`` rows: one call's memory grows with rows x candidates (and the
    manifold rule's balls), so a large ``n`` in one call can take many GB."""
    kept, accepted = [], []
    for start in range(0, n, batch):
        out = request(min(batch, n - start))
        accepted.append(np.asarray(out["accepted"], bool))
        kept.append(np.asarray(out["samples"])[accepted[-1]])
    return np.concatenate(kept), float(np.concatenate(accepted).mean())


MIN_ACCEPTANCE = 0.01  # below this share of accepted rows, writing n samples is given up


class LowAcceptance(RuntimeError):
    """The sampler accepted too few rows to deliver the requested count."""


def remove_stale_outputs(path):
    """Remove ``<path>.tmp-<pid>.npy`` left by a ``sample`` that was killed (its process is gone)."""
    for tmp in glob.glob(glob.escape(path) + ".tmp-*.npy"):
        match = re.fullmatch(r"\.tmp-([0-9]+)\.npy", tmp[len(path):])
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            os.remove(tmp)


def write_accepted(request, n, path, batch_size=1024, min_acceptance=MIN_ACCEPTANCE):
    """Write exactly ``n`` accepted samples to the ``.npy`` file ``path``, streaming in batches of
    rows (memory bounded by one batch), through a temporary file renamed into place: ``path`` is
    either complete or untouched. Returns the acceptance rate over all rows requested; raises
    ``LowAcceptance`` after ``n / min_acceptance`` rows without ``n`` accepted."""
    if n < 1:
        raise ValueError(f"-n must be >= 1, got {n}")
    remove_stale_outputs(path)
    max_rows = int(np.ceil(n / min_acceptance)) + batch_size
    tmp = f"{path}.tmp-{os.getpid()}.npy"
    out, written, accepted, rows = None, 0, 0, 0
    try:
        while written < n:
            if rows >= max_rows:
                raise LowAcceptance(f"only {written} of {n} samples accepted in {rows} rows (acceptance "
                                    f"{written / rows:.4f} < {min_acceptance}); nothing written")
            batch = request(batch_size)
            passed = np.asarray(batch["accepted"], bool)
            kept = np.asarray(batch["samples"])[passed][: n - written]
            if out is None:
                out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, *kept.shape[1:]))
            out[written:written + len(kept)] = kept
            # The rate counts every accepted row requested, not only the ones the file had room for.
            written, accepted, rows = written + len(kept), accepted + int(passed.sum()), rows + len(passed)
        out.flush()
        del out
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return accepted / rows
