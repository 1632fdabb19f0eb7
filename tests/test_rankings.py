"""The papers' rankings in miniature, judged on served samples: each run is trained, exported with
its default rejection (calibrated as ``tfgan-mix export`` does) and sampled through the ONNX
graph that apps run. ``BENCHMARKS.md`` holds the full-size tables; these are the claims a
regression must not silently reverse."""
import os

import numpy as np
import pytest

from tfgan_mix import metrics as M
from tfgan_mix.data import load_dataset
from tfgan_mix.export import client, writer
from tfgan_mix.training.train import TrainSpec, train

ROWS = 20_000
REQUEST_ROWS = 1000
# Small nets (the suite's budget), paper 000's three generators and 3 x 7000/5000/3000 data.
SMALL_NETS = {"generator_units": [64, 64], "discriminator_units": [128, 128], "latent_dim": 32,
              "g_learning_rate": 1e-3, "d_learning_rate": 1e-3}
# NPGAN's rates decay linearly to 0 over the run, as in the demo's preset (npgan_gaussians3).
NPGAN_OPTIONS = {**SMALL_NETS, "router_units": [32], "learning_rate_decay": "linear"}
STEPS = 2500
# Ten steps per call into the compiled step: bitwise the same weights as one (NPGAN at these
# settings, PGMGAN at the grid's, 200-500 steps each); each test's trainings alone took 57 -> 39 s
# (MGAN and NPGAN) and 67 -> 51 s (PGMGAN and the GAN).
STEPS_PER_EXECUTION = 10
# Measured through this test's path (2026-12-07; 20,000 served rows, 5-NN on 5000 of them against
# 5000 real points): NPGAN seeds 0-3 served off-manifold 0 and mode TV 0.003 / 0.008 / 0.006 /
# 0.001 (raw off-manifold <= 0.00005), 5-NN two-sample accuracy 0.650 / 0.680 / 0.778 / 0.729;
# at a constant rate the same seeds met the off-manifold and TV bounds too (TV <= 0.038) but
# measured 5-NN 0.886 / 0.841 / 0.886 / 0.855: each generator's samples narrower than its mode. At
# a constant rate and 2000 steps 6 of 8 seeds met the off-manifold and TV bounds (seed 5 lost a
# mode, TV 0.197; seed 6 made 1.3% outliers). MGAN seeds 0-3: TV 0.130-0.139, its uniform
# generator choice against shares 7/15, 5/15, 3/15 (TV 2/15 = 0.133 when each generator serves
# one mode).
NPGAN_SEEDS = (0, 1, 2)
MAX_OFF_MANIFOLD = 0.001  # paper 000, Table 1: NPGAN 0.000 with 3 generators
MAX_NPGAN_TV = 0.06
MAX_NPGAN_KNN = 0.80  # between the decayed seeds' 0.650-0.778 and the constant rate's 0.841-0.886
KNN_ROWS = 5000
MIN_GAP_TV = 0.05


def _served(method, options, seed, tmp_path, data="gaussians3", steps=STEPS, batch_size=128, generators=3):
    """(accepted samples, share of rows accepted, raw samples) of ``method`` trained on ``data``:
    the first two served through its exported ONNX sampler, the last drawn from the trained model."""
    run_dir = str(tmp_path / f"{method}_{seed}")
    spec = TrainSpec(method=method, data=data, steps=steps, batch_size=batch_size, num_generators=generators,
                     seed=seed, options=options, steps_per_execution=STEPS_PER_EXECUTION)
    model, _ = train(spec, load_dataset(data), run_dir, verbose=0)
    raw = model.sample(ROWS, seed=5)[0]
    version = writer.export_run(run_dir, str(tmp_path / f"{method}_{seed}_export"), formats=("onnx",))
    request = client.onnx_requester(os.path.join(version, "model.onnx"), seed=11)
    # In calls of REQUEST_ROWS: 20,000 rows of the GAN's 64 candidates in one call took 13 GB.
    samples, acceptance = client.served_rows(request, ROWS, batch=REQUEST_ROWS)
    return samples, acceptance, raw


def _fidelity(samples, data):
    shares = M.mode_proportions(samples, data.centres)
    wanted = np.bincount(data.labels, minlength=len(data.centres)) / len(data.labels)
    real = data.x[np.random.default_rng(0).choice(len(data.x), KNN_ROWS, replace=False)]
    return {"off_manifold": M.off_manifold_rate(samples, data.x, data.labels, data.centres),
            "mode_tv": M.total_variation(shares, wanted), "shares": np.round(shares, 3).tolist(),
            "knn": M.knn_two_sample_accuracy(real, samples[:KNN_ROWS], k=5)["accuracy"]}


