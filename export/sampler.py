"""The sampler: a trained model's generators, inference-time routing and outlier rejection in one
graph with fixed shapes (docs/ARCHITECTURE.md, "The sampler contract").

Each input row carries ``m`` candidates' noise. All ``B*m`` candidates go through the method's
``generate`` and are scored by the rejection rule (``rules.py``); each row returns its first
accepted candidate, or its best-scoring one with ``accepted=False`` when none of the ``m`` passes.

Routing is kept under rejection: a row's generator is drawn once and only z is redrawn among its
candidates, so accepted rows keep the prior's generator shares (paper 002, Eq. 1). Where the
method draws its generator from ``u`` alone, every candidate of a row gets the row's first ``u``;
where the choice depends on z (a noise-prior network, a gate on z), a candidate counts only when
it routes to the row's first candidate's generator, which is exact rejection sampling of
p(z | G_i). A calibrated rejection also carries data regions (``strata.py``): the row's route is
then its first candidate's (generator, region) cell, and a row whose cell has no passing candidate
takes a passing one of its generator, so the generators' shares are kept and the regions' (and
the modes') shares move by no more than calibration bounds. Where one generator's samples span
every region (a soft gate's blend, a lone generator) the region alone is the route and such a row
takes any passing candidate.
One output row per input row, no loops, no data-dependent shapes:

    samples   (B, *data_shape) float32
    accepted  (B,) bool
    generator (B,) int32       which generator made the sample
    score     (B,) float32     the rule's score of the sample (higher is better)

Two entry points: ``from_seed`` (an int64 seed per row, noise drawn with stateless TF ops: same
seed, same sample) for TF Serving, and ``from_noise`` (the candidates' noise itself) for ONNX,
whose graphs cannot carry stateless random ops, so ONNX clients draw the noise themselves.
"""
import dataclasses
import json
import os

import numpy as np
import tensorflow as tf

from tfgan_mix.export import calibration, strata
from tfgan_mix.export.calibration import Calibration
from tfgan_mix.export.rules import get_rule, graph_constant

PRIOR_DRAWS = 100_000  # prior draws behind a fallback noise-side quantile (seeded: exports are reproducible)
CONSTANTS_FILE = "rejection.npz"  # a rule's array constants, next to the model card
REGIONS_ARRAY = "strata_regions"  # the strata's cell centres, in CONSTANTS_FILE


@dataclasses.dataclass(frozen=True, eq=False)
class Rejection:
    """A rule, the threshold its score must reach and the constants it bakes into the graph;
    ``how`` says where the threshold came from; ``calibration`` what target calibration found;
    ``regions`` the data cells whose shares rows keep (``strata.py``)."""

    rule: str
    threshold: float
    candidates: int
    how: str
    constants: dict = dataclasses.field(default_factory=dict)
    calibration: Calibration | None = None
    regions: np.ndarray | None = None

    def card(self):
        """The model card's ``rejection`` entry: scalars inline; arrays live in ``CONSTANTS_FILE``."""
        scalars = {k: v for k, v in self.constants.items() if np.ndim(v) == 0}
        arrays = sorted(k for k in self.constants if np.ndim(self.constants[k]) > 0)
        entry = {"rule": self.rule, "threshold": self.threshold, "threshold_from": self.how, **scalars}
        if self.regions is not None:
            entry["strata"] = {"regions": len(self.regions), "array": REGIONS_ARRAY,
                               "kept": "a row's first candidate's region is preferred among its passing "
                                       "candidates (of its generator, unless rows route by region)"}
            arrays = sorted([*arrays, REGIONS_ARRAY])
        if arrays:
            entry["constants_file"] = {"name": CONSTANTS_FILE, "arrays": arrays}
        if self.calibration is not None:
            entry["calibration"] = self.calibration.card()
        return entry

    def save_constants(self, directory):
        arrays = {k: np.asarray(v) for k, v in self.constants.items() if np.ndim(v) > 0}
        if self.regions is not None:
            arrays[REGIONS_ARRAY] = np.asarray(self.regions)
        if arrays:
            np.savez(os.path.join(directory, CONSTANTS_FILE), **arrays)

    @classmethod
    def load(cls, version_dir, card=None):
        """The rejection an exported version records (its card and constants file)."""
        if card is None:
            with open(os.path.join(version_dir, "sampler.json"), encoding="utf-8") as f:
                card = json.load(f)
        entry = dict(card["rejection"])
        constants = {k: v for k, v in entry.items()
                     if k not in ("rule", "threshold", "threshold_from", "constants_file", "calibration", "strata")}
        if "constants_file" in entry:
            with np.load(os.path.join(version_dir, entry["constants_file"]["name"])) as arrays:
                constants.update({k: arrays[k] for k in arrays.files})
        regions = constants.pop(REGIONS_ARRAY, None) if "strata" in entry else None
        return cls(entry["rule"], entry["threshold"], card["candidates"], entry["threshold_from"], constants,
                   regions=regions)


