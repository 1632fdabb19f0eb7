"""``tfgan-mix bench``: the quick profile end to end through the command line, and its parts."""
import dataclasses
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from helpers import tiny_model, toy_batches

from tfgan_mix.benchmarks import harness, run
from tfgan_mix.benchmarks import paper002 as study_paper002
from tfgan_mix.benchmarks import paper003 as study_paper003
from tfgan_mix.benchmarks import paper004 as study_paper004
from tfgan_mix.benchmarks import report as report_writer
from tfgan_mix.benchmarks import served as served_studies
from tfgan_mix.benchmarks.speed import _StepClock

TABLE_TITLES = ("Paper 000, Table 1 (gaussians3)", "Paper 000, Table 1 (parabolas)",
                "Paper 003", "Paper 002", "Paper 004", "Paper 001")
SAMPLING_PATHS = ("Keras (tf.function)", "SavedModel signature", "onnxruntime", "REST server", "gRPC server")


# The least a speed section holds for the report writer (tests that run the studies alone).
FAKE_SPEED = {"generator_bank": [{"k": 1, "implementation": "x", "xla": False, "ms_per_step": [1.0]}],
              "matmul_peak_gflops": 10.0, "training_step": {"method": "gan", "layers": 5, "width": 8,
              "flops_per_step": 1e9, "seconds_per_step": 0.1, "gflops": 5.0},
              "sampling": [{"path": "onnxruntime", "batch": 1, "samples_per_s": 9.0}]}


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tfgan_mix.training.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=1500)


def _main(capsys, *args):
    """``tfgan-mix ARGS`` in this process (what the console script exits with): (code, stderr)."""
    from tfgan_mix.training import cli

    try:
        code = cli.main(list(args))
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    return code, capsys.readouterr().err


def _assert_paper003_rows(paper003):
    """Paper 003's table: the reference, 3 runs at each learning rate and the GAN masked only at
    generation, every prior run measured through its rule."""
    assert paper003["rows"][0]["reference"] and len(paper003["rows"]) == 8
    for suffix, count in ((study_paper003.PAPER_RATE_SUFFIX, 4), (study_paper003.PRESET_RATE_SUFFIX, 3)):
        assert sum(r["label"].endswith(suffix) for r in paper003["rows"]) == count, suffix
    masked = next(r for r in paper003["rows"] if r["label"] == study_paper003.MASKED_AT_GENERATION)
    assert all(not r["errors"] and r["rejected"].get("emd") for r in paper003["rows"][1:] if r is not masked)
    assert all(set(r["raw"]) == {"emd", "off_manifold", "modes", "mode_tv", "within_3_std"} for r in paper003["rows"])
    # The GAN's prior masked at generation: half of z kept (r = 0.5), measured like the raw rows.
    assert not masked["errors"] and masked["raw"]["emd"][0] > 0 and 0.4 < masked["acceptance"][0] < 0.6


def _assert_quick_speed_measured(speed):
    """Every quick-profile speed measurement is there: bank and loop at each K, XLA on and off, a
    training step's GFLOP/s and the peak, and every sampling path at every batch size."""
    assert {(r["k"], r["implementation"], r["xla"]) for r in speed["generator_bank"]} == {
        (k, impl, xla) for k in harness.PROFILES["quick"].speed_ks
        for impl in ("GeneratorBank (batch matmul)", "Python loop over K") for xla in (False, True)}
    assert 0 < speed["training_step"]["gflops"] and 0 < speed["matmul_peak_gflops"]
    throughput = {(r["path"], r["batch"]) for r in speed["sampling"] if "samples_per_s" in r}
    quick = harness.PROFILES["quick"]
    assert throughput == {(p, b) for p in SAMPLING_PATHS for b in quick.throughput_batches}
    contenders = {(r["k"], r["implementation"]) for r in speed["npgan_vs_torch"]}
    ours = {(k, f"tfgan_mix npgan, XLA {x}") for k in quick.torch_ks for x in ("off", "on")}
    torch_rows = 2 * len(quick.torch_ks) if importlib.util.find_spec("torch") else 0
    assert ours <= contenders and len(contenders) == len(ours) + torch_rows
    assert all(len(r["steps_per_s"]) == quick.torch_repeats and min(r["steps_per_s"]) > 0 for r in speed["npgan_vs_torch"])
    assert {(r["k"], r["xla"]) for r in speed["routed"]} == {(k, x) for k in quick.routed_ks for x in (False, True)}
    for r in speed["generator_bank"] + speed["routed"]:
        assert len(r["ms_per_step"]) == quick.speed_repeats and min(r["ms_per_step"]) > 0
    assert all(len(r["ms_per_generate"]) == quick.speed_repeats and min(r["ms_per_generate"]) > 0 for r in speed["routed"])
    assert speed["sampling_setup"]["candidates"] >= 1 and isinstance(speed["jit_auto_xla"], bool)


