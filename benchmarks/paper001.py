"""Paper 001: MIX+GAN on axes1024 (3 Gaussians in 1024-d) with 1G1D, 2G2D and 3G3D: Frechet
distance, the Judge's accuracy and an independent critic's Wasserstein estimate. The notes' words
are in ``notes/paper001.md``."""
import numpy as np

from tfgan_mix import judges
from tfgan_mix import metrics as M
from tfgan_mix.benchmarks.harness import Run, Table, chain, note, ranking

# The metrics the paper plots (Fig. 3), as table columns: (name, header, lower is better).
PAPER_METRICS = [("frechet", "Frechet distance", True), ("judge", "Judge accuracy", True),
                 ("critic_w", "independent critic W", True)]


def paper001(bench):
    """Paper 001: MIX+GAN on axes1024 with 1G1D, 2G2D, 3G3D: Frechet distance, Judge, independent critic."""
    data = bench.dataset("axes1024")
    p = bench.profile
    rng = np.random.default_rng(0)
    real = data.x[rng.permutation(len(data.x))[:p.judge_points]]
    real_spread = _mean_spread(real, data.centres)

    def measure(s, m):
        s = s[:p.judge_points]
        critic = judges.independent_critic_distance(real, s, units=p.axes_units, steps=p.judge_steps)
        return {"frechet": M.frechet_distance(data.x, s),
                "judge": judges.judge_accuracy(real, s, units=p.axes_units, steps=p.judge_steps),
                "critic_w": critic["distance"],
                "centre_judge": judges.nearest_centre_judge_accuracy(real, s, data.centres),
                "spread": _mean_spread(s, data.centres) / real_spread}

    units = (("generator_units", p.axes_units), ("discriminator_units", p.axes_units))
    rows = [bench.reference("real data (reference: a second draw)", "axes1024", measure)]
    for n in (1, 2, 3):
        run = Run(f"MIX+GAN {n}G{n}D", "mixgan_plus_axes1024", generators=n,
                  options=(("num_discriminators", n), *units), steps=p.axes_steps)
        bench.log(f"paper 001: {run.label}")
        rows.append(bench.evaluate(run, p.axes_seeds, measure))
    # Not the paper's: why its Judge saturates here (note "centre-judge"). Spread's ideal is 1.
    columns = PAPER_METRICS + [("centre_judge", "one-feature Judge", True),
                               ("spread", "spread about the centres, samples / real", None)]
    return Table("paper001", "Paper 001: MIX+GAN on axes1024 (3 Gaussians in 1024-d)", columns, rows, {},
                 rankings=rankings(), notes=[
                     note("paper001", "budget", steps=p.axes_steps, units=list(p.axes_units), judge_steps=p.judge_steps,
                          judge_points=p.judge_points),
                     note("paper001", "centre-judge"),
                 ])


def rankings():
    """Fig. 3: each of the paper's metrics falls as the mixture grows (best first: 3G3D, 2G2D, 1G1D)."""
    mixtures = chain([f"MIX+GAN {n}G{n}D" for n in (3, 2, 1)])
    return [ranking(f"{name} falls from 1G1D to 2G2D to 3G3D", metric, mixtures) for metric, name, _ in PAPER_METRICS]


def _mean_spread(x, centres):
    """Mean over ``x`` of the squared distance to the nearest mode centre."""
    return float(np.mean(judges.squared_distance_to_nearest_centre(x, centres)))
