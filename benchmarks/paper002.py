"""Paper 002: modes, high-quality rate and reverse KL on grid25, modes and reverse KL on
stacked_digits (the offline stand-in for Stacked MNIST). The notes' words are in
``notes/paper002.md``."""
import dataclasses

import numpy as np

from tfgan_mix import metrics as M
from tfgan_mix.benchmarks.harness import Run, Table, note, number, ranking
from tfgan_mix.data import load_dataset

DIGITS_PARTITIONS = 50  # k of the stacked_digits runs (the paper's Stacked MNIST runs: 200)
DIGITS_LABELS = ("PGMGAN stacked_digits", "Partition GAN stacked_digits", "GAN stacked_digits (same nets)")


def paper002(bench):
    """Paper 002: grid25 modes / high-quality rate / reverse KL; stacked_digits modes and reverse KL."""
    grid = bench.dataset("grid25")
    std = float(np.max(grid.stds))

    def grid_measure(s, m):
        stats = M.mode_statistics(s, grid.centres, std)
        return {"modes": stats["modes_recovered"], "high_quality": stats["high_quality_rate"],
                "reverse_kl": stats["reverse_kl"]}

    rows = []
    for run in (Run("PGMGAN grid25", "pgmgan_grid25"), Run("Partition GAN grid25", "partition_gan_grid25"),
                Run("GAN grid25 (same nets)", "pgmgan_grid25", method="gan", generators=1)):
        bench.log(f"paper 002: {run.label}")
        rows.append(bench.evaluate(run, bench.profile.seeds, grid_measure))
    classify = digit_classifier()

    def digits_measure(s, m):
        stats = M.label_mode_statistics(classify_stacked(classify, s), 1000)
        return {"modes": stats["modes_covered"], "reverse_kl": stats["reverse_kl"]}

    digits_options = (("latent_dim", 32), ("pretext_steps", 200), ("partition_steps", 300),
                      ("partitioner_blocks", 4), ("partitioner_layers", 2), ("partitioner_units", 64),
                      ("guide_average", True),  # the authors' image scale (the grid preset sums: pgmgan.py)
                      ("generator_units", (128,)),
                      ("discriminator_units", (128,)), ("g_learning_rate", 2e-4), ("d_learning_rate", 2e-4),
                      # The constant rate these runs were measured at (the grid presets decay theirs
                      # since 2026-12-07: measured on grid25 only).
                      ("learning_rate_decay", "constant"))
    if bench.profile.name == "quick":
        digits_options += (("pretext_steps", 3), ("partition_steps", 3))
    # lambda anneals to 0 by the run's last step (the method's default, section 5.4). Partition GAN
    # starts from its own preset, so it keeps PGMGAN's partitioner settings and only lambda differs
    # (the paper's ablation); the GAN baseline keeps just the shared network options.
    digits_runs = (Run(DIGITS_LABELS[0], "pgmgan_grid25", generators=DIGITS_PARTITIONS),
                   Run(DIGITS_LABELS[1], "partition_gan_grid25", generators=DIGITS_PARTITIONS),
                   Run(DIGITS_LABELS[2], "pgmgan_grid25", method="gan", generators=1))
    for run in digits_runs:
        run = dataclasses.replace(run, data="stacked_digits", options=digits_options, steps=bench.profile.digits_steps)
        bench.log(f"paper 002: {run.label}")
        rows.append(bench.evaluate(run, bench.profile.digits_seeds, digits_measure))
    paper = {DIGITS_LABELS[0]: {"modes": 1000.0, "reverse_kl": 0.02}, DIGITS_LABELS[1]: {"modes": 1000.0, "reverse_kl": 0.02},
             DIGITS_LABELS[2]: {"modes": 133.4, "reverse_kl": 2.97}}
    return Table("paper002", "Paper 002: modes, high-quality rate and reverse KL (grid25, stacked_digits)",
                 [("modes", "modes", False), ("high_quality", "high-quality rate", False),
                  ("reverse_kl", "reverse KL", True)], rows, paper, rankings=rankings(), notes=[
                     note("paper002", "grid25"),
                     note("paper002", "stacked-digits", accuracy=classify.heldout_accuracy,
                          steps=bench.profile.digits_steps, partitions=DIGITS_PARTITIONS),
                     _digits_note(rows, bench.profile.digits_steps,
                                  dict(digits_options)["pretext_steps"] + dict(digits_options)["partition_steps"]),
                     note("paper002", "seeds", grid_seeds=list(bench.profile.seeds),
                          digits_seeds=list(bench.profile.digits_seeds)),
                 ])


