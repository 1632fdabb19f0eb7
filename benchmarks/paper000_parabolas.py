"""Paper 000 (Table 1), its parabolas half: the share of real points with no sample within
epsilon (the uncovered share) with 2 and 3 generators, the 95% coverage radius beside it (a measure
with no epsilon to choose) and a perfect-generator reference row. Its runs are ``paper000``'s
(``table1_run``) on the parabolas; the notes' words are in ``notes/paper000.md``."""
import numpy as np

from tfgan_mix import metrics as M
from tfgan_mix.benchmarks.harness import Table, best_of, note, number, ranking
from tfgan_mix.benchmarks.paper000 import METHODS, presets_note, table1_rows


def paper000_parabolas(bench):
    """Paper 000 Table 1 on parabolas: uncovered share with 2 and 3 generators, and the coverage radius."""
    parab = bench.dataset("parabolas")

    def measure(s, m):
        return {"uncovered": M.coverage_gap(parab.x, s, M.PAPER_COVERAGE_EPSILON),
                "coverage_r95": M.coverage_radius(parab.x, s, 0.95)}

    rows, paper_rows = table1_rows(bench, "parabolas", "uncovered", measure)
    rows.insert(0, bench.reference("real data, parabolas (reference: a second draw)", "parabolas", measure))
    return Table("paper000_parabolas", "Paper 000, Table 1 (parabolas): uncovered share",
                 [("uncovered", "uncovered share", True), ("coverage_r95", "95% coverage radius", True)],
                 rows, paper_rows, rankings=rankings(), notes=[
                     note("paper000", "metrics-parabolas", epsilon=M.PAPER_COVERAGE_EPSILON,
                          samples=bench.profile.samples),
                     _coverage_note(rows),
                     presets_note(bench),
                 ])


def rankings():
    """Table 1's ordering on parabolas: NPGAN has the lowest uncovered share of the four methods at
    2 and at 3 generators; the coverage radius is our measure beside it (the table's note), so its
    line says so."""
    found = []
    others = [name for _, name in METHODS if name != "NPGAN"]
    for k in (2, 3):
        def label(name):
            return f"{name} {k}Gen parabolas"
        for metric, words in (
                ("uncovered", "the lowest uncovered share"),
                ("coverage_r95", "the smallest 95% coverage radius (our measure for Table 1's coverage)")):
            found.append(ranking(f"NPGAN has {words} of the four methods with {k} generators (parabolas)", metric,
                                 best_of(label("NPGAN"), [label(o) for o in others])))
    return found


def _coverage_note(rows):
    """Why the uncovered share reads as it does at this count, from the reference and the runs."""
    reference = next(r["raw"] for r in rows if r.get("reference") and "uncovered" in r["raw"])
    floor, radius = reference["uncovered"][0], reference["coverage_r95"][0]
    measured = [np.mean(r["raw"]["uncovered"]) for r in rows if not r.get("reference") and r["raw"].get("uncovered")]
    epsilon = M.PAPER_COVERAGE_EPSILON
    count = note("paper000", "coverage-floor-high" if floor > 0.1 else "coverage-floor-low",
                 floor=number(floor), epsilon=epsilon)
    if measured and min(measured) > 0.5:
        count += " " + note("paper000", "coverage-generated-rows-uncovered", epsilon=epsilon)
    return count + " " + note("paper000", "coverage-radius", radius=number(radius))