@pytest.mark.slow
def test_npgan_serves_gaussians3_in_the_datas_shares_where_mgan_cannot(tmp_path):
    """Paper 000, section 4.1 and Figure 2: with three generators only NPGAN samples its generators
    in proportion to the data (7000/5000/3000) and makes no off-manifold points; MGAN picks its
    generators with a fixed equal probability, so its served mode shares stay about 2/15 (TV) from
    the data's. NPGAN's served samples must also spread over their modes as the data does (5-NN
    two-sample accuracy, 0.5 for indistinguishable): generators that collapse onto narrow streaks
    inside their modes pass the first two bounds and miss this one. A short run can lose a mode;
    NPGAN passes when one of ``NPGAN_SEEDS`` meets the bounds (the measured failure rates above
    make three misses in a row about 1 in 64 for a sound method, and a broken router misses on
    every seed: MGAN's TV shows where it would sit)."""
    data = load_dataset("gaussians3")
    mgan_samples, mgan_accepted, _ = _served("mgan", SMALL_NETS, 0, tmp_path)
    mgan = _fidelity(mgan_samples, data)
    assert mgan_accepted >= 0.95 and mgan["mode_tv"] >= MAX_NPGAN_TV + MIN_GAP_TV, mgan
    tried = []
    for seed in NPGAN_SEEDS:
        samples, accepted, _ = _served("npgan", NPGAN_OPTIONS, seed, tmp_path)
        npgan = _fidelity(samples, data)
        tried.append((seed, round(accepted, 4), npgan))
        if accepted >= 0.95 and npgan["off_manifold"] <= MAX_OFF_MANIFOLD and npgan["mode_tv"] <= MAX_NPGAN_TV \
                and npgan["knn"] <= MAX_NPGAN_KNN:
            assert npgan["mode_tv"] + MIN_GAP_TV <= mgan["mode_tv"], (npgan, mgan)
            return
    pytest.fail(f"NPGAN missed the served bounds on every seed: {tried}; MGAN {mgan}")


# Paper 002's grid25 in miniature: the pgmgan_grid25 preset's settings with 128-unit layers, 1500
# steps of which the partitioner takes 400. Measured raw (20,000 samples): PGMGAN seeds 0-2 at
# 2000/500 steps and 200 units 25 modes, high-quality rate 0.43/0.39/0.39; at these settings seeds
# 0-1 25 modes, 0.41/0.34. The GAN on the same nets 0.030/0.032 (25 modes: it spreads over the grid).
# Served (this test's path, seeds 0/1): PGMGAN 25 modes, high-quality rate 0.951/0.909; the GAN
# 0.411/0.455, its calibrated rule unable to reach the outlier target (served outliers 0.48/0.42).
# At the preset's full budget (6000 steps, 200 units; BENCHMARKS.md, 3 seeds) the raw gap stays
# (0.76 against 0.065) but the GAN's served rate catches up (0.80 against PGMGAN's 0.81): the
# served gap is this short budget's, the raw gap is the paper's claim.
GRID_STEPS = 1500
GRID_NETS = {"latent_dim": 2, "generator_units": [128, 128], "discriminator_units": [128, 128],
             "g_learning_rate": 5e-4, "d_learning_rate": 5e-4}
PGMGAN_GRID = {**GRID_NETS, "partition_steps": 400, "partitioner_learning_rate": 0.01, "partitioner_blocks": 4,
               "partitioner_layers": 2, "partitioner_units": 32, "guide_weight": 6.0, "guide_average": False}
MIN_PGMGAN_HIGH_QUALITY = 0.75
MIN_GAP_HIGH_QUALITY = 0.25
MIN_RAW_GAP_HIGH_QUALITY = 0.2


def _grid_fidelity(samples, grid):
    stats = M.mode_statistics(samples, grid.centres, float(np.max(grid.stds)))
    return {"modes": int(stats["modes_recovered"]), "high_quality": round(float(stats["high_quality_rate"]), 4)}


@pytest.mark.slow
def test_pgmgan_serves_grid25_on_the_modes_where_a_gan_bridges_them(tmp_path):
    """Paper 002, section 5.1: "in contrast to standard GANs, we don't generate samples from the
    space between different modes due to our partitioning and mixture of generators", and a
    generator's samples are kept only inside its own partition (section 4.1, R_i = 0). Served
    through its exported default rule (``partition_manifold``: in its own partition and near the
    data), PGMGAN covers all 25 modes with nearly every sample within 3 standard deviations of one;
    a GAN on the same nets and steps, served with its own default (``manifold``), keeps about half
    of its served samples between the modes, since at this budget no threshold on its candidates
    meets the outlier target with the rows still answered. The generators' own (raw) samples
    show the paper's gap too."""
    grid = load_dataset("grid25")
    grid_run = {"data": "grid25", "steps": GRID_STEPS, "batch_size": 512}
    pgm_samples, pgm_accepted, pgm_raw = _served("pgmgan", PGMGAN_GRID, 0, tmp_path, generators=25, **grid_run)
    gan_samples, gan_accepted, gan_raw = _served("gan", GRID_NETS, 0, tmp_path, generators=1, **grid_run)
    pgm, gan = _grid_fidelity(pgm_samples, grid), _grid_fidelity(gan_samples, grid)
    assert pgm_accepted >= 0.95 and gan_accepted >= 0.95, (pgm_accepted, gan_accepted)
    assert pgm["modes"] == 25 and pgm["high_quality"] >= MIN_PGMGAN_HIGH_QUALITY, (pgm, gan)
    assert pgm["high_quality"] >= gan["high_quality"] + MIN_GAP_HIGH_QUALITY, (pgm, gan)
    pgm_raw, gan_raw = _grid_fidelity(pgm_raw, grid), _grid_fidelity(gan_raw, grid)
    assert pgm_raw["high_quality"] >= gan_raw["high_quality"] + MIN_RAW_GAP_HIGH_QUALITY, (pgm_raw, gan_raw)
