"""The report: BENCHMARKS.md (a table per study with its notes, the speed section, training times),
the speed plots and ``results.json`` (every measured number), and the merge of a partial run
(``--only``) into the report already written.

Output, for ``--out DIR``: ``DIR/BENCHMARKS.md`` and ``DIR/benchmarks/results/`` (``results.json``,
``generator_bank.png``, ``sampling.png``), which BENCHMARKS.md links to. The words of the report's
own header are in ``notes/report.md``.
"""
import dataclasses
import json
import os
import statistics
import platform

import numpy as np
import tensorflow as tf

from tfgan_mix.benchmarks.harness import note, number
from tfgan_mix.benchmarks.speed import bank_note, routed_note, torch_note
from tfgan_mix.runs import write_text

RESULTS_DIR = "benchmarks/results"  # below --out; also the links' path in BENCHMARKS.md
RESULTS_FILE = "results.json"


def results_path(out_dir):
    """Where the report in ``out_dir`` keeps its results.json."""
    return os.path.join(out_dir, *RESULTS_DIR.split("/"), RESULTS_FILE)


# ---------------------------------------------------------------------- tables
def summarise(values):
    """'mean' for one value, 'mean ± sd (n)' for several (sample standard deviation)."""
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    if len(values) == 1:
        return number(values[0])
    return f"{number(np.mean(values))} ± {number(np.std(values, ddof=1))} (n={len(values)})"


def table_markdown(table):
    lines = [f"## {table.title}", ""]
    header = ["run", "rejection rule", "accepted"]
    for _, name, _ in table.columns:
        header += [f"{name}, raw", f"{name}, with rejection"] + ([f"{name}, paper"] if table.paper else [])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table.rows:
        cells = [row["label"], row.get("rule", "—"), summarise(row["acceptance"])]
        for metric, _, _ in table.columns:
            cells += [summarise(row["raw"].get(metric, [])), summarise(row["rejected"].get(metric, []))]
            if table.paper:
                figure = table.paper.get(row["label"], {}).get(metric)
                cells.append("—" if figure is None else number(figure))
        lines.append("| " + " | ".join(cells) + " |")
    failures = [f"{row['label']}, {error}" for row in table.rows for error in row.get("errors", [])]
    missed = misses(table)
    verdict = ([note("report", "misses-the-paper", misses="; ".join(missed))] if missed else
               [note("report", "matches-the-paper")] if table.paper else [])
    verdict += [ranking_verdict(table, r) for r in table.rankings]
    lines += [""] + [f"- {text}" for text in verdict + list(table.notes)] + [
        f"- {note('report', 'failed-run', failure=f)}" for f in failures]
    return "\n".join(lines + [""])


def misses(table):
    """'label: metric ours vs paper' for each raw mean on the wrong side of the paper's figure."""
    found = []
    for row in table.rows:
        for metric, name, lower_is_better in table.columns:
            figure, values = table.paper.get(row["label"], {}).get(metric), row["raw"].get(metric)
            if figure is None or not values:
                continue
            if lower_is_better is None:
                raise ValueError(f"{table.key}: a paper figure for {metric!r}, a column with no better side")
            ours = float(np.mean(values))
            if (ours > figure) if lower_is_better else (ours < figure):
                found.append(f"{row['label']}, {name} {number(ours)} vs {number(figure)}")
    return found


def ranking_verdict(table, ranking):
    """Whether the paper's ordering ``ranking`` (``harness.ranking``) holds on the raw means.

    Each (better, worse) pair holds when better's mean is on the metric's good side of worse's;
    it is "apart" when every seed of better beats every seed of worse, else the seeds overlap and
    the order between the two is within their spread. A tie (the paper measures the pair alike)
    holds when the seeds overlap and fails when they are apart, whichever side is ahead."""
    lower_is_better = {metric: lower for metric, _, lower in table.columns}[ranking["metric"]]
    if lower_is_better is None:
        raise ValueError(f"{table.key}: a ranking on {ranking['metric']!r}, a column with no better side")
    values = {row["label"]: row["raw"].get(ranking["metric"]) for row in table.rows}
    missing = sorted({label for pair in ranking["pairs"] for label in pair if not values.get(label)})
    if missing:
        return note("report", "ranking-unmeasured", claim=ranking["claim"], missing=", ".join(missing))
    tie = ranking.get("tie", False)  # rankings stored before ties existed are orderings
    sign = 1.0 if lower_is_better else -1.0  # compare as "lower is better"
    parts, failed = [], []
    for better, worse in ranking["pairs"]:
        b, w = (sign * np.asarray(values[label], float) for label in (better, worse))
        ahead = b.mean() < w.mean()
        apart = b.max() < w.min() if ahead else w.max() < b.min()
        holds = not apart if tie else ahead
        relation = ("<" if lower_is_better else ">") if ahead else ("≥" if lower_is_better else "≤")
        text = (f"{better} {number(sign * b.mean())} {relation} {worse} {number(sign * w.mean())} "
                f"({note('report', 'ranking-seeds-apart' if apart else 'ranking-seeds-overlap')})")
        parts.append(text)
        if not holds:
            failed.append(text)
    key = ("tie-broken" if failed else "tie-holds") if tie else ("ranking-reversed" if failed else "ranking-holds")
    return note("report", key, claim=ranking["claim"], pairs="; ".join(parts),
                failed="; ".join(failed), seeds=max(len(values[label]) for pair in ranking["pairs"] for label in pair))


