"""The bench's harness: profiles, runs, the ``Bench`` that trains and evaluates them, a study's
``Table``, and the helpers every study shares (``number`` for figures in text, ``note`` for the
prose in ``benchmarks/notes/``).

Runs start from the training presets (``training/presets``); a profile scales their step budgets
and picks seeds. Every seed is fixed, so a rerun repeats the figures up to thread scheduling.
"""
import dataclasses
import functools
import json
import os
import re
import shutil
import time

import numpy as np
import tensorflow as tf

from tfgan_mix import runs
from tfgan_mix.core import get_method
from tfgan_mix.core.base import GANConfig
from tfgan_mix.data import load_dataset
from tfgan_mix.export import client, writer
from tfgan_mix.export.calibration import CALIBRATION_JUDGES, OutlierJudge
from tfgan_mix.export.sampler import Sampler, calibrate, float32_model
from tfgan_mix.training import presets
from tfgan_mix.training.train import TrainSpec, train

NOTES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "notes")


@dataclasses.dataclass(frozen=True)
class Profile:
    name: str
    step_scale: float  # fraction of each preset's step budget
    seeds: tuple  # seeds of the studies whose papers report a spread over runs
    samples: int  # generated samples per evaluation
    axes_steps: int  # paper 001 runs (1024-wide nets: far slower per step than the 2-D toys)
    axes_units: tuple
    axes_seeds: tuple  # paper 001 runs (the slowest toys: 1024-d)
    judge_steps: int  # Judge / independent critic training steps (paper 001: 100,000)
    judge_points: int  # points per distribution for the Judge and critic (paper 001: 25,600)
    digits_steps: int
    digits_seeds: tuple  # paper 002's stacked_digits runs (image runs are the slowest toys)
    speed_ks: tuple
    speed_repeats: int
    gflops_width: int
    throughput_batches: tuple
    load_requests: int
    torch_ks: tuple = (3, 32)  # K of the npgan-against-PyTorch comparison
    torch_steps: int = 30  # steps per timing window of that comparison
    torch_repeats: int = 7  # interleaved timing windows per contender
    routed_ks: tuple = (1, 16, 200)  # partitions of the hard-routing comparison (paper 002 runs 200)
    candidates: int | None = None  # sampler candidates per row (None: what export picks for the method)
    served_runs: int | None = None  # runs per served-target table (None: all; the smoke profile takes one)
    emd_points: int = 2000  # real and generated points in the EMD's exact assignment (O(n^3): 2.7 s at 2000)
    jit_compile: str | bool = "auto"  # training runs' setting (auto: what `tfgan-mix train` does)


PROFILES = {
    "quick": Profile("quick", step_scale=0.02, seeds=(0,), samples=4000, axes_steps=3, axes_units=(128, 128, 128), axes_seeds=(0,),
                     judge_steps=50, judge_points=2000, digits_steps=10, digits_seeds=(0,), speed_ks=(1, 4), speed_repeats=3,
                     gflops_width=256, throughput_batches=(1, 64, 512), load_requests=5,  # 4096 rows x 41 candidates: 18 s
                     torch_ks=(3,), torch_steps=3, torch_repeats=1, routed_ks=(1, 16),
                     candidates=8,  # a smoke run: up to 64 for z-routed methods cost minutes here
                     served_runs=1, emd_points=500,
                     jit_compile=False),  # runs of a few steps: XLA's compile would be most of them
    "full": Profile("full", step_scale=1.0, seeds=(0, 1, 2), samples=20000, axes_steps=500,
                    axes_units=(256, 256, 256), axes_seeds=(0, 1, 2), judge_steps=2000, judge_points=25600, digits_steps=1000, digits_seeds=(0, 1, 2),
                    speed_ks=(1, 4, 16, 64, 200), speed_repeats=10, gflops_width=1024,
                    throughput_batches=(1, 64, 4096), load_requests=25),
}


# ---------------------------------------------------------------------- runs
@dataclasses.dataclass(frozen=True)
class Run:
    """One training run: a preset, optionally with another method, dataset or K. ``options``
    (pairs) override the preset's; a method other than the preset's keeps only the options it
    has (so a baseline gets the same networks and rates without the mixture's own knobs)."""

    label: str
    preset: str
    method: str | None = None
    data: str | None = None
    generators: int | None = None
    options: tuple = ()
    steps: int | None = None  # absolute budget (else the preset's, scaled by the profile)


