"""Write a trained run as a versioned sampler: ``BASE/<version>/`` holding

    saved_model.pb, variables/   SavedModel, tag ``serve``: ``serving_default`` (int64 ``seed`` per
                                 row) and ``from_noise`` (the candidates' noise), as TF Serving loads it
    model.onnx                   the ``from_noise`` graph via tf2onnx: noise in, dynamic batch
    sampler.json                 model card: method, K, noise inputs, rejection, measured figures

The version is built in a hidden temporary directory ``BASE/.tmp-<version>-<pid>`` and renamed
into place, so a server polling BASE never sees half a model and an interrupted export leaves no
version behind; temporaries of processes that died (kill -9) are removed by the next export. The
version number is taken at rename time: a rename onto a version another export just published
fails, and the export moves on to the next free number, so concurrent exports end as distinct
versions. The card lists the SHA-256 of every other file of the version (``files``), which
loaders verify before use.
"""
import dataclasses
import errno
import json
import os
import re
import secrets
import shutil
import sys

import numpy as np
import tensorflow as tf

from tfgan_mix import runs
from tfgan_mix.constants import NOISE_CARD_NAMES
from tfgan_mix.export import calibration
from tfgan_mix.export.sampler import Sampler, calibrate, float32_model
from tfgan_mix.runs import file_digest, pid_alive

FORMATS = ("savedmodel", "onnx")
ONNX_OPSET = 17
CARD_FILE = "sampler.json"
ONNX_FILE = "model.onnx"
CARD_SAMPLES = 5000
CARD_BATCH = 1000  # rows per sampler call while measuring (bounds the k-NN rule's (rows*m, balls) matrix)


_TMP_NAME = re.compile(r"\.tmp-([0-9]+)-([0-9]+)(?:-[0-9a-f]+)?")  # .tmp-<version>-<pid>[-<token>]
PUBLISH_ATTEMPTS = 100  # versions tried at rename time before giving up (each lost to another export)


def is_version_name(name):
    """A version directory name: ASCII digits only (``str.isdigit`` also accepts '²', which ``int``
    refuses)."""
    return name.isascii() and name.isdigit()


def next_version(base):
    """1 + the largest integer version directory under ``base`` (1 for a new base)."""
    versions = [int(name) for name in os.listdir(base) if is_version_name(name)] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def remove_stale_temporaries(base):
    """Remove ``BASE/.tmp-<version>-<pid>[-<token>]`` directories whose process is gone (an export killed
    mid-way); a live process's temporary is never touched. Returns the names removed."""
    if not os.path.isdir(base):
        return []
    removed = []
    for name in os.listdir(base):
        match = _TMP_NAME.fullmatch(name)
        if match and int(match.group(2)) != os.getpid() and not pid_alive(int(match.group(2))):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
            removed.append(name)
    return removed


def version_files(directory):
    """``{relative path ('/'-separated): {"sha256", "bytes"}}`` of every file under ``directory``
    except the model card."""
    files = {}
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        for name in sorted(names):
            path = os.path.join(root, name)
            relative = os.path.relpath(path, directory).replace(os.sep, "/")
            if relative != CARD_FILE:
                files[relative] = {"sha256": file_digest(path), "bytes": os.path.getsize(path)}
    return files


def publish(tmp, base, version=None):
    """Rename the finished ``tmp`` directory to ``base/<version>``; returns the final path.

    Without ``version`` the number is chosen here, at rename time: renaming a non-empty directory
    onto an existing non-empty one fails, so when another export published that number first this
    one takes the next free number. An explicit ``version`` that is taken is a FileExistsError."""
    for _ in range(PUBLISH_ATTEMPTS):
        number = int(version) if version is not None else next_version(base)
        final = os.path.join(base, str(number))
        try:
            os.rename(tmp, final)
            return final
        except OSError as error:
            if error.errno not in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                raise
            if version is not None:
                raise FileExistsError(f"{final} already exists (published by another export); versions are "
                                      "immutable, choose another --version") from None
    raise FileExistsError(f"no free version under {base} after {PUBLISH_ATTEMPTS} attempts")


def export_run(run_dir, base, *, version=None, formats=FORMATS, rule=None, candidates=None,
               threshold=None, heldout=None, target=calibration.DEFAULT_OUTLIER_TARGET,
               floor=calibration.DEFAULT_ROW_ACCEPTANCE):
    """Export the run in ``run_dir`` to ``base/<version>``; returns that path.

    ``heldout``: three ``tfgan_mix.data.Dataset`` parts not used by each other, (fit, calibrate,
    measure): the rule's constants are fitted on the first, its threshold calibrated to the outlier
    ``target`` against the second, and the card's figures measured against the third. By default
    fresh draws of the run's generated dataset, or three disjoint parts of a fixed one.
    """
    formats = _check_formats(formats)
    if version is not None and int(version) < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    if version is not None and os.path.exists(os.path.join(base, str(int(version)))):
        raise FileExistsError(f"{os.path.join(base, str(int(version)))} already exists; versions are immutable, "
                              "choose another --version")
    model = float32_model(runs.load_run(run_dir))  # calibrate on what is exported
    fit_part, calibrate_part, measure_part = heldout or heldout_parts(runs.read_run_info(run_dir))
    rejection = calibrate(model, rule, candidates, real=fit_part.x, threshold=threshold,
                          judge=calibration.OutlierJudge(calibrate_part, calibration.CALIBRATION_JUDGES),
                          target=target, floor=floor)
    sampler = Sampler(model, rejection)
    card = model_card(sampler, measure_part, formats)
    if rejection.calibration is not None and not rejection.calibration.target_met:
        served = card["measured"]["accepted"]["outlier_rate"]
        print(f"warning: {model.method_name}: outlier target {target:g} not met: "
              f"{calibration.unmet_reason(rejection.calibration)}; served outlier rate measured {served:.4g} "
              "(see the model card)", file=sys.stderr)

    os.makedirs(base, exist_ok=True)
    remove_stale_temporaries(base)
    # The token keeps two exports of one process (threads) apart; the pid lets a later export see
    # that this one died.
    tmp = os.path.join(base, f".tmp-{int(version) if version is not None else next_version(base)}-{os.getpid()}"
                             f"-{secrets.token_hex(4)}")
    try:
        os.makedirs(tmp)
        if "savedmodel" in formats:
            write_savedmodel(sampler, tmp)
        if "onnx" in formats:
            write_onnx(sampler, os.path.join(tmp, ONNX_FILE))
        rejection.save_constants(tmp)
        with open(os.path.join(tmp, CARD_FILE), "w", encoding="utf-8") as f:
            json.dump({**card, "formats": list(formats), "files": version_files(tmp)}, f, indent=2)
        final = publish(tmp, base, version)
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