def calibrate(model, rule=None, candidates=None, real=None, threshold=None, judge=None,
              target=calibration.DEFAULT_OUTLIER_TARGET, floor=calibration.DEFAULT_ROW_ACCEPTANCE):
    """Choose the rejection for ``model``: its default rule unless given; ``candidates`` per row (by
    default 8, more for methods whose generator choice depends on z: ``default_candidates``, and,
    when calibrating, doubled up to 64 until the target holds); the rule's constants fitted on
    held-back ``real`` data; a threshold that is given, fixed by the rule's definition, calibrated
    to ``target`` against ``judge`` (an ``OutlierJudge``), or else the rule's fallback. A calibrated
    rejection carries data regions fitted on ``real`` (``strata.py``)."""
    rule = rule or model.default_rejection
    if rule not in model.rejection_rules:
        raise ValueError(f"method {model.method_name!r} has no rejection rule {rule!r}; "
                         f"choose one of {', '.join(model.rejection_rules)}")
    chosen_count = candidates is None  # export may raise it to meet the target
    if candidates is None:
        candidates = calibration.default_candidates(model, routes_by_noise(model))
    if int(candidates) < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    candidates = int(candidates)
    spec = get_rule(rule)
    if spec.needs_real and real is None:
        raise ValueError(f"rule {rule!r} needs held-back real data to fit on")
    constants = spec.fit(model, real)
    if threshold is not None:
        return Rejection(rule, float(threshold), candidates, "given", constants)
    if spec.fixed_threshold is not None:
        value, why = spec.fixed_threshold
        return Rejection(rule, float(value), candidates, why, constants)
    if judge is not None:
        target = max(target, judge.reference_rate)  # no sampler beats real data under this judge
        regions = strata.fit_regions(real) if real is not None else None
        samples, generator, scores = calibration.candidate_draws(model, spec, constants)
        by_region = routes_by_region(model, regions)
        k = model.config.num_generators
        shares_of_data = {}
        if regions is None:
            route, routes, groups = generator, k, None
        else:
            route = region_route(generator, strata.nearest_region(samples, regions).numpy(), len(regions), by_region)
            routes = len(regions) * (1 if by_region else k)
            groups = None if by_region else np.repeat(np.arange(k), len(regions))  # a cell's generator
            if by_region:  # the data's shares of its connected pieces bound how far rejection moves them
                shares_of_data = dict(data_shares=strata.region_shares(real, regions),
                                      pieces=strata.connected_pieces(real, regions))
        if chosen_count and by_region:
            candidates = calibration.matched_candidates(np.bincount(route, minlength=routes) / len(route))
        draws = (scores, judge(samples), route, routes)
        options = dict(matched=regions is not None or routes_by_noise(model), target=target, floor=floor,
                       fallback=regions is not None, groups=groups, tied=ties_choice(model), **shares_of_data)
        if chosen_count:
            candidates, found = calibration.choose_candidates_and_threshold(*draws, start=candidates, **options)
        else:
            found = calibration.choose_threshold(*draws, candidates=candidates, **options)
        bound = "" if regions is None else (
            f", the data's connected pieces' shares ({len(set(found.region_pieces))} pieces of {len(regions)} regions) "
            f"moved away from the data's by <= {calibration.MAX_SHARE_SHIFT:g} (TV, where farther than the raw "
            "model's)" if by_region else
            f", their shares moved by <= {calibration.MAX_SHARE_SHIFT:g} (TV)")
        how = (f"loosest threshold with served outliers <= {target:g} and row acceptance >= {floor:g} per "
               f"{_route_name(by_region, regions)}{bound} on {found.draws} calibration draws"
               if found.target_met else
               f"target {target:g} not reachable: {calibration.unmet_reason(found)}; fewest served outliers "
               f"({found.expected_outlier_rate:.4g}) on {found.draws} calibration draws")
        if found.off_manifold_generators:
            how += (f"; generator(s) {', '.join(map(str, found.off_manifold_generators))} on no mode (>= "
                    f"{calibration.OFF_MANIFOLD_GENERATOR:g} of their candidates outliers): not held to the floor, "
                    "their rows may go unanswered")
        return Rejection(rule, found.threshold, candidates, how, constants, found, regions)
    prior_scores = lambda: calibration.candidate_draws(  # noqa: E731 - drawn only by rules that use them
        model, spec, constants, draws=PRIOR_DRAWS, seed=12345, batch=10_000)[2]
    value, why = spec.fallback_threshold(model, constants, real, prior_scores)
    return Rejection(rule, float(value), candidates, why, constants)


