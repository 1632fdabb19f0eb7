"""Paper 003, section 4.1: earth mover's distance on ring8 for a GAN and for masked and weighted
prior resampling. The notes' words are in ``notes/paper003.md``."""
import numpy as np
import tensorflow as tf

from tfgan_mix import metrics as M
from tfgan_mix.benchmarks.harness import Run, Table, note
from tfgan_mix.data.toy import RING8_RADIUS
from tfgan_mix.methods.masked_prior import MaskedPriorConfig

EMD_POINTS = 2000  # real and generated points in the exact assignment
PRE_SAMPLE = 1000  # section 4.1's pre-sample size
MASKED_AT_GENERATION = "GAN, prior masked only at generation"


def paper003(bench):
    """Paper 003, section 4.1: EMD on ring8 for a GAN, masked and weighted prior resampling."""
    measure = _emd_measure(bench.dataset("ring8"))
    runs = [Run("GAN (same WGAN-GP, no prior selection)", "masked_prior_ring8", method="gan"),
            Run("masked prior", "masked_prior_ring8"), Run("weighted prior", "weighted_prior_ring8")]
    rows = [bench.reference("real data (reference: a second draw)", "ring8", measure)]
    for run in runs:
        bench.log(f"paper 003: {run.label}")
        rows.append(bench.evaluate(run, bench.profile.seeds, measure))
        if run.method == "gan":
            rows.append(_masked_at_generation(bench, run, measure))
    paper = {runs[0].label: {"emd": 0.3195}, MASKED_AT_GENERATION: {"emd": 0.3378}, runs[1].label: {"emd": 0.1328},
             runs[2].label: {"emd": 0.0891}}
    measured = [(np.mean(r["raw"]["emd"]), r["label"]) for r in rows[1:] if r["raw"].get("emd")]
    order = " > ".join(label for _, label in sorted(measured, reverse=True))
    return Table("paper003", "Paper 003, section 4.1: earth mover's distance on ring8", [("emd", "EMD", True)],
                 rows, paper, [
                     note("paper003", "emd", points=EMD_POINTS),
                     note("paper003", "order", order=order or note("paper003", "order-none")),
                     note("paper003", "masked-at-generation", label=MASKED_AT_GENERATION, pre_sample=PRE_SAMPLE),
                     note("paper003", "against-the-paper", points=EMD_POINTS, radius=RING8_RADIUS, seeds=len(bench.profile.seeds)),
                 ])


def _masked_at_generation(bench, run, measure):
    """The paper's 0.3378 row: the GAN trained without prior selection, its prior masked only when
    generating. A pre-sample of 1000 z is scored by D(G(z)), and z is kept when its score reaches
    the pre-sample's (1 - r) quantile (Definition 3 with r = 0.5, the rate masked prior trains
    with). The row's figures are the masked generation's; its acceptance is the share of z kept."""
    row = {"label": MASKED_AT_GENERATION, "raw": {}, "rejected": {}, "acceptance": [], "errors": [], "losses": []}
    for seed in bench.profile.seeds:
        model, losses = bench.train(run, seed)
        samples, kept = masked_generation(model, bench.profile.samples, MaskedPriorConfig.mask_rate, seed)
        for name, value in measure(samples, model).items():
            row["raw"].setdefault(name, []).append(float(value))
        row["acceptance"].append(kept)
        row["losses"].append(losses)
    return row


def masked_generation(model, n, rate, seed, batch=4096):
    """(n samples, share of z kept): z kept when D(G(z)) reaches the (1 - ``rate``) quantile of a
    ``PRE_SAMPLE`` pre-sample's scores."""
    def draw(count, start):
        samples, _ = model.generate(model.sample_noise(count, tf.constant([20_000 + seed, start], tf.int64)))
        return samples.numpy(), model.discriminate(samples).numpy().reshape(-1)

    _, pre_scores = draw(PRE_SAMPLE, 0)
    threshold = np.quantile(pre_scores, 1.0 - rate)
    kept, drawn, start = [], 0, PRE_SAMPLE
    while sum(len(k) for k in kept) < n:
        samples, scores = draw(batch, start)
        kept.append(samples[scores >= threshold])
        drawn, start = drawn + batch, start + batch
    kept = np.concatenate(kept)
    return kept[:n], len(kept) / drawn


def _emd_measure(dataset):
    return lambda s, m: {"emd": M.earth_movers_distance(dataset.x, s, max_points=EMD_POINTS)}
