"""``tfgan-mix bench [--quick] [--out DIR] [--only SECTIONS]``: measure everything BENCHMARKS.md
reports, in one run, or rerun some sections and merge them into the report already in ``DIR``.

Sections, in report order: the studies (``STUDIES``: the papers' toy tables, papers 000-004, then
the served-sample targets) and ``speed``. ``--quick`` is the smoke profile (minutes: it checks the
pipeline, its figures are not results); the full profile is what BENCHMARKS.md on main comes from.
"""
import inspect
import os
import shutil
import tempfile
import time

from tfgan_mix.benchmarks.harness import PROFILES, Bench, Table
from tfgan_mix.benchmarks.paper000 import paper000
from tfgan_mix.benchmarks.paper000_parabolas import paper000_parabolas
from tfgan_mix.benchmarks.paper001 import paper001
from tfgan_mix.benchmarks.paper002 import paper002
from tfgan_mix.benchmarks.paper003 import paper003
from tfgan_mix.benchmarks.paper004 import paper004
from tfgan_mix.benchmarks.report import merged_timings, previous_results, write_report
from tfgan_mix.benchmarks.served import served_gaussians3, served_gaussians5, served_grid25, served_own_data, served_ring8
from tfgan_mix.benchmarks.speed import speed_section

STUDIES = (paper000, paper000_parabolas, paper003, paper002, paper004, paper001,
           served_gaussians3, served_grid25, served_ring8, served_gaussians5, served_own_data)
SECTIONS = tuple(study.__name__ for study in STUDIES) + ("speed",)
# The papers' orderings, from each study module's ``rankings()``. They are claims about a paper,
# not measurements, so a table read back from results.json takes them from here: a corrected
# claim needs no retraining.
RANKINGS = {study.__name__: inspect.getmodule(study).rankings for study in STUDIES
            if hasattr(inspect.getmodule(study), "rankings")}


def run_bench(out_dir, quick=False, work_dir=None, only=None, log=print, command="tfgan-mix bench", resume=False):
    """Run the studies and the speed section, or only the ``only`` sections (names from
    ``SECTIONS``) merged into the report already in ``out_dir``; write the report there. With
    ``resume``, runs an earlier bench finished in ``work_dir`` with the same spec are reused."""
    profile = PROFILES["quick" if quick else "full"]
    selected = list(SECTIONS) if only is None else list(only)
    unknown = [name for name in selected if name not in SECTIONS]
    if unknown or not selected:
        raise ValueError(f"unknown bench section(s) {unknown or selected}; choose from {', '.join(SECTIONS)}")
    previous = previous_results(out_dir, profile, SECTIONS) if only is not None else None  # before any training
    os.makedirs(out_dir, exist_ok=True)
    own_work = work_dir is None
    work_dir = work_dir or tempfile.mkdtemp(prefix="tfgan-mix-bench-")
    start = time.perf_counter()
    try:
        bench = Bench(profile, work_dir, log, resume=resume)
        # Speed first, while nothing else has warmed or filled memory.
        speed_result = speed_section(profile, work_dir, log) if "speed" in selected else previous["speed"]
        old_tables = {t["key"]: stored_table(t) for t in previous["tables"]} if previous else {}
        # A section never run yet (added since the earlier report) has no table until it is asked for.
        tables = [study(bench) if study.__name__ in selected else old_tables[study.__name__] for study in STUDIES
                  if study.__name__ in selected or study.__name__ in old_tables]
        timings = merged_timings(previous, [t for t in tables if t.key in selected], bench.timings)
        runs = (previous["runs"] if previous else []) + [_run_record(command, selected, start)]
        return write_report(out_dir, profile, tables, speed_result, timings, runs)
    finally:
        if own_work:
            shutil.rmtree(work_dir, ignore_errors=True)


def render_report(out_dir, quick=False, command="tfgan-mix bench --render"):
    """Rewrite the report in ``out_dir`` from its results.json without measuring anything: every
    figure and note as stored, the papers' rankings as ``RANKINGS`` states them now."""
    profile = PROFILES["quick" if quick else "full"]
    previous = previous_results(out_dir, profile, SECTIONS)
    runs = previous["runs"] + [_run_record(command, [], time.perf_counter())]
    tables = [stored_table(t) for t in previous["tables"]]
    return write_report(out_dir, profile, tables, previous["speed"], previous["timings"], runs)


def stored_table(stored):
    """A table read back from results.json, with its paper's rankings as the code states them now."""
    table = Table(**stored)
    if table.key in RANKINGS:
        table.rankings = RANKINGS[table.key]()
    return table


def _run_record(command, sections, start):
    """The report's entry for one bench invocation that began at ``start`` (``perf_counter``)."""
    return {"command": command, "sections": sections, "minutes": (time.perf_counter() - start) / 60,
            "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