def routes_by_region(model, regions):
    """Do rows keep data regions' shares (the region is the row's route, ``strata.py``)? Where one
    generator's samples span every region: blended generators (MoG, HMoG) and a lone generator.
    Had a lone generator's rows kept the generator, with the region only ordering its passing
    candidates, a threshold tight enough for the outlier target would move mass between modes
    without bound (measured: ring8 GAN, 3 seeds, mode-share TV 0.023 raw and 0.49 served)."""
    return regions is not None and (model.blended_generators or model.config.num_generators == 1)


def region_route(generator, region, num_regions, by_region):
    """A candidate's route where the sampler carries ``num_regions`` (R) data regions: its region
    when rows route by region, else its (generator, region) cell, numbered generator * R + region
    (numpy or TF). A row whose route has no passing candidate takes a passing one of its generator
    (of any, routed by region); calibration bounds the share shift this causes (routed by region:
    how far it moves the regions' shares away from the data's)."""
    return region if by_region else generator * num_regions + region


def _route_name(by_region, regions):
    return "data region" if by_region else "generator" if regions is None else "(generator, data region) cell"


def routes_by_noise(model):
    """Does the method's generator choice depend on z (so candidates are matched, not tied)?"""
    return model.config.num_generators > 1 and not ties_choice(model)


def ties_choice(model):
    """The generator is drawn from ``u`` alone: a row's candidates can share it."""
    return "u" in model.noise_spec() and not model.routing_uses_z