@pytest.mark.benchmark  # every section at the quick profile: over 10 minutes on 2 cores
@pytest.mark.timeout(2400)
def test_quick_bench_writes_every_table_and_measurement(tmp_path):
    result = _cli("bench", "--quick", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "BENCHMARKS.md").read_text()
    for title in TABLE_TITLES:
        assert f"## {title}" in report
    assert "profile **quick**" in report and "not results" in report
    results = json.loads((tmp_path / "out" / "benchmarks" / "results" / "results.json").read_text())
    # Every run of every table measured something, raw and through the sampler, with its rule named.
    for table in results["tables"]:
        for row in table["rows"]:
            assert not row["errors"], row["errors"]
            assert row["raw"] and all(math.isfinite(v) for vs in row["raw"].values() for v in vs), row["label"]
            if not row.get("reference"):
                assert row["rule"] and 0.0 < row["acceptance"][0] <= 1.0, row["label"]
                assert row["losses"] and "g_loss" in row["losses"][0], row["label"]
    for key, data in (("paper000", "gaussians3"), ("paper000_parabolas", "parabolas")):
        table = next(t for t in results["tables"] if t["key"] == key)
        trained = [row for row in table["rows"] if not row.get("reference")]
        assert len(trained) == 8 and all(data in row["label"] for row in trained)  # 4 methods x 2 and 3 generators
        assert [row["label"] for row in table["rows"] if row.get("reference")] == [
            f"real data, {data} (reference: a second draw)"]
        assert all(("coverage_r95" in row["raw"]) == (data == "parabolas") for row in trained)
    for key in ("paper003", "paper004", "paper001"):  # a second real draw: each metric's floor
        table = next(t for t in results["tables"] if t["key"] == key)
        assert table["rows"][0]["reference"] and set(table["rows"][0]["raw"]) == {c[0] for c in table["columns"]}
    _assert_paper003_rows(next(t for t in results["tables"] if t["key"] == "paper003"))
    speed = results["speed"]
    _assert_quick_speed_measured(speed)
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in speed["sampling"] if "p50_ms" in r)
    for picture in ("generator_bank.png", "sampling.png"):
        assert (tmp_path / "out" / "benchmarks" / "results" / picture).stat().st_size > 1000
    # The report shows the measured figures, not placeholders.
    peak = re.search(r"matmul peak .*\*\*([0-9.]+) GFLOP/s\*\*", report)
    assert peak and float(peak.group(1)) == pytest.approx(speed["matmul_peak_gflops"], abs=0.06)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # under a minute alone
def test_quick_served_study_measures_raw_and_served(tmp_path, monkeypatch):
    """A served-target study (trained, exported, sampled from the ONNX file and the SavedModel) at
    the quick profile, through ``run_bench``'s report writing. The paper studies (paper 003's rows:
    ``_assert_paper003_rows``) and the speed section run end to end in the benchmark-marked test
    above (over 10 minutes); their parts have tests of their own below."""
    monkeypatch.setattr(run, "STUDIES", (served_studies.served_ring8,))
    monkeypatch.setattr(run, "speed_section", lambda *a, **k: FAKE_SPEED)
    path = run.run_bench(str(tmp_path), quick=True, log=lambda m: None)
    report = open(path).read()
    assert "## Served samples: ring8" in report and "profile **quick**" in report
    results = json.loads((tmp_path / "benchmarks" / "results" / "results.json").read_text())
    served = next(t for t in results["tables"] if t["key"] == "served_ring8")
    (row,) = served["rows"]  # the quick profile serves one run per table
    assert not row["errors"], row["errors"]
    assert row["rule"] == "manifold" and 0.0 < row["acceptance"][0] <= 1.0
    for key in ("raw", "rejected", "savedmodel"):  # raw, through ONNX, through the SavedModel
        assert set(row[key]) == {"emd", "off_manifold", "modes", "mode_tv", "within_3_std"}, key
        assert all(math.isfinite(v[0]) for v in row[key].values()), key
    assert row["losses"] and "g_loss" in row["losses"][0]


@pytest.mark.benchmark  # about 1 minute alone: XLA compiles, spawned processes, live servers
@pytest.mark.timeout(1200)
def test_quick_speed_section_measures_every_path(tmp_path, monkeypatch):
    """The speed section at the quick profile, alone, through ``run_bench``'s report writing."""
    monkeypatch.setattr(run, "STUDIES", ())
    path = run.run_bench(str(tmp_path), quick=True, log=lambda m: None)
    report = open(path).read()
    speed = json.loads((tmp_path / "benchmarks" / "results" / "results.json").read_text())["speed"]
    _assert_quick_speed_measured(speed)
    peak = re.search(r"matmul peak .*\*\*([0-9.]+) GFLOP/s\*\*", report)
    assert peak and float(peak.group(1)) == pytest.approx(speed["matmul_peak_gflops"], abs=0.06)


def test_masked_generation_draws_z_from_the_top_half_of_each_pre_sample():
    """Paper 003's GAN masked only at generation: each z comes from the better-scored half of its
    pre-sample, so nearly all of the samples score above the median of plain samples (about half
    would, unmasked)."""
    model = tiny_model("gan", seed=0)
    samples, kept = study_paper003.masked_generation(model, 1500, 0.5, seed=0)
    assert samples.shape == (1500, 2) and kept == 0.5
    masked = model.discriminate(samples).numpy()
    plain = model.discriminate(model.sample(3000, seed=1)[0]).numpy()
    assert np.mean(masked > np.median(plain)) > 0.95
    assert 0.4 < np.mean(plain[:1500] > np.median(plain)) < 0.6


