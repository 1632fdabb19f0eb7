"""``tfgan-mix bench``: the quick profile end to end through the command line, and its parts."""
import json
import math
import re
import subprocess
import sys

import pytest

from tfgan_mix.training import bench

TABLE_TITLES = ("Paper 000, Table 1", "Paper 003", "Paper 002", "Paper 004", "Paper 001")
SAMPLING_PATHS = ("Keras (tf.function)", "SavedModel signature", "onnxruntime", "REST server", "gRPC server")


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tfgan_mix.training.cli", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=1500)


@pytest.mark.timeout(1500)  # the whole quick profile: about 6 minutes on 2 busy cores
def test_quick_bench_writes_every_table_and_measurement(tmp_path):
    result = _cli("bench", "--quick", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "out" / "BENCHMARKS.md").read_text()
    for title in TABLE_TITLES:
        assert f"## {title}" in report
    assert "profile **quick**" in report and "not results" in report
    results = json.loads((tmp_path / "out" / "benchmarks" / "results.json").read_text())
    # Every run of every table measured something, raw and through the sampler, with its rule named.
    for table in results["tables"]:
        for row in table["rows"]:
            assert not row["errors"], row["errors"]
            assert row["rule"] and 0.0 < row["acceptance"][0] <= 1.0, row["label"]
            assert row["raw"] and all(math.isfinite(v) for vs in row["raw"].values() for v in vs), row["label"]
    paper000 = next(t for t in results["tables"] if t["key"] == "paper000")
    assert len(paper000["rows"]) == 16  # 4 methods x 2 datasets x 2 and 3 generators
    speed = results["speed"]
    assert {(r["k"], r["implementation"], r["xla"]) for r in speed["generator_bank"]} == {
        (k, impl, xla) for k in bench.PROFILES["quick"].speed_ks
        for impl in ("GeneratorBank (einsum)", "Python loop over K") for xla in (False, True)}
    assert 0 < speed["training_step"]["gflops"] and 0 < speed["matmul_peak_gflops"]
    throughput = {(r["path"], r["batch"]) for r in speed["sampling"] if "samples_per_s" in r}
    assert throughput == {(p, b) for p in SAMPLING_PATHS for b in (1, 64, 4096)}
    assert all(r["p99_ms"] >= r["p50_ms"] > 0 for r in speed["sampling"] if "p50_ms" in r)
    for picture in ("generator_bank.png", "sampling.png"):
        assert (tmp_path / "out" / "benchmarks" / picture).stat().st_size > 1000
    # The report shows the measured figures, not placeholders.
    peak = re.search(r"matmul peak .*\*\*([0-9.]+) GFLOP/s\*\*", report)
    assert peak and float(peak.group(1)) == pytest.approx(speed["matmul_peak_gflops"], abs=0.06)


def test_non_empty_work_folder_is_refused_before_anything_runs(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.txt").write_text("mine")
    result = _cli("bench", "--quick", "--out", str(tmp_path / "out"), "--work", str(work))
    assert result.returncode == 2
    assert "--work" in result.stderr and "not empty" in result.stderr
    assert not (tmp_path / "out").exists() and (work / "keep.txt").read_text() == "mine"


def test_baseline_runs_keep_the_networks_and_drop_the_mixture_knobs():
    options = bench._resolved_base_options("masked_prior", {"mask_rate": 0.5, "g_learning_rate": 1e-3}, "gan")
    assert options["generator_units"] == (128, 128) and options["discriminator_units"] == (128, 128, 128)
    assert options["loss"] == "wasserstein" and options["gradient_penalty"] == 10.0 and options["d_steps"] == 5
    assert options["g_learning_rate"] == 1e-3
    assert "mask_rate" not in options and "presample_factor" not in options and "data_shape" not in options


def test_summaries_give_mean_and_sample_spread():
    assert bench.summarise([0.5]) == "0.5000"
    assert bench.summarise([1.0, 2.0, 3.0]) == "2 ± 1 (n=3)"
    assert bench.summarise([]) == "—"