class Sampler(tf.Module):
    """``model`` + ``Rejection`` as a ``tf.Module`` ready for ``tf.saved_model.save`` and tf2onnx."""

    def __init__(self, model, rejection):
        super().__init__(name="sampler")
        self.model = float32_model(model)
        self.rejection = rejection
        self.rule = get_rule(rejection.rule)
        self.noise_spec = {**model.noise_spec(), **self.rule.extra_noise}
        self.candidates = rejection.candidates
        self.tie_choice = ties_choice(model)
        self.regions = rejection.regions
        self.by_region = routes_by_region(model, self.regions)

    # ------------------------------------------------------------------ signatures
    def noise_input_specs(self):
        """name -> TensorSpec of one request's candidate noise: ``(None, m, *shape)``."""
        return {
            name: tf.TensorSpec([None, self.candidates, *shape], tf.float32, name=name)
            for name, (shape, _) in self.noise_spec.items()
        }

    def seed_function(self):
        return tf.function(self.from_seed, input_signature=[tf.TensorSpec([None], tf.int64, name="seed")])

    def noise_function(self):
        """``from_noise`` with one positional tensor per noise stream, in ``noise_spec`` order."""
        names = list(self.noise_spec)
        specs = [self.noise_input_specs()[n] for n in names]
        return tf.function(lambda *tensors: self.from_noise(dict(zip(names, tensors))), input_signature=specs)

    # ------------------------------------------------------------------ the graph
    def candidate_noise(self, seed):
        """Per-row stateless noise for ``m`` candidates: row ``r`` uses ``model.sample_noise(m, [seed_r, 0])``."""
        m = self.candidates
        signature = {name: tf.TensorSpec([m, *shape], tf.float32) for name, (shape, _) in self.noise_spec.items()}
        draw = lambda s: self.model.sample_noise(m, tf.stack([s, tf.zeros([], tf.int64)]), self.noise_spec)  # noqa: E731
        return tf.map_fn(draw, tf.cast(seed, tf.int64), fn_output_signature=signature)

    def from_seed(self, seed):
        return self.from_noise(self.candidate_noise(seed))

    def from_noise(self, noise):
        m = self.candidates
        if self.tie_choice:  # the row's generator: its first candidate's u, shared by all m
            noise = {**noise, "u": tf.tile(noise["u"][:, :1], [1, m])}
        flat = {name: tf.reshape(value, [-1, *value.shape[2:]]) for name, value in noise.items()}
        samples, generator = self.model.generate(flat, training=False)
        score = tf.reshape(self.candidate_scores(flat, samples, generator), [-1, m])
        region = None if self.regions is None else tf.reshape(strata.nearest_region(samples, self.regions), [-1, m])
        generator = tf.reshape(generator, [-1, m])
        same_generator = tf.equal(generator, generator[:, :1])  # always true when the generator is tied
        passing = score >= graph_constant(self.rejection.threshold)
        if region is None:
            same_route = same_generator
            passed = passing & same_route
        else:  # the row's own region or cell if a candidate there passes, else (calibrated) its generator's
            route = region_route(generator, region, len(self.regions), self.by_region)  # whose shares rows keep
            same_route = tf.equal(route, route[:, :1])
            passed = prefer(passing & same_route, passing if self.by_region else passing & same_generator)
        accepted = tf.reduce_any(passed, axis=1)
        # First passing candidate: the count of leading failures (no argmax tie-breaking involved).
        leading_failures = tf.reduce_sum(tf.cast(tf.cumsum(tf.cast(passed, tf.int32), axis=1) == 0, tf.int32), axis=1)
        # No candidate passed: the best-scoring one of the row's own route.
        routed_score = tf.where(same_route, score, tf.fill(tf.shape(score), np.finfo(np.float32).min))
        pick = tf.where(accepted, leading_failures, tf.argmax(routed_score, axis=1, output_type=tf.int32))
        chosen = tf.one_hot(pick, m, dtype=tf.float32)  # (B, m): a selection that converts to plain ONNX ops
        samples = tf.reshape(samples, [-1, m, *samples.shape[1:]])
        weights = tf.reshape(chosen, [-1, m] + [1] * (len(samples.shape) - 2))
        return {
            "samples": tf.reduce_sum(samples * weights, axis=1),
            "accepted": accepted,
            "generator": tf.reduce_sum(generator * tf.cast(chosen, tf.int32), axis=1),
            "score": tf.reduce_sum(score * chosen, axis=1),
        }

    def candidate_scores(self, noise, samples, generator):
        """The rule's score of each candidate, (B*m,)."""
        return self.rule.score(self.model, self.rejection.constants, noise, samples, generator)


def prefer(first, otherwise):
    """Per row: the candidates ``first`` marks if it marks any, else those ``otherwise`` marks."""
    return tf.where(tf.reduce_any(first, axis=1, keepdims=True), first, otherwise)


def float32_model(model):
    """``model`` computing in float32. A model trained with mixed precision keeps float32
    variables, so a float32 copy carries its weights exactly; the sampler then runs where float16
    kernels do not (onnxruntime's CPU provider) and its interface is float32 throughout."""
    if model.config.precision == "float32":
        return model
    copy = type(model).from_config({**model.get_config(), "precision": "float32"})
    copy.set_weights(model.get_weights())
    return copy