def test_target_note_names_every_seed_that_misses():
    rows = [{"label": "a", "rejected": {"emd": [0.05, 0.08], "modes": [8, 8]}, "errors": []},
            {"label": "b", "rejected": {"emd": [0.05, 0.2]}, "errors": []},
            {"label": "c", "rejected": {}, "errors": ["seed 0: RuntimeError: x"]},
            {"label": "untargeted", "rejected": {"emd": [9.0]}, "errors": []}]
    goal = {"emd": ["<=", 0.0891], "modes": [">=", 8]}
    table = harness.Table("t", "t", [], rows, {}, [], {"a": goal, "b": {"emd": goal["emd"]}, "c": goal})
    note = served_studies.target_note(table)
    met, missed = note.split("**Targets missed**")
    assert "a" in met and "b" not in met and "untargeted" not in note
    assert "b: emd <= 0.0891 missed on 1 of 2 seeds (0.0500, 0.2000)" in missed
    assert "c: emd <= 0.0891 missed on 0 of 0 seeds (no figures)" in missed


def test_own_mixtures_draw_their_weights_and_differ_from_the_paper_sets():
    for mixture in served_studies.OWN_MIXTURES:
        data = mixture.draw(seed=0, n=40_000)
        shares = np.bincount(data.labels, minlength=len(mixture.centres)) / len(data.labels)
        assert np.abs(shares - np.asarray(mixture.weights) / sum(mixture.weights)).max() < 0.01, mixture.name
        assert len(set(mixture.weights)) > 1 and data.x.shape[1] in (2, 3, 10)
        within = np.linalg.norm(data.x - data.centres[data.labels], axis=1) / data.stds[data.labels]
        assert np.median(within) == pytest.approx(np.sqrt(data.x.shape[1] - 2 / 3), rel=0.1)  # chi median
    assert {m.draw(0).x.shape[1] for m in served_studies.OWN_MIXTURES} == {2, 3, 10}


