"""Evaluate a trained run on a dataset: the metrics that apply to it, and pictures.

* Every dataset: Frechet distance, EMD, 5-NN two-sample accuracy, k-NN precision/recall and
  density/coverage, outlier manifold distance, per-generator usage.
* Gaussian-mixture toys (known centres): off-manifold rate, mode proportions next to the data's,
  and the grid/ring protocol (high-quality rate, modes recovered, reverse KL).
* Data whose ``extra_metrics`` name ``uncovered_share`` (``parabolas``): the uncovered share of
  real points (epsilon-ball coverage, paper 000 Table 1).
Pictures: samples coloured by generator, the noise-space routing map when z is 2-D (paper 000
Figure 4), and for images sample grids per generator and discriminator saliency maps.
"""
import json
import os

import numpy as np
import tensorflow as tf

from tfgan_mix import metrics as M
from tfgan_mix import runs

# Metrics that pair every sample with every real point are computed on at most this many of each.
MAX_PAIRWISE = 5000


def compute_metrics(samples, generator, dataset, num_generators, seed=0):
    """All metrics that apply to ``dataset`` for these samples; a flat dict of plain numbers."""
    rng = np.random.default_rng(seed)
    real = _flat(dataset.x)
    fake = _flat(samples)
    real_sub, fake_sub = _subsample(real, rng), _subsample(fake, rng)
    out = {
        "num_samples": int(len(samples)),
        "frechet_distance": M.frechet_distance(real, fake),
        "emd": M.earth_movers_distance(real, fake, seed=seed),
        "outlier_manifold_distance": M.outlier_manifold_distance(fake_sub, real),
        "generator_usage": M.generator_usage(generator, num_generators).tolist(),
        **_prefixed("knn2st_", M.knn_two_sample_accuracy(real_sub, fake_sub, k=5)),
        **M.precision_recall(real_sub, fake_sub, k=5),
        **M.density_coverage(real_sub, fake_sub, k=5),
    }
    if dataset.centres is not None:
        out.update(_mixture_metrics(fake, dataset))
    if "uncovered_share" in dataset.extra_metrics:
        out["uncovered_share"] = M.coverage_gap(real, fake, M.PAPER_COVERAGE_EPSILON)
        out["uncovered_share_epsilon"] = M.PAPER_COVERAGE_EPSILON
    return {k: _plain(v) for k, v in out.items()}


def _mixture_metrics(fake, dataset):
    centres = _flat(dataset.centres)
    real = _flat(dataset.x)
    weights = np.bincount(dataset.labels, minlength=len(centres)) / len(dataset.labels)
    stats = M.mode_statistics(fake, centres, float(np.max(dataset.stds)), weights=weights)
    return {
        "off_manifold_rate": M.off_manifold_rate(fake, real, dataset.labels, centres),
        "mode_proportions": M.mode_proportions(fake, centres).tolist(),
        "data_mode_proportions": weights.tolist(),
        **stats,
    }


def evaluate_run(run_dir, dataset, num_samples=5000, json_path=None, seed=0, picture_dir=None):
    """Sample a trained run, compute metrics, write them as JSON and draw pictures.

    Returns ``(metrics, written_paths)``.
    """
    model = runs.load_run(run_dir)
    if tuple(model.config.data_shape) != tuple(dataset.example_shape):
        raise ValueError(
            f"the model makes samples of shape {tuple(model.config.data_shape)} but {dataset.name} "
            f"has examples of shape {tuple(dataset.example_shape)}"
        )
    samples, generator = model.sample(num_samples, seed=seed)
    k = model.config.num_generators
    metrics = {"method": model.method_name, "data": dataset.name, **compute_metrics(samples, generator, dataset, k, seed)}
    picture_dir = picture_dir or os.path.join(run_dir, "eval")
    paths = draw_pictures(model, samples, generator, dataset, picture_dir)
    json_path = json_path or os.path.join(picture_dir, "metrics.json")
    os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=2)
    return metrics, {"metrics": json_path, **paths}


def draw_pictures(model, samples, generator, dataset, out_dir):
    from tfgan_mix import vis

    k = model.config.num_generators
    paths = {}
    if samples.ndim == 4:
        paths["samples"] = vis.image_grid_per_generator(
            samples, generator, os.path.join(out_dir, "samples_by_generator.png"), num_generators=k
        )
        paths["saliency"] = vis.saliency_maps(model.discriminator, dataset.x[:8], os.path.join(out_dir, "saliency.png"))
    else:
        paths["samples"] = vis.scatter_by_generator(
            samples, generator, os.path.join(out_dir, "samples_by_generator.png"),
            real=dataset.x, num_generators=k, title=f"{model.method_name}: samples by generator",
        )
    z_spec = model.noise_spec().get("z")
    if z_spec is not None and z_spec[0] == (2,) and k > 1:
        low, high = (-1.0, 1.0) if model.config.noise == "uniform" else (-3.0, 3.0)
        grid = vis.routing_grid(low, high)
        routed = tf.argmax(model.route({"z": tf.constant(grid, tf.float32)}), axis=-1).numpy()
        paths["routing_map"] = vis.noise_routing_map(
            grid, routed, os.path.join(out_dir, "noise_routing_map.png"), num_generators=k,
            title=f"{model.method_name}: generator chosen for each z",
        )
    return paths


def _flat(x):
    x = np.asarray(x, dtype=np.float64)
    return x.reshape(len(x), -1)


def _subsample(x, rng):
    if len(x) <= MAX_PAIRWISE:
        return x
    return x[rng.choice(len(x), MAX_PAIRWISE, replace=False)]


def _prefixed(prefix, d):
    return {prefix + k: v for k, v in d.items()}


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value