def serve_rows(sampler, rows, seed_offset=0, batch=CARD_BATCH):
    """``rows`` sampler rows from seeds ``seed_offset ..``, in batches: numpy outputs dict."""
    draw = tf.function(sampler.from_seed)  # eager map_fn over rows is slow and memory-hungry
    parts = [draw(tf.range(start, min(start + batch, rows), dtype=tf.int64) + seed_offset)
             for start in range(0, rows, batch)]
    return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}


def measure_sampler(sampler, heldout, rows=CARD_SAMPLES):
    """Raw generator against served rows on ``heldout``: outlier rate, k-NN precision/recall, mode
    shares and coverage where modes are known, acceptance and the generator shares."""
    from tfgan_mix import metrics as M

    model = sampler.model
    judge = calibration.OutlierJudge(heldout)
    out = serve_rows(sampler, rows)
    raw, raw_generator = model.sample(rows, seed=10_000)  # the generator without rejection
    accepted = out["samples"][out["accepted"]]
    k = model.config.num_generators
    measured = {
        "rows": rows, "accepted_rows": int(out["accepted"].sum()), "acceptance_rate": float(out["accepted"].mean()),
        "evaluated_on": f"{heldout.name} ({len(heldout.x)} held-back examples)",
        "outlier_definition": judge.definition,
        "raw": calibration.fidelity(raw, heldout, judge),
        "accepted": calibration.fidelity(accepted, heldout, judge),
        "generator_shares_raw": M.generator_usage(raw_generator, k).tolist(),
        "generator_shares_accepted": M.generator_usage(out["generator"][out["accepted"]], k).tolist()
        if len(accepted) else None,
    }
    if "uncovered_share" in heldout.extra_metrics:
        gap = lambda s: M.coverage_gap(heldout.x, s, M.PAPER_COVERAGE_EPSILON)  # noqa: E731
        measured.update(uncovered_share_raw=gap(raw), uncovered_share_accepted=_if_any(gap, accepted),
                        coverage_epsilon=M.PAPER_COVERAGE_EPSILON)
    return measured


def model_card(sampler, heldout, formats):
    """What a client needs to feed the ONNX inputs, and the rejection's measured effect."""
    model, rejection = sampler.model, sampler.rejection
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
        "rejection": rejection.card(),
        "routing": _routing(sampler),
        "seed_signature": "serving_default: seed int64 (batch,); row r draws model noise with stateless seed [seed_r, 0]",
        "measured": measure_sampler(sampler, heldout),
    }


def _routing(sampler):
    if sampler.by_region:
        return (f"by data region: passing candidates in the row's first candidate's region (one of "
                f"{len(sampler.regions)}) first, else any passing one; one generator's samples span the regions "
                "(blended generators, or a lone one), so the regions' shares are kept, not the generators'")
    choice = ("tied: a row's candidates share its generator" if sampler.tie_choice else
              "matched: a candidate counts only when it routes to the row's first candidate's generator")
    if sampler.regions is None:
        return choice
    return (f"{choice}; passing candidates in the first candidate's data region (one of {len(sampler.regions)}) "
            "first, else any of its generator's; calibration bounds the share shift of the (generator, region) "
            "cells")


def _if_any(metric, samples):
    """The metric of the accepted samples; None (JSON null) when the rule accepted none."""
    return metric(samples) if len(samples) else None


def _describe(distribution):
    return NOISE_CARD_NAMES[distribution]


def heldout_parts(info, parts=3):
    """Three held-back parts for fitting, calibrating and measuring: independent draws of a
    generated dataset (seeds after the run's), or disjoint thirds of a fixed one."""
    from tfgan_mix.data import load_dataset, toy

    seed = int(info.get("seed", 0))
    if info["data"] in toy.DATASETS:
        return tuple(load_dataset(info["data"], seed=seed + 1 + i) for i in range(parts))
    data = load_dataset(info["data"], seed=seed)
    order = np.random.default_rng(seed + 1).permutation(len(data.x))
    return tuple(_subset(data, index) for index in np.array_split(order, parts))


def _subset(data, index):
    index = np.sort(index)
    return dataclasses.replace(data, x=data.x[index], labels=None if data.labels is None else data.labels[index])


def _check_formats(formats):
    formats = tuple(formats.split(",")) if isinstance(formats, str) else tuple(formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {unknown}; choose from {', '.join(FORMATS)}")
    return formats