def test_non_empty_work_folder_is_refused_before_anything_runs(tmp_path, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    code, err = _main(capsys, "bench", "--quick", "--out", str(tmp_path / "out"), "--work", str(work))
    assert code == 2
    assert "--work" in err and "not empty" in err
    assert not (tmp_path / "out").exists() and (work / "keep.txt").read_text() == "mine"


def test_baseline_runs_keep_the_networks_and_drop_the_mixture_knobs():
    options = harness._resolved_base_options("masked_prior", {"mask_rate": 0.5, "g_learning_rate": 1e-3}, "gan")
    assert options["generator_units"] == (128, 128) and options["discriminator_units"] == (128, 128, 128)
    assert options["loss"] == "wasserstein" and options["gradient_penalty"] == 10.0 and options["d_steps"] == 5
    assert options["g_learning_rate"] == 1e-3
    assert "mask_rate" not in options and "presample_factor" not in options and "data_shape" not in options


def test_summaries_give_mean_and_sample_spread():
    assert report_writer.summarise([0.5]) == "0.5000"
    assert report_writer.summarise([1.0, 2.0, 3.0]) == "2 ± 1 (n=3)"
    assert report_writer.summarise([]) == "—"


def _fake_study(key, value, bench_log):
    def study(b):
        b.timings.append({"run": f"{key} run", "seed": 0, "steps": 1, "seconds": value})
        bench_log.append(key)
        row = {"label": f"{key} run", "raw": {"m": [value]}, "rejected": {}, "acceptance": [1.0], "errors": [],
               "losses": [], "rule": "truncation"}
        return harness.Table(key, f"Table {key}", [["m", "metric", True]], [row], {f"{key} run": {"m": 0.5}}, [])

    study.__name__ = key
    return study


def test_only_reruns_the_named_sections_and_keeps_the_rest(tmp_path, monkeypatch):
    ran = []
    keys = run.SECTIONS[:-1]
    monkeypatch.setattr(run, "speed_section", lambda *a, **k: FAKE_SPEED)
    monkeypatch.setattr(run, "STUDIES", tuple(_fake_study(k, 1.0, ran) for k in keys))
    monkeypatch.setattr(run, "RANKINGS", {})  # the fake tables have none of the papers' columns
    run.run_bench(str(tmp_path), quick=True, log=lambda m: None, command="first")
    first = json.loads((tmp_path / "benchmarks" / "results" / "results.json").read_text())
    assert ran == list(keys)

    ran.clear()
    monkeypatch.setattr(run, "STUDIES", tuple(_fake_study(k, 2.0, ran) for k in keys))
    monkeypatch.setattr(run, "speed_section", lambda *a, **k: pytest.fail("speed was not asked for"))
    run.run_bench(str(tmp_path), quick=True, only=["paper003"], log=lambda m: None, command="second")
    merged = json.loads((tmp_path / "benchmarks" / "results" / "results.json").read_text())
    assert ran == ["paper003"]
    for old, new in zip(first["tables"], merged["tables"]):
        expected = 2.0 if new["key"] == "paper003" else 1.0
        assert new["rows"][0]["raw"]["m"] == [expected], new["key"]
        if new["key"] != "paper003":
            assert new == old
    assert merged["speed"] == first["speed"]
    # The rerun's training time replaces the old one; the others are kept.
    assert sorted((t["run"], t["seconds"]) for t in merged["timings"]) == sorted(
        (f"{k} run", 2.0 if k == "paper003" else 1.0) for k in keys)
    assert [r["command"] for r in merged["runs"]] == ["first", "second"]
    assert merged["runs"][1]["sections"] == ["paper003"]
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "`first` (paper000" in report and "`second` (paper003)" in report
    assert "**Misses the paper**" in report and "paper003 run, metric 2 vs 0.5000" in report


def test_only_refuses_to_start_without_a_matching_report(tmp_path, capsys):
    code, err = _main(capsys, "bench", "--quick", "--only", "paper003", "--out", str(tmp_path / "out"))
    assert code == 2 and "results.json does not exist" in err
    assert not (tmp_path / "out").exists()
    code, err = _main(capsys, "bench", "--quick", "--only", "paper999", "--out", str(tmp_path / "out"))
    assert code == 2 and "unknown bench section" in err and "paper000" in err
    (tmp_path / "full" / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "full" / "benchmarks" / "results" / "results.json").write_text(json.dumps({"profile": {"name": "full"}}))
    code, err = _main(capsys, "bench", "--quick", "--only", "paper003", "--out", str(tmp_path / "full"))
    assert code == 2 and "full profile" in err and "cannot mix profiles" in err
    assert os.listdir(tmp_path / "full") == ["benchmarks"]


def test_misses_compare_raw_means_in_each_metric_direction():
    rows = [{"label": "a", "raw": {"low": [0.2, 0.4], "high": [10.0]}}, {"label": "b", "raw": {"low": [0.1]}}]
    table = harness.Table("t", "T", [("low", "error", True), ("high", "modes", False)], rows,
                        {"a": {"low": 0.25, "high": 12.0}, "b": {"low": 0.1}}, [])
    assert report_writer.misses(table) == ["a, error 0.3000 vs 0.2500", "a, modes 10 vs 12"]


def test_ranking_verdict_follows_each_metric_direction_and_names_the_pairs_out_of_order():
    rows = [{"label": "A", "raw": {"err": [0.1, 0.2], "modes": [900.0, 950.0]}},
            {"label": "B", "raw": {"err": [0.15, 0.5], "modes": [960.0]}},
            {"label": "D", "raw": {"modes": [1.0, 12.0]}}, {"label": "E", "raw": {"modes": [5.0, 6.0]}},
            {"label": "C", "raw": {"err": [0.6, 0.7], "modes": []}}]
    for row in rows:
        row.update(rejected={}, acceptance=[])
    columns = [("err", "error", True), ("modes", "modes", False)]
    errors = harness.ranking("A < B < C", "err", harness.chain(["A", "B", "C"]))
    modes = harness.ranking("A beats B", "modes", harness.best_of("A", ["B"]))
    unmeasured = harness.ranking("A beats C", "modes", [("A", "C")])
    spread = harness.ranking("D beats E", "modes", [("D", "E")])
    table = harness.Table("t", "T", columns, rows, {}, [], rankings=[errors, modes, unmeasured, spread])
    # Lower error is better: A 0.15 < B 0.325 (seeds overlap), B 0.325 < C 0.65 (every seed apart).
    holds = report_writer.ranking_verdict(table, errors)
    assert "ranking holds" in holds and "A 0.1500 < B 0.3250 (the seeds overlap)" in holds
    assert "B 0.3250 < C 0.6500 (every seed in this order)" in holds
    # More modes is better: A's 925 is below B's 960 on every seed, so the claim is out of order.
    reversed_ = report_writer.ranking_verdict(table, modes)
    assert "does not hold" in reversed_ and "Out of order: A 925 ≤ B 960 (every seed in this order)" in reversed_
    assert "not checked" in report_writer.ranking_verdict(table, unmeasured) and "no raw figure for C" in \
        report_writer.ranking_verdict(table, unmeasured)
    # D's mean 6.5 beats E's 5.5, but D's seed at 1 is below both of E's: the seeds overlap.
    assert "D 6.5000 > E 5.5000 (the seeds overlap)" in report_writer.ranking_verdict(table, spread)
    # A column with no better side (paper 001's spread, ideally 1) cannot be ranked or missed.
    spread_column = harness.Table("t", "T", [("spread", "spread", None)], rows, {"A": {"spread": 1.0}}, [])
    with pytest.raises(ValueError, match="no better side"):
        report_writer.ranking_verdict(spread_column, harness.ranking("A < B", "spread", [("A", "B")]))
    rows[0]["raw"]["spread"] = [0.5]
    with pytest.raises(ValueError, match="no better side"):
        report_writer.misses(spread_column)
    # The report prints every verdict, and a table read back from results.json keeps its rankings.
    markdown = report_writer.table_markdown(harness.Table(**json.loads(json.dumps(dataclasses.asdict(table)))))
    assert markdown.count("**The paper's ranking") == 4


def test_the_papers_tables_declare_the_rankings_the_papers_show():
    from tfgan_mix.benchmarks import paper000 as study_paper000
    from tfgan_mix.benchmarks import paper000_parabolas as study_paper000_parabolas

    gaussians, parabolas = study_paper000.rankings(), study_paper000_parabolas.rankings()
    for found, metrics in ((gaussians, {"off_manifold"}), (parabolas, {"uncovered", "coverage_r95"})):
        assert len(found) == 2 * len(metrics) and {r["metric"] for r in found} == metrics
        assert all(pair[0].startswith("NPGAN") and len(r["pairs"]) == 3 for r in found for pair in r["pairs"])
        assert not any(r["tie"] for r in found)
    # Table 1 gives PGMGAN and Partition GAN 1000.0 +- 0.00 modes and reverse KL 0.02 each: a tie,
    # both far ahead of the GAN (133.4, 2.97).
    digits = study_paper002.rankings(("P", "Q", "G"))
    assert [(r["metric"], r["pairs"], r["tie"]) for r in digits] == [
        ("modes", [["P", "Q"]], True), ("modes", [["P", "G"], ["Q", "G"]], False),
        ("reverse_kl", [["P", "Q"]], True), ("reverse_kl", [["P", "G"], ["Q", "G"]], False)]


def test_a_tie_holds_while_the_seeds_overlap_and_breaks_when_one_side_wins_every_seed():
    rows = [{"label": "P", "raw": {"modes": [985.0, 991.0, 997.0]}},
            {"label": "Q", "raw": {"modes": [990.0, 991.0, 993.0]}},
            {"label": "G", "raw": {"modes": [700.0, 760.0, 820.0]}}]
    table = harness.Table("t", "T", [("modes", "modes", False)], rows, {}, [])
    holds = report_writer.ranking_verdict(table, harness.ranking("P and Q alike", "modes", [("P", "Q")], tie=True))
    assert "tie holds" in holds and "P 991 ≤ Q 991.3 (the seeds overlap)" in holds
    broken = report_writer.ranking_verdict(table, harness.ranking("P and G alike", "modes", [("P", "G")], tie=True))
    assert "tie does not hold" in broken and "Apart: P 991 > G 760 (every seed in this order)" in broken
    # A ranking stored before ties existed reads as an ordering.
    stored = {k: v for k, v in harness.ranking("P beats Q", "modes", [("P", "Q")]).items() if k != "tie"}
    assert "ranking does not hold" in report_writer.ranking_verdict(table, stored)


def test_render_rewrites_the_report_with_the_rankings_the_code_states(tmp_path, capsys):
    """``bench --render`` measures nothing: figures as stored, the papers' rankings from the code."""
    rows = [{"label": label, "raw": {"modes": modes, "reverse_kl": kl}, "rejected": {}, "acceptance": []}
            for label, modes, kl in zip(study_paper002.DIGITS_LABELS, ([985.0, 997.0], [990.0, 993.0], [700.0, 820.0]),
                                        ([0.30, 0.34], [0.34, 0.36], [1.0, 1.2]))]
    stale = harness.ranking("PGMGAN > Partition GAN", "modes", [study_paper002.DIGITS_LABELS[:2]])
    table = harness.Table("paper002", "Paper 002", [("modes", "modes", False), ("reverse_kl", "reverse KL", True)],
                          rows, {}, ["a stored note"], rankings=[stale])
    timings = [{"run": rows[0]["label"], "seed": 0, "steps": 10, "seconds": 3.0}]
    runs = [{"command": "first", "sections": ["paper002"], "minutes": 2.0, "finished": None}]
    report_writer.write_report(str(tmp_path), harness.PROFILES["quick"], [table], FAKE_SPEED, timings, runs)
    before = json.loads((tmp_path / "benchmarks" / "results" / "results.json").read_text())
    assert "PGMGAN > Partition GAN" in (tmp_path / "BENCHMARKS.md").read_text()

    code, err = _main(capsys, "bench", "--quick", "--render", "--out", str(tmp_path))
    assert code == 0, err
    after = json.loads((tmp_path / "benchmarks" / "results" / "results.json").read_text())
    assert after["tables"][0]["rankings"] == study_paper002.rankings()
    assert after["tables"][0]["rows"] == before["tables"][0]["rows"] and after["tables"][0]["notes"] == ["a stored note"]
    assert after["speed"] == before["speed"] and after["timings"] == before["timings"]
    assert [r["command"] for r in after["runs"]] == ["first", "tfgan-mix bench --quick --render"]
    report = (tmp_path / "BENCHMARKS.md").read_text()
    assert "PGMGAN > Partition GAN" not in report and report.count("**The paper's tie holds**") == 2
    assert report.count("**The paper's ranking holds**") == 2 and "(no section measured" in report
    # It measures nothing, so it takes nothing that would.
    code, err = _main(capsys, "bench", "--render", "--only", "paper002", "--out", str(tmp_path))
    assert code == 2 and "--render measures nothing" in err


def test_weak_seeds_are_named_and_good_runs_are_not():
    rows = [{"label": "real", "reference": True, "raw": {"modes": [5.0], "high_quality": [0.99]}},
            {"label": "HMoG", "raw": {"modes": [5.0, 3.0, 5.0], "high_quality": [0.9, 0.03, 0.4]}},
            {"label": "MoG", "raw": {"modes": [5.0], "high_quality": [0.95]}}]
    note = study_paper004._weak_seeds_note(rows, 5, (0, 1, 2))
    assert "HMoG seed 1 (3 of 5 modes, 0.0300" in note and "HMoG seed 2 (5 of 5 modes, 0.4000" in note
    assert "HMoG seed 0" not in note and "MoG seed" not in note.replace("HMoG seed", "")
    assert "Every seed" in study_paper004._weak_seeds_note(rows[2:], 5, (0,))


def test_paper004_compares_mog_at_its_preset_and_at_hmogs_settings(tmp_path):
    """The MoG preset trains at another rate and length than HMoG's; the table adds MoG at HMoG's
    settings so the two gates are also compared on equal terms, and its note names both."""
    from tfgan_mix.training import presets

    bench = harness.Bench(harness.PROFILES["full"], str(tmp_path))
    runs = study_paper004._runs(bench)
    specs = {run.label: bench.spec(run, 0) for run in runs}
    hmog, mog = presets.load("hmog_gaussians5"), presets.load("mog_gaussians5")
    assert [r.label for r in runs[:2]] == ["HMoG", "MoG"] and runs[2].label.startswith("MoG at HMoG's settings")
    assert specs["MoG"].steps == mog["steps"] and specs["MoG"].options == mog["options"]
    equal = specs[runs[2].label]
    assert equal.method == "mog" and (equal.steps, equal.options) == (specs["HMoG"].steps, hmog["options"])
    note = study_paper004._settings_note(bench, runs)
    assert f"for {hmog['steps']} steps" in note and f"for {mog['steps']} steps" in note


def test_paper000_names_the_seeds_that_drew_fewer_modes():
    from tfgan_mix.benchmarks import paper000 as study_paper000

    rows = [{"label": "real", "reference": True, "raw": {"modes": [3.0], "mode_tv": [0.0]}},
            {"label": "NPGAN 2Gen gaussians3", "raw": {"modes": [2.0, 3.0, 2.0], "mode_tv": [0.2, 0.01, 0.21]}},
            {"label": "MGAN 2Gen gaussians3", "raw": {"modes": [3.0], "mode_tv": [0.1]}},
            {"label": "NPGAN 2Gen parabolas", "raw": {"uncovered": [0.9]}}]
    note = study_paper000._dropped_modes_note(rows, 3, (0, 1, 2))
    assert "NPGAN 2Gen gaussians3 seed 0 (2 of 3 modes, mode-share TV 0.2000)" in note
    assert "NPGAN 2Gen gaussians3 seed 2 (2 of 3 modes" in note and "seed 1" not in note and "MGAN" not in note
    assert "drew all 3 modes" in study_paper000._dropped_modes_note(rows[2:], 3, (0,))


def test_paper000_names_the_runs_that_keep_one_mode_per_generator_at_equal_shares():
    from tfgan_mix.benchmarks import paper000 as study_paper000

    shares = [7 / 15, 5 / 15, 3 / 15]  # equal thirds against these: TV 2/15
    rows = [{"label": "real", "reference": True, "raw": {"mode_tv": [0.0]}},
            {"label": "MGAN 3Gen gaussians3", "raw": {"mode_tv": [0.132, 0.134, 0.1342]}},
            {"label": "NPGAN 3Gen gaussians3", "raw": {"mode_tv": [0.005, 0.2, 0.005]}},
            {"label": "DeLiGAN 2Gen gaussians3", "raw": {"mode_tv": [0.1333]}},
            {"label": "DeLiGAN 3Gen parabolas", "raw": {"uncovered": [0.9]}}]
    note = study_paper000._equal_shares_note(rows, shares)
    assert "sits at 0.1333" in note and "MGAN 3Gen gaussians3 0.1334" in note
    assert "NPGAN" not in note and "DeLiGAN 2Gen" not in note  # far from equal shares; not 3 generators
    assert study_paper000._equal_shares_note(rows[2:3], shares) is None


def test_paper000_says_when_a_baseline_is_below_npgan_and_by_how_many_samples():
    from tfgan_mix.benchmarks import paper000 as study_paper000

    rows = [{"label": f"{name} 3Gen gaussians3", "raw": {"off_manifold": rates}} for name, rates in
            (("NPGAN", [0.0005, 0.0015, 0.0004]), ("MGAN", [0.0002] * 3), ("DeLiGAN", [0.0014] * 3))]
    rows.append({"label": "MGAN 2Gen gaussians3", "raw": {"off_manifold": [0.0]}})  # not a 3-generator row
    note = study_paper000._schedule_note(rows, 20000)
    assert "at or below 0.0014" in note and "NPGAN 16, MGAN 4, DeLiGAN 28" in note
    assert "0.0260" in note  # DMWGAN-PL's 3-generator figure, the paper's best baseline
    rows[0]["raw"]["off_manifold"] = [0.0001] * 3
    assert study_paper000._schedule_note(rows, 20000) is None


def test_paper003_runs_train_at_the_papers_rate_and_the_presets_under_their_own_labels(tmp_path):
    bench = harness.Bench(harness.PROFILES["full"], str(tmp_path))
    paper_runs, preset_runs = study_paper003.rate_runs()
    for paper_run in paper_runs:
        options = bench.spec(paper_run, 0).options
        assert options["g_learning_rate"] == options["d_learning_rate"] == study_paper003.PAPER_RATE, paper_run
    preset_rates = {(bench.spec(r, 0).options["g_learning_rate"], bench.spec(r, 0).options["d_learning_rate"])
                    for r in preset_runs}
    assert len(preset_rates) == 1 and study_paper003.PAPER_RATE not in next(iter(preset_rates)), preset_rates
    assert [bench.spec(r, 0).method for r in paper_runs] == ["gan", "masked_prior", "weighted_prior"]
    # Run directories and training times are keyed by label: none may be another table's (served ring8
    # trains the same presets under the base labels) or the other rate's.
    labels = [r.label for r in paper_runs + preset_runs] + [study_paper003.MASKED_AT_GENERATION]
    assert len(set(labels)) == len(labels) and not set(labels) & {r.label for r in study_paper003.BASE_RUNS}


def test_paper003_parts_note_gives_raw_and_through_the_rule_figures_or_names_a_run_without_them():
    runs, _ = study_paper003.rate_runs()

    def figures(tv, near):
        return {"mode_tv": [tv, tv], "within_3_std": [near, near]}
    rows = [{"label": runs[0].label, "raw": figures(0.15, 0.001), "rejected": {}},
            {"label": runs[1].label, "raw": figures(0.11, 0.002), "rejected": figures(0.09, 0.003)},
            {"label": runs[2].label, "raw": figures(0.08, 0.004), "rejected": figures(0.07, 0.005)}]
    text = " ".join(study_paper003._parts_note(rows, runs, "paper-rate").split())  # the note's line breaks
    assert text.startswith("At the paper's learning rate, the EMD's two parts")
    assert "TV GAN 0.1500, masked prior 0.1100 / 0.0900, weighted prior 0.0800 / 0.0700;" in text
    assert "std GAN 0.0010, masked prior 0.0020 / 0.0030, weighted prior 0.0040 / 0.0050." in text
    rows[2]["rejected"] = {}  # nothing the weighted prior's rule accepted was measured
    assert "no figures for " + runs[2].label in study_paper003._parts_note(rows, runs, "paper-rate")



def test_merged_timings_list_each_run_and_seed_once():
    """A run two sections shared was listed once per section; merging keeps one row, the last."""
    row = lambda run, seed, seconds: {"run": run, "seed": seed, "steps": 1, "seconds": seconds}  # noqa: E731
    previous = {"tables": [{"key": "paper004", "rows": [{"label": "HMoG"}]}],
                "timings": [row("GAN", 0, 5.0), row("GAN", 0, 5.0), row("HMoG", 0, 9.0)]}
    merged = report_writer.merged_timings(previous, [], [row("MoG", 0, 3.0), row("MoG", 0, 3.5)])
    assert merged == [row("GAN", 0, 5.0), row("HMoG", 0, 9.0), row("MoG", 0, 3.5)]

def test_resume_reuses_a_finished_run_with_the_same_spec_only(tmp_path):
    logs = []
    run = harness.Run("tiny gan", "gan_gaussians3", steps=2)
    first = harness.Bench(harness.PROFILES["quick"], str(tmp_path), logs.append, resume=True)
    _, losses = first.train(run, seed=0)
    model_file = tmp_path / "tiny_gan-seed0" / "model.keras"
    stamp = model_file.stat().st_mtime_ns
    again = harness.Bench(harness.PROFILES["quick"], str(tmp_path), logs.append, resume=True)
    model, reused = again.train(run, seed=0)
    assert reused == losses and model.method_name == "gan" and model_file.stat().st_mtime_ns == stamp
    assert logs[-1].startswith("  reused tiny gan (seed 0)") and again.timings[0]["seconds"] == first.timings[0]["seconds"]
    again.train(run, seed=0)  # a second section using the same run within one bench
    assert len(again.timings) == 1, "a run's training time counts once per bench"
    # Another spec (here one more step) or no --resume retrains in place.
    harness.Bench(harness.PROFILES["quick"], str(tmp_path), logs.append, resume=True).train(
        dataclasses.replace(run, steps=3), seed=0)
    assert logs[-1].startswith("  trained tiny gan (seed 0, 3 steps)")
    harness.Bench(harness.PROFILES["quick"], str(tmp_path), logs.append).train(dataclasses.replace(run, steps=3), seed=0)
    assert logs[-1].startswith("  trained tiny gan (seed 0, 3 steps)")


def test_one_bench_trains_a_spec_once_whatever_the_sections_call_it(tmp_path):
    logs = []
    bench = harness.Bench(harness.PROFILES["quick"], str(tmp_path), logs.append)  # no --resume
    run = harness.Run("tiny gan", "gan_gaussians3", steps=2)
    _, losses = bench.train(run, seed=0)
    bench.train(run, seed=0)  # the same label in a second section: loaded, not retrained
    assert logs[-1].startswith("  reused tiny gan (seed 0)")
    model, copied = bench.train(dataclasses.replace(run, label="tiny gan, served"), seed=0)
    assert logs[-1].startswith("  copied tiny gan, served (seed 0)") and copied == losses
    assert (tmp_path / "tiny_gan,_served-seed0" / "model.keras").exists() and model.method_name == "gan"
    assert [t["run"] for t in bench.timings] == ["tiny gan"], "a spec's training time counts once"
    bench.train(dataclasses.replace(run, steps=3), seed=0)  # another spec trains, over the first
    assert logs[-1].startswith("  trained tiny gan (seed 0, 3 steps)")
    bench.train(run, seed=0)  # its folder no longer holds the 2-step run: trained again, not loaded stale
    assert logs[-1].startswith("  trained tiny gan (seed 0, 2 steps)")


def test_a_new_work_folder_is_made_before_any_study_writes_into_it(tmp_path):
    work = tmp_path / "new" / "work"
    bench = harness.Bench(harness.PROFILES["quick"], str(work))
    np.save(os.path.join(bench.work_dir, "mixture.npy"), np.zeros((2, 2)))  # as served_own_data does first
    assert (work / "mixture.npy").exists()


def test_resume_needs_a_work_folder(tmp_path, capsys):
    code, err = _main(capsys, "bench", "--quick", "--resume", "--out", str(tmp_path / "out"))
    assert code == 2 and "--resume needs --work" in err


def test_torch_reference_step_updates_every_player():
    """The PyTorch NPGAN reference the speed section times: one step moves D, every generator and
    NP (both ways of writing the K generators), and an unknown way is named."""
    torch = pytest.importorskip("torch")
    from tfgan_mix.benchmarks.torch_npgan import TorchNPGAN

    for impl in ("bmm", "loop"):
        model = TorchNPGAN(3, impl, batch=16, threads=1)
        players = (model.discriminator, model.generators, model.noise_prior)
        before = [[p.detach().clone() for p in player.parameters()] for player in players]
        model.step()
        for player, old in zip(players, before):
            assert all(not torch.equal(p, q) for p, q in zip(player.parameters(), old) if p.dim() > 1)
        assert all(p.requires_grad for p in model.discriminator.parameters())  # D unfrozen again
    with pytest.raises(ValueError, match="unknown impl 'jit'"):
        TorchNPGAN(3, "jit")


def test_miss_cause_names_uncovered_modes_off_manifold_and_shared_generators():
    """The served tables' causes come from the raw samples: a mode nobody reaches, a generator
    whose samples are all off the manifold, two generators on one mode."""
    from tfgan_mix.data import load_dataset

    reference = load_dataset("gaussians3", seed=2)
    rng = np.random.default_rng(0)
    centres, std = reference.centres, 0.5 * float(np.min(reference.stds))
    on = lambda mode, n: centres[mode] + std * rng.standard_normal((n, 2))  # noqa: E731
    far = centres.mean(axis=0) + np.array([30.0, 30.0]) + rng.standard_normal((300, 2))
    samples = np.concatenate([on(0, 500), on(0, 400), on(1, 300), far])
    generators = np.repeat([0, 1, 2, 3], [500, 400, 300, 300])
    diagnosis = served_studies.generator_diagnosis(reference)(samples, generators)
    assert diagnosis["uncovered"] == [2]
    assert [(g["generator"], g["mode"]) for g in diagnosis["generators"] if g["off_manifold"] < 0.5] == [(0, 0), (1, 0), (2, 1)]
    cause = served_studies.miss_cause(diagnosis)
    assert "mode(s) 2" in cause and "G3 (0.2000 of rows, 1 off)" in cause and "mode 0: G0 (0.3333), G1 (0.2667)" in cause
    healthy = served_studies.generator_diagnosis(reference)(np.concatenate([on(0, 300), on(1, 300), on(2, 300)]),
                                                            np.repeat([0, 1, 2], 300))
    assert not healthy["uncovered"] and "every mode reached" in served_studies.miss_cause(healthy)
    # Equal generators against 7/5/3 data: the shares miss, and the cause says so per mode.
    shares = served_studies.miss_cause(healthy, ["mode_tv"])
    assert "mode 0 0.3333 vs 0.4667" in shares and "mode 2 0.3333 vs 0.2000" in shares and "every mode" not in shares
    # The table names the cause under each failing seed only.
    row = {"label": "m", "rejected": {"modes": [3, 2]}, "errors": [], "seeds": [4, 7], "diagnosis": [healthy, diagnosis]}
    table = harness.Table("t", "t", [], [row], {}, [], {"m": {"modes": [">=", 3]}})
    missed = served_studies.target_note(table)
    assert "Seed 7, raw samples: no sample on mode(s) 2" in missed and "Seed 4" not in missed


def test_step_clock_times_the_steps_and_not_the_fits_setup():
    """The npgan-against-PyTorch windows time steps only: a 0.4 s stall before the first step (as
    a fresh dataset iterator sometimes costs) stays out of the clock, a stall between steps is in."""
    class Stall(keras.callbacks.Callback):
        def __init__(self, when):
            super().__init__()
            self.when = when

        def on_train_begin(self, logs=None):
            if self.when == "setup":
                time.sleep(0.4)

        def on_train_batch_begin(self, batch, logs=None):
            if self.when == "steps" and batch == 2:
                time.sleep(0.4)

    model = tiny_model("npgan", seed=0)
    model.fit(toy_batches((2,)), steps_per_epoch=2, epochs=1, verbose=0)  # tracing
    seconds = {}
    for when in ("setup", "steps"):
        clock = _StepClock()
        model.fit(toy_batches((2,)), steps_per_epoch=4, epochs=1, verbose=0, callbacks=[Stall(when), clock])
        assert len(clock.marks) == 2
        seconds[when] = clock.seconds
    assert seconds["setup"] < 0.3 < 0.4 <= seconds["steps"]