def rankings(digits_labels=DIGITS_LABELS):
    """Table 1 (Stacked MNIST): PGMGAN and Partition GAN (its lambda = 0 ablation) both recover
    1000.0 +- 0.00 modes, at reverse KL 0.02 +- 0.003 and 0.02 +- 0.005: the table measures the two
    alike (the guide's "substantial gap" of section 5.2 is in CIFAR-10's FID and IS, which this
    offline stand-in has no counterpart for). The GAN is far behind both: 133.4 modes, 2.97."""
    pgmgan, partition, gan = digits_labels
    above_gan = [(pgmgan, gan), (partition, gan)]
    return [ranking("stacked_digits modes, PGMGAN and Partition GAN alike (Table 1: 1000.0 each)", "modes",
                    [(pgmgan, partition)], tie=True),
            ranking("stacked_digits modes, PGMGAN and Partition GAN each above GAN", "modes", above_gan),
            ranking("stacked_digits reverse KL, PGMGAN and Partition GAN alike (Table 1: 0.02 each)", "reverse_kl",
                    [(pgmgan, partition)], tie=True),
            ranking("stacked_digits reverse KL, PGMGAN and Partition GAN each below GAN", "reverse_kl", above_gan)]


def _digits_note(rows, steps, partitioner_steps):
    """What the stacked_digits rows say about the guide, from their own training losses."""
    by_label = {r["label"]: r for r in rows}
    pgm, ablation = by_label.get(DIGITS_LABELS[0]), by_label.get(DIGITS_LABELS[1])
    if not (pgm and ablation and pgm["losses"] and ablation["raw"].get("modes") and pgm["raw"].get("modes")):
        return note("paper002", "digits-not-finished")
    guide = float(np.mean([l.get("g_guide", np.nan) for l in pgm["losses"]]))
    adversarial = float(np.mean([l.get("g_adv", np.nan) for l in pgm["losses"]]))
    pm, am = float(np.mean(pgm["raw"]["modes"])), float(np.mean(ablation["raw"]["modes"]))
    return note("paper002", "digits-guide", steps=steps, partitioner_steps=partitioner_steps,
                partitions=DIGITS_PARTITIONS, modes_guided=number(pm), modes_unguided=number(am),
                guide=number(guide), adversarial=number(adversarial))


def digit_classifier():
    """A scikit-learn MLP on all 1797 ``digits`` (held-out accuracy printed by the bench log)."""
    from sklearn.neural_network import MLPClassifier

    digits = load_dataset("digits")
    x, y = digits.x.reshape(len(digits.x), -1), digits.labels
    order = np.random.default_rng(0).permutation(len(x))
    train, test = order[:1500], order[1500:]
    classifier = MLPClassifier((128,), max_iter=400, random_state=0).fit(x[train], y[train])
    classifier.heldout_accuracy = float(classifier.score(x[test], y[test]))
    return classifier


def classify_stacked(classifier, samples):
    """Mode label 100 a + 10 b + c of (n, 8, 8, 3) stacked digits, one classifier call per channel."""
    samples = np.asarray(samples)
    digits = [classifier.predict(samples[..., c].reshape(len(samples), -1)) for c in range(samples.shape[-1])]
    return digits[0] * 100 + digits[1] * 10 + digits[2]
