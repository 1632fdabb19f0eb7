"""Paper 000 (Table 1), its gaussians3 half: off-manifold rate with 2 and 3 generators, with the
modes covered and mode-share TV beside it (a low off-manifold rate can come from drawing fewer
modes) and a perfect-generator reference row. The parabolas half is ``paper000_parabolas``; both
train their runs with ``table1_run``. The notes' words are in ``notes/paper000.md``."""
import numpy as np

from tfgan_mix import metrics as M
from tfgan_mix.benchmarks.harness import Run, Table, best_of, note, number, ranking
from tfgan_mix.benchmarks.served import PAPER000_SCHEDULE, data_shares, served_measure

METHODS = [("npgan", "NPGAN"), ("mgan", "MGAN"), ("dmwgan_pl", "DMWGAN-PL"), ("deligan", "DeLiGAN")]
# Paper 000's Table 1: gaussians3 off-manifold rate (2, 3 generators), parabolas uncovered share (2, 3).
PAPER = {"NPGAN": (0.000, 0.000, 0.003, 0.007), "MGAN": (0.031, 0.162, 0.088, 0.083),
         "DMWGAN-PL": (0.037, 0.026, 0.076, 0.082), "DeLiGAN": (0.134, 0.055, 0.196, 0.320)}
PAPER_COLUMN = {"gaussians3": 0, "parabolas": 2}  # where each dataset's 2-generator figure sits in PAPER


def table1_run(method, name, data, k):
    """One run of Table 1: the method's gaussians3 preset (also for parabolas) with ``k`` generators,
    on the schedule every method of the table shares."""
    return Run(f"{name} {k}Gen {data}", f"{method}_gaussians3", data=data, generators=k, options=PAPER000_SCHEDULE)


def table1_rows(bench, data, metric, measure):
    """Every method's run with 2 and 3 generators on ``data``, evaluated with ``measure``; and the
    paper's ``metric`` figure per run label."""
    rows, paper_rows = [], {}
    for method, name in METHODS:
        for k in (2, 3):
            run = table1_run(method, name, data, k)
            bench.log(f"paper 000: {run.label}")
            rows.append(bench.evaluate(run, bench.profile.seeds, measure))
            paper_rows[run.label] = {metric: PAPER[name][PAPER_COLUMN[data] + k - 2]}
    return rows, paper_rows


def presets_note(bench):
    """The note on the runs' presets, seeds and shared schedule, under both halves of Table 1."""
    return note("paper000", "presets", seeds=list(bench.profile.seeds),
                schedule=dict(PAPER000_SCHEDULE)["learning_rate_decay"])


def paper000(bench):
    """Paper 000 Table 1 on gaussians3: off-manifold rate with 2 and 3 generators, modes and shares."""
    gauss = bench.dataset("gaussians3")
    measure = served_measure(gauss)  # off-manifold as Table 1, with modes and shares beside it
    rows, paper_rows = table1_rows(bench, "gaussians3", "off_manifold", measure)
    rows.insert(0, bench.reference("real data, gaussians3 (reference: a second draw)", "gaussians3", measure))
    return Table("paper000", "Paper 000, Table 1 (gaussians3): off-manifold rate",
                 [("off_manifold", "off-manifold rate", True), ("modes", "modes covered (of 3)", False),
                  ("mode_tv", "mode-share TV", True)],
                 rows, paper_rows, rankings=rankings(), notes=[text for text in (
                     note("paper000", "metrics-gaussians3"),
                     _dropped_modes_note(rows, len(gauss.centres), bench.profile.seeds),
                     _equal_shares_note(rows, data_shares(gauss)),
                     _schedule_note(rows, bench.profile.samples),
                     presets_note(bench),
                 ) if text])


def rankings():
    """Table 1's ordering on gaussians3: NPGAN has the lowest off-manifold rate of the four methods
    at 2 and at 3 generators."""
    def label(name, k):
        return f"{name} {k}Gen gaussians3"
    others = [name for _, name in METHODS if name != "NPGAN"]
    return [ranking(f"NPGAN has the lowest off-manifold rate of the four methods with {k} generators (gaussians3)",
                    "off_manifold", best_of(label("NPGAN", k), [label(o, k) for o in others])) for k in (2, 3)]


def _dropped_modes_note(rows, num_modes, seeds):
    """Name the gaussians3 seeds that drew fewer than every mode: their off-manifold rate counts
    nothing at the missing mode or between it and the others."""
    dropped = [note("paper000", "dropped-mode-seed", label=row["label"], seed=seeds[i], modes=number(modes),
                    num_modes=num_modes, tv=number(row["raw"]["mode_tv"][i]))
               for row in rows if not row.get("reference")
               for i, modes in enumerate(row["raw"].get("modes", [])) if modes < num_modes]
    if not dropped:
        return note("paper000", "every-mode-drawn", num_modes=num_modes)
    return note("paper000", "dropped-modes", seeds="; ".join(dropped))


def _seed_means(rows, k, metric):
    """{label: mean over seeds of the raw ``metric``} of the gaussians3 runs with ``k`` generators."""
    return {row["label"]: float(np.mean(row["raw"][metric])) for row in rows
            if f" {k}Gen gaussians3" in row["label"] and row["raw"].get(metric)}


def _schedule_note(rows, samples, k=3):
    """When a baseline with ``k`` generators is below NPGAN's off-manifold rate: how far every row is
    below the paper's baselines, in samples of ``samples``, and what the constant rate gave. None
    when NPGAN is lowest."""
    means = {label.split(" ")[0]: rate for label, rate in _seed_means(rows, k, "off_manifold").items()}
    if "NPGAN" not in means or means["NPGAN"] <= min(means.values()):
        return None
    paper_best = min(PAPER[name][PAPER_COLUMN["gaussians3"] + k - 2] for name in PAPER if name != "NPGAN")
    counts = ", ".join(f"{name} {round(rate * samples)}" for name, rate in means.items())
    return note("paper000", "schedule-reversal", k=k, worst=number(max(means.values())), paper_best=number(paper_best),
                samples=samples, counts=counts)


def _equal_shares_note(rows, shares, within=0.01):
    """Name the gaussians3 runs whose generators each keep one mode at a fixed equal share: their
    mode-share TV sits at that of equal shares against the data's (section 4.1 names the fixed,
    equal generator probability as MGAN's and DeLiGAN's failure; here it costs shares, not a trail
    of off-manifold points). None when no run sits there."""
    equal_tv = M.total_variation(np.full(len(shares), 1 / len(shares)), np.asarray(shares))
    at_equal = [f"{label} {number(tv)}" for label, tv in _seed_means(rows, len(shares), "mode_tv").items()
                if abs(tv - equal_tv) <= within]
    if not at_equal:
        return None
    return note("paper000", "equal-shares", runs="; ".join(at_equal), equal_tv=number(equal_tv),
                shares="/".join(f"{s:.2f}" for s in shares), num_modes=len(shares))