# ---------------------------------------------------------------------- speed
def _spread(values, digits):
    """min / median / max of repeated timings, as a table cell."""
    return " / ".join(f"{v:.{digits}f}" for v in (min(values), statistics.median(values), max(values)))


def speed_markdown(result, plot_dir):
    lines = ["## Speed", "", "### Training step against K (generator bank vs Python loop, XLA on/off)", "",
             "| K | implementation | XLA | ms per step: min / median / max |", "|---|---|---|---|"]
    for r in result["generator_bank"]:
        lines.append(f"| {r['k']} | {r['implementation']} | {'on' if r['xla'] else 'off'} | {_spread(r['ms_per_step'], 2)} |")
    lines += ["", note("speed", "bank-step"), "", bank_note(result["generator_bank"], peak=result["matmul_peak_gflops"]),
              "", f"![step time against K]({plot_dir}/generator_bank.png)", ""]
    if result.get("npgan_vs_torch"):
        lines += ["### NPGAN training step against PyTorch (paper 000's toy nets, batch 256)", "",
                  "| K | implementation | steps/s: min / median / max |", "|---|---|---|"]
        for r in result["npgan_vs_torch"]:
            v = r["steps_per_s"]
            lines.append(f"| {r['k']} | {r['implementation']} | {_spread(v, 1)} |")
        lines += ["", torch_note(result["npgan_vs_torch"], result["jit_auto_xla"]), ""]
    if result.get("routed"):
        lines += ["### Hard-routed PGMGAN against k partitions (grid25 preset's nets)", "",
                  "| k | XLA | ms per train step: min / median / max | ms per generate (4096 rows): min / median / max |",
                  "|---|---|---|---|"]
        for r in result["routed"]:
            lines.append(f"| {r['k']} | {'on' if r['xla'] else 'off'} | {_spread(r['ms_per_step'], 1)} | "
                         f"{_spread(r['ms_per_generate'], 1)} |")
        lines += ["", routed_note(result["routed"]), ""]
    step, peak = result["training_step"], result["matmul_peak_gflops"]
    lines += ["### Achieved GFLOP/s of a training step", "",
              "- " + note("speed", "matmul-peak", peak=peak),
              "- " + note("speed", "training-step", method=step["method"], layers=step["layers"], width=step["width"],
                          gflop=step["flops_per_step"] / 1e9, ms=1000 * step["seconds_per_step"], gflops=step["gflops"],
                          percent=100 * step["gflops"] / peak), ""]
    setup = result.get("sampling_setup")
    setup = f"{setup['rule']} rejection, {setup['candidates']} candidates per row" if setup else "its default export"
    lines += [f"### Sampling throughput (NPGAN, {setup})", "",
              "| path | batch | samples/s |", "|---|---|---|"]
    for r in result["sampling"]:
        if "samples_per_s" in r:
            lines.append(f"| {r['path']} | {r['batch']} | {r['samples_per_s']:.0f} |")
    lines += ["", "| server | batch | concurrent clients | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for r in result["sampling"]:
        if "p50_ms" in r:
            lines.append(f"| {r['path']} | {r['batch']} | {r['concurrency']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} |")
    lines += ["", f"![sampling throughput]({plot_dir}/sampling.png)", ""]
    return "\n".join(lines)


def draw_speed_plots(result, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    rows = result["generator_bank"]
    for name in dict.fromkeys(r["implementation"] for r in rows):
        for xla in (False, True):
            pts = [(r["k"], statistics.median(r["ms_per_step"])) for r in rows
                   if r["implementation"] == name and r["xla"] == xla]
            ax.plot(*zip(*pts), marker="o", label=f"{name}, XLA {'on' if xla else 'off'}")
    ax.set(xscale="log", yscale="log", xlabel="generators K", ylabel="ms per training step")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "generator_bank.png"), dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    rows = [r for r in result["sampling"] if "samples_per_s" in r]
    for path in dict.fromkeys(r["path"] for r in rows):
        pts = [(r["batch"], r["samples_per_s"]) for r in rows if r["path"] == path]
        ax.plot(*zip(*pts), marker="o", label=path)
    ax.set(xscale="log", yscale="log", xlabel="batch (rows per call)", ylabel="samples / s")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "sampling.png"), dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------- the report
