"""Paper 003, section 4.1: earth mover's distance on ring8 for a GAN and for masked and weighted
prior resampling. The notes' words are in ``notes/paper003.md``."""
import numpy as np

from tfgan_mix import metrics as M
from tfgan_mix.benchmarks.harness import Run, Table, note
from tfgan_mix.data.toy import RING8_RADIUS

EMD_POINTS = 2000  # real and generated points in the exact assignment


def paper003(bench):
    """Paper 003, section 4.1: EMD on ring8 for a GAN, masked and weighted prior resampling."""
    measure = _emd_measure(bench.dataset("ring8"))
    runs = [Run("GAN (same WGAN-GP, no prior selection)", "masked_prior_ring8", method="gan"),
            Run("masked prior", "masked_prior_ring8"), Run("weighted prior", "weighted_prior_ring8")]
    rows = [bench.reference("real data (reference: a second draw)", "ring8", measure)]
    for run in runs:
        bench.log(f"paper 003: {run.label}")
        rows.append(bench.evaluate(run, bench.profile.seeds, measure))
    paper = {runs[0].label: {"emd": 0.3195}, runs[1].label: {"emd": 0.1328}, runs[2].label: {"emd": 0.0891}}
    measured = [(np.mean(r["raw"]["emd"]), r["label"]) for r in rows[1:] if r["raw"].get("emd")]
    order = " > ".join(label for _, label in sorted(measured, reverse=True))
    return Table("paper003", "Paper 003, section 4.1: earth mover's distance on ring8", [("emd", "EMD", True)],
                 rows, paper, [
                     note("paper003", "emd", points=EMD_POINTS),
                     note("paper003", "order", order=order or note("paper003", "order-none")),
                     note("paper003", "against-the-paper", points=EMD_POINTS, radius=RING8_RADIUS, seeds=len(bench.profile.seeds)),
                 ])


def _emd_measure(dataset):
    return lambda s, m: {"emd": M.earth_movers_distance(dataset.x, s, max_points=EMD_POINTS)}
