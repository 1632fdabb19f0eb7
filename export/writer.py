"""Write a trained run as a versioned sampler: ``BASE/<version>/`` holding

    saved_model.pb, variables/   SavedModel, tag ``serve``: ``serving_default`` (int64 ``seed`` per
                                 row) and ``from_noise`` (the candidates' noise), as TF Serving loads it
    model.onnx                   the ``from_noise`` graph via tf2onnx: noise in, dynamic batch
    sampler.json                 model card: method, K, noise inputs, rejection, measured figures

The version is built in a hidden temporary directory under BASE and renamed into place, so a
server polling BASE never sees half a model and an interrupted export leaves no version behind.
"""
import json
import os
import shutil

import numpy as np
import tensorflow as tf

from tfgan_mix.export.sampler import DEFAULT_CANDIDATES, Sampler, calibrate, float32_model

FORMATS = ("savedmodel", "onnx")
ONNX_OPSET = 17
CARD_FILE = "sampler.json"
ONNX_FILE = "model.onnx"
CARD_SAMPLES = 5000


def next_version(base):
    """1 + the largest integer version directory under ``base`` (1 for a new base)."""
    versions = [int(name) for name in os.listdir(base) if name.isdigit()] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def export_run(run_dir, base, *, version=None, formats=FORMATS, rule=None, candidates=DEFAULT_CANDIDATES,
               threshold=None, heldout=None):
    """Export the run in ``run_dir`` to ``base/<version>``; returns that path.

    ``heldout`` (a ``tfgan_mix.data.Dataset`` not used for training) calibrates the discriminator
    rule and gives the card's measured figures; by default a fresh draw of the run's dataset.
    """
    from tfgan_mix.training.train import load_run, read_run_info

    formats = _check_formats(formats)
    if version is not None and int(version) < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    model = float32_model(load_run(run_dir))  # calibrate on what is exported
    if heldout is None:
        heldout = _heldout_data(read_run_info(run_dir))
    rejection = calibrate(model, rule, candidates, real=heldout.x[:CARD_SAMPLES], threshold=threshold)
    sampler = Sampler(model, rejection)

    version = int(version) if version is not None else next_version(base)
    final = os.path.join(base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists; versions are immutable, choose another --version")
    os.makedirs(base, exist_ok=True)
    tmp = os.path.join(base, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.makedirs(tmp)
        if "savedmodel" in formats:
            write_savedmodel(sampler, tmp)
        if "onnx" in formats:
            write_onnx(sampler, os.path.join(tmp, ONNX_FILE))
        card = model_card(sampler, heldout, formats)
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            json.dump(card, f, indent=2)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_savedmodel(sampler, path):
    signatures = {
        "serving_default": sampler.seed_function().get_concrete_function(),
        "from_noise": sampler.noise_function().get_concrete_function(),
    }
    tf.saved_model.save(sampler, path, signatures=signatures)


def write_onnx(sampler, path):
    import tf2onnx

    function = sampler.noise_function()
    tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=ONNX_OPSET,
                                  output_path=path)


def model_card(sampler, heldout, formats):
    """What a client needs to feed the ONNX inputs, and the rejection's measured effect."""
    from tfgan_mix import metrics as M

    model, rejection = sampler.model, sampler.rejection
    seeds = tf.range(CARD_SAMPLES, dtype=tf.int64)
    out = {k: v.numpy() for k, v in sampler.from_seed(seeds).items()}
    raw, _ = model.sample(CARD_SAMPLES, seed=10_000)  # the generator without rejection
    accepted = out["samples"][out["accepted"]]
    measured = {"num_requests": CARD_SAMPLES, "acceptance_rate": float(out["accepted"].mean()),
                "evaluated_on": heldout.name}
    if heldout.centres is not None:
        measure = lambda s: M.off_manifold_rate(_flat(s), _flat(heldout.x), heldout.labels, _flat(heldout.centres))  # noqa: E731
        measured.update(off_manifold_rate_raw=measure(raw), off_manifold_rate_accepted=_if_any(measure, accepted))
    if heldout.name == "parabolas":
        gap = lambda s: M.coverage_gap(heldout.x, s, M.PAPER_COVERAGE_EPSILON)  # noqa: E731
        measured.update(uncovered_share_raw=gap(raw), uncovered_share_accepted=_if_any(gap, accepted),
                        coverage_epsilon=M.PAPER_COVERAGE_EPSILON)
    return {
        "method": model.method_name,
        "num_generators": model.config.num_generators,
        "data_shape": list(model.config.data_shape),
        "formats": list(formats),
        "candidates": rejection.candidates,
        "noise_inputs": [
            {"name": name, "shape": [None, rejection.candidates, *shape], "dtype": "float32",
             "distribution": _describe(distribution)}
            for name, (shape, distribution) in sampler.noise_spec.items()
        ],
        "outputs": {"samples": ["batch", *model.config.data_shape], "accepted": ["batch"], "generator": ["batch"],
                    "score": ["batch"]},
        "rejection": {"rule": rejection.rule, "threshold": rejection.threshold, "threshold_from": rejection.how,
                      **dict(rejection.params)},
        "seed_signature": "serving_default: seed int64 (batch,); row r draws model noise with stateless seed [seed_r, 0]",
        "measured": measured,
    }


def _if_any(metric, samples):
    """The metric of the accepted samples; None (JSON null) when the rule accepted none."""
    return metric(samples) if len(samples) else None


def _describe(distribution):
    return {"uniform": "uniform(-1, 1)", "normal": "normal(0, 1)", "uniform01": "uniform(0, 1)"}[distribution]


def _heldout_data(info):
    from tfgan_mix.data import load_dataset

    # Generated datasets give an independent draw with another seed; fixed ones give themselves back.
    return load_dataset(info["data"], seed=int(info.get("seed", 0)) + 1)


def _check_formats(formats):
    formats = tuple(formats.split(",")) if isinstance(formats, str) else tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    return formats


def _flat(x):
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)