class Bench:
    """Trains runs (each once per seed) and evaluates them raw and through the sampler."""

    def __init__(self, profile, work_dir, log=print, resume=False):
        self.profile = profile
        self.work_dir = work_dir
        os.makedirs(work_dir, exist_ok=True)  # `--work` may name a new folder; studies write data files into it
        self.log = log
        self.resume = resume  # reuse runs (and their exports) already finished in work_dir
        self.timings = []  # {run, seed, steps, seconds} per trained run
        self._datasets = {}
        self._finished = {}  # a spec's JSON -> the run folder this bench trained or loaded it in

    def dataset(self, name, seed=0):
        if (name, seed) not in self._datasets:
            self._datasets[name, seed] = load_dataset(name, seed=seed)
        return self._datasets[name, seed]

    def train(self, run, seed):
        """Train ``run`` for ``seed`` in ``run_dir``. A spec this bench already trained, under any
        label (paper 000's 3-generator runs are served gaussians3's), is copied there instead, its
        training time counted once; with ``resume``, a run already finished there with the same
        spec (its ``RUN_RECORD``) is loaded instead of retrained."""
        spec = self.spec(run, seed)
        steps = spec.steps
        out = self.run_dir(run, seed)
        key = json.dumps(_plain(spec), sort_keys=True)
        source = self._finished.get(key)
        record = _finished_run(out, spec) if self.resume or source == out else None
        if record is None:  # whatever ``out`` held is replaced below
            self._finished = {k: folder for k, folder in self._finished.items() if folder != out}
        if record is None and source is not None:  # trained by this bench under another label
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(source, out, ignore=shutil.ignore_patterns("exported"))
            self.log(f"  copied {run.label} (seed {seed}) from {source}, the same spec")
            return runs.load_run(out), _finished_run(out, spec)["losses"]
        if record is not None:
            self._record_time(run, seed, steps, record["seconds"])
            self._finished.setdefault(key, out)
            self.log(f"  reused {run.label} (seed {seed}) from {out}")
            return runs.load_run(out), record["losses"]
        shutil.rmtree(out, ignore_errors=True)
        start = time.perf_counter()
        model, history = train(spec, self.dataset(spec.data), out, jit_compile=self.profile.jit_compile, verbose=0)
        seconds = time.perf_counter() - start
        self._record_time(run, seed, steps, seconds)
        self.log(f"  trained {run.label} (seed {seed}, {steps} steps) in {seconds:.0f} s")
        # One epoch per run, so these are the loss terms averaged over the whole run.
        losses = {k: float(v[-1]) for k, v in history.history.items() if k != "learning_rate" and v}
        runs.write_json(os.path.join(out, RUN_RECORD), {"spec": _plain(spec), "seconds": seconds, "losses": losses})
        self._finished[key] = out
        return model, losses

    def _record_time(self, run, seed, steps, seconds):
        """One row per run directory: sections sharing a run (paper 004 and served gaussians5) reuse
        it within one bench, and its training time counts once."""
        self.timings = [t for t in self.timings if (t["run"], t["seed"]) != (run.label, seed)]
        self.timings.append({"run": run.label, "seed": seed, "steps": steps, "seconds": seconds})

    def spec(self, run, seed):
        """The training spec of ``run`` for ``seed``: its preset, overridden by the run's options."""
        preset = presets.load(run.preset)
        method = run.method or preset["method"]
        options = {**preset["options"], **dict(run.options)}
        if method != preset["method"]:
            options = _resolved_base_options(preset["method"], options, method)
        steps = run.steps or max(1, round(preset["steps"] * self.profile.step_scale))
        return TrainSpec(method=method, data=run.data or preset["data"], steps=steps,
                         num_generators=run.generators or preset["generators"], batch_size=preset["batch_size"],
                         seed=seed, options=options, epoch_steps=steps)

    def run_dir(self, run, seed):
        return os.path.join(self.work_dir, f"{run.label}-seed{seed}".replace(" ", "_").replace("/", "_"))

    def samples(self, model, data, seed):
        """(raw samples, accepted samples, acceptance, rule) for ``profile.samples`` draws; the
        rejection is fitted and calibrated as ``export`` does, on two draws of ``data`` that are
        neither the training draw nor each other."""
        n = self.profile.samples
        raw, _ = model.sample(n, seed=10_000 + seed)
        model = float32_model(model)
        judge = OutlierJudge(self.dataset(data, seed=3), CALIBRATION_JUDGES)
        rejection = calibrate(model, candidates=self.profile.candidates, real=self.dataset(data, seed=1).x,
                              judge=judge)
        sampler = Sampler(model, rejection)
        draw = tf.function(sampler.from_seed)
        kept, accepted = [], []
        for start in range(0, n, 1024):
            out = draw(tf.range(start, min(n, start + 1024), dtype=tf.int64) + 1_000_000 * (seed + 1))
            accepted.append(out["accepted"].numpy())
            kept.append(out["samples"].numpy()[accepted[-1]])
        accepted = np.concatenate(accepted)
        return raw, np.concatenate(kept), float(accepted.mean()), rejection.rule

    def evaluate(self, run, seeds, measure):
        """Train ``run`` for each seed; ``measure(samples, model)`` -> {name: number} on raw and
        accepted samples. Returns a row {label, rule, acceptance, raw: {...}, rejected: {...}}
        whose numbers are lists over seeds."""
        row = {"label": run.label, "raw": {}, "rejected": {}, "acceptance": [], "errors": [], "losses": []}
        for seed in seeds:
            try:
                model, losses = self.train(run, seed)
                raw, kept, acceptance, rule = self.samples(model, run.data or _preset_data(run.preset), seed)
                measured = {key: measure(samples, model) if len(samples) else {}
                            for key, samples in (("raw", raw), ("rejected", kept))}
            except Exception as error:  # noqa: BLE001 - one failed run is reported, not the whole bench lost
                row["errors"].append(f"seed {seed}: {type(error).__name__}: {error}")
                self.log(f"  FAILED {run.label} seed {seed}: {type(error).__name__}: {error}")
                continue
            row["rule"] = rule
            row["acceptance"].append(acceptance)
            row["losses"].append(losses)
            for key, values in measured.items():
                for name, value in values.items():
                    row[key].setdefault(name, []).append(float(value))
        return row

    def served(self, run, seeds, measure, diagnose=None):
        """Train ``run`` per seed, export it with ``tfgan-mix export``'s defaults (both formats, the
        method's default rule calibrated to the default outlier target) and draw ``profile.samples``
        rows from the exported ONNX file and from the SavedModel. Returns a row like ``evaluate``'s:
        "rejected" holds the ONNX figures, "savedmodel" the SavedModel's, "target_met" what the
        export's calibration reported."""
        row = {"label": run.label, "raw": {}, "rejected": {}, "savedmodel": {}, "acceptance": [], "errors": [],
               "losses": [], "target_met": [], "seeds": [], "diagnosis": []}
        for seed in seeds:
            try:
                model, losses = self.train(run, seed)
                raw, generators = model.sample(self.profile.samples, seed=10_000 + seed)
                start = time.perf_counter()
                base = os.path.join(self.run_dir(run, seed), "exported")
                version = os.path.join(base, "1")
                if not (self.resume and os.path.exists(os.path.join(version, writer.CARD_FILE))):
                    shutil.rmtree(base, ignore_errors=True)
                    version = writer.export_run(self.run_dir(run, seed), base)
                card = client.read_card(version)
                onnx, onnx_rate = client.served_rows(client.onnx_requester(os.path.join(version, writer.ONNX_FILE), seed),
                                               self.profile.samples)
                saved, _ = client.served_rows(client.savedmodel_requester(version, seed), self.profile.samples)
                self.log(f"  exported and sampled {run.label} (seed {seed}) in {time.perf_counter() - start:.0f} s")
                measured = {key: measure(samples, model) if len(samples) else {}
                            for key, samples in (("raw", raw), ("rejected", onnx), ("savedmodel", saved))}
            except Exception as error:  # noqa: BLE001 - one failed run is reported, not the whole bench lost
                row["errors"].append(f"seed {seed}: {type(error).__name__}: {error}")
                self.log(f"  FAILED {run.label} seed {seed}: {type(error).__name__}: {error}")
                continue
            row["rule"] = card["rejection"]["rule"]
            row["seeds"].append(seed)
            if diagnose is not None:
                row["diagnosis"].append(diagnose(np.asarray(raw), np.asarray(generators)))
            row["acceptance"].append(onnx_rate)
            row["losses"].append(losses)
            row["target_met"].append(bool((card["rejection"].get("calibration") or {}).get("target_met", True)))
            for key, values in measured.items():
                for name, value in values.items():
                    row[key].setdefault(name, []).append(float(value))
        return row

    def reference(self, label, data, measure):
        """A row for an independent draw of the real data (seed 2, as many points as the samples):
        what a perfect generator would score, so a reader can tell a metric's floor at this count."""
        draw = load_dataset(data, num_examples=self.profile.samples, seed=2).x
        measured = measure(draw, None)
        return {"label": label, "reference": True, "raw": {k: [float(v)] for k, v in measured.items()},
                "rejected": {}, "acceptance": [], "errors": [], "losses": []}