def write_report(out_dir, profile, tables, speed_result, timings, runs):
    """Write BENCHMARKS.md, the plots and results.json. ``runs``: the bench invocations whose
    sections these are, oldest first ({command, sections, minutes, finished})."""
    results_dir = os.path.join(out_dir, *RESULTS_DIR.split("/"))
    os.makedirs(results_dir, exist_ok=True)
    draw_speed_plots(speed_result, results_dir)
    machine = (f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
               f"TensorFlow {tf.__version__}")
    if len(runs) == 1:
        made = note("report", "made-by-one-run", command=runs[0]["command"], profile=profile.name,
                    minutes=runs[0]["minutes"], machine=machine)
    else:
        made = note("report", "made-by-runs", profile=profile.name, machine=machine, runs="; ".join(
            f"`{r['command']}` ({', '.join(r['sections']) or note('report', 'no-section')}) in {r['minutes']:.1f} minutes"
            + (f", finished {r['finished']}" if r.get("finished") else "") for r in runs))
    header = ["# BENCHMARKS", "", made + " " + note("report", "figures", results=f"{RESULTS_DIR}/{RESULTS_FILE}"), "",
              note("report", "evaluation"), ""]
    if profile.name == "quick":
        header += [note("report", "quick-profile"), ""]
    body = [table_markdown(t) for t in tables] + [speed_markdown(speed_result, RESULTS_DIR)]
    total = sum(t["seconds"] for t in timings)
    body += ["## Training time per run", "", note("report", "training-time", runs=len(timings), minutes=total / 60), "",
             "| run | seed | steps | seconds |", "|---|---|---|---|"]
    body += [f"| {t['run']} | {t['seed']} | {t['steps']} | {t['seconds']:.0f} |" for t in timings] + [""]
    path = os.path.join(out_dir, "BENCHMARKS.md")
    write_text(path, "\n".join(header + body))
    results = {"profile": dataclasses.asdict(profile), "runs": runs, "seconds": 60 * sum(r["minutes"] for r in runs),
               "tables": [dataclasses.asdict(t) for t in tables], "speed": speed_result, "timings": timings}
    write_text(results_path(out_dir), json.dumps(results, indent=1, default=float))
    return path


# ---------------------------------------------------------------------- merging a partial run
def previous_results(out_dir, profile, sections):
    """The results.json a partial run (``only``) merges into; refuses a missing or other-profile one.
    ``sections``: every section name, which a report from before runs were recorded is taken to hold."""
    path = results_path(out_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"--only needs an earlier full report to merge into, and {path} does not exist; "
                                "run without --only first")
    with open(path, encoding="utf-8") as f:
        previous = json.load(f)
    if previous["profile"]["name"] != profile.name:
        raise ValueError(f"{path} is from the {previous['profile']['name']} profile, this run is {profile.name}; "
                         "one report cannot mix profiles")
    previous.setdefault("runs", [{"command": "tfgan-mix bench", "sections": list(sections),
                                  "minutes": previous["seconds"] / 60, "finished": None}])
    return previous


def merged_timings(previous, new_tables, new_timings):
    """The earlier run's training times, minus those of the runs retrained now, then the new ones;
    one row per run and seed (a run two sections shared was once listed twice: the last row stays)."""
    if not previous:
        return new_timings
    old_rows = {t["key"]: t["rows"] for t in previous["tables"]}
    retrained = {row["label"] for table in new_tables for row in old_rows.get(table.key, []) + table.rows}
    merged = [t for t in previous["timings"] if t["run"] not in retrained] + new_timings
    return list({(t["run"], t["seed"]): t for t in merged}.values())