RUN_RECORD = "bench-run.json"  # what a finished bench run was trained with, how long it took, its losses


def _plain(spec):
    """A training spec as JSON would give it back (tuples as lists)."""
    return json.loads(json.dumps(dataclasses.asdict(spec), default=list))


def _finished_run(out, spec):
    """The record of a run finished in ``out`` with ``spec``, or None (absent, other spec, no model)."""
    try:
        with open(os.path.join(out, RUN_RECORD), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    finished = os.path.exists(os.path.join(out, runs.MODEL_FILE)) and record.get("spec") == _plain(spec)
    return record if finished else None


def _preset_data(preset):
    return presets.load(preset)["data"]


def _resolved_base_options(source_method, options, target_method):
    """``source_method``'s resolved options restricted to what ``target_method`` accepts, minus
    what the training spec sets itself (data shape, K, seed)."""
    config = get_method(source_method).make_config({"data_shape": (2,), **options})
    allowed = set(get_method(target_method).config_class.field_names()) & {f.name for f in dataclasses.fields(GANConfig)}
    skip = {"data_shape", "num_generators", "seed", "precision",  # set by the run itself
            "generator_backbone", "discriminator_backbone", "output_activation"}  # "auto": from the data
    return {k: v for k, v in dataclasses.asdict(config).items() if k in allowed and k not in skip}


# ---------------------------------------------------------------------- a study's table
@dataclasses.dataclass
class Table:
    key: str
    title: str
    columns: list  # (metric name, header, lower_is_better: True, False, or None for no better side)
    rows: list
    paper: dict  # label -> {metric: paper figure}
    notes: list
    targets: dict = dataclasses.field(default_factory=dict)  # label -> {metric: [">=" or "<=", value]}
    rankings: list = dataclasses.field(default_factory=list)  # the paper's orderings, see ``ranking``


def ranking(claim, metric, pairs, tie=False):
    """A paper's ordering of runs on ``metric``, for the report's verdict (``report.ranking_verdict``):
    ``claim`` in words, ``pairs`` the (better, worse) run labels it implies. With ``tie`` the paper
    measures each pair alike (the same figure within its spread), so no side is better: the claim
    holds where neither run beats the other on every seed. Plain lists and strings, so a table read
    back from results.json keeps it."""
    return {"claim": claim, "metric": metric, "pairs": [[better, worse] for better, worse in pairs], "tie": tie}


def best_of(best, others):
    """The pairs of "``best`` beats each of ``others``"."""
    return [(best, other) for other in others]


def chain(labels):
    """The pairs of an ordering, best first: each label beats the next."""
    return list(zip(labels, labels[1:]))


# ---------------------------------------------------------------------- figures and prose
def number(x):
    """A figure as the report prints it: whole numbers bare, else 4 decimals below 10, 1 above."""
    x = float(x)
    if not np.isfinite(x):
        return "inf" if x > 0 else "nan"
    if x == round(x) and abs(x) >= 1:
        return f"{x:.0f}"
    return f"{x:.4f}" if abs(x) < 10 else f"{x:.1f}"


_SECTION = re.compile(r"^## (\S+)\s*$")


@functools.lru_cache(maxsize=None)
def _note_sections(study):
    """``{key: text}`` of ``notes/<study>.md``: each ``## key`` section's lines joined by spaces
    into one paragraph (the report prints every note as one list item). Text before the first
    section and one-line HTML comments (``<!-- when this applies -->``) are not part of a note."""
    sections, key = {}, None
    with open(os.path.join(NOTES_DIR, f"{study}.md"), encoding="utf-8") as f:
        for line in f:
            match = _SECTION.match(line)
            if match:
                key = match.group(1)
                if key in sections:
                    raise ValueError(f"notes/{study}.md has two sections named {key}")
                sections[key] = []
            elif line.lstrip().startswith("<!--"):
                if not line.rstrip().endswith("-->"):
                    raise ValueError(f"notes/{study}.md: a comment must open and close on one line: {line.strip()}")
            elif key is not None and line.strip():
                sections[key].append(line.strip())
    return {key: " ".join(lines) for key, lines in sections.items()}


def note(study, key, **values):
    """The ``## key`` section of ``benchmarks/notes/<study>.md`` with its ``{placeholders}`` filled
    from ``values`` (``str.format``: ``{accuracy:.3f}`` formats there). The study's code picks
    which section applies; the words live in the Markdown file, next to the figures they explain."""
    sections = _note_sections(study)
    if key not in sections:
        raise KeyError(f"notes/{study}.md has no section {key!r} (it has {', '.join(sections)})")
    return sections[key].format(**values)
