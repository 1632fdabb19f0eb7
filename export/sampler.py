"""The sampler: a trained model's generators, inference-time routing and outlier rejection in one
graph with fixed shapes (DESIGN.md section 3).

Each input row carries ``m`` candidates' noise. All ``B*m`` candidates go through the method's
``generate`` (its routing included) and are scored by its ``rejection_score`` for the chosen rule;
each row returns its first accepted candidate, or its best-scoring one with ``accepted=False``
when none of the ``m`` passes. One output row per input row, no loops, no data-dependent shapes:

    samples   (B, *data_shape) float32
    accepted  (B,) bool
    generator (B,) int32       which generator made the sample
    score     (B,) float32     the rule's score of the sample (higher is better)

Two entry points: ``from_seed`` (an int64 seed per row, noise drawn with stateless TF ops: same
seed, same sample) for TF Serving, and ``from_noise`` (the candidates' noise itself) for ONNX,
whose graphs cannot carry stateless random ops, so ONNX clients draw the noise themselves.
"""
import dataclasses

import numpy as np
import tensorflow as tf

DEFAULT_CANDIDATES = 8
DEFAULT_REAL_QUANTILE = 0.05  # discriminator rule: reject what scores below 95% of held-back real data
# Noise-side rules (truncation, router) keep this share of prior draws: paper 004 (section IV-D)
# disregards "the least likely 25%" of z. Measured on NPGAN/gaussians3 (README): off-manifold
# 0.0036 -> 0.0006 with mode proportions unchanged; 8 candidates keep row acceptance ~1 - 0.25**8.
DEFAULT_KEEP = 0.75
PRIOR_DRAWS = 100_000  # prior draws behind a noise-side quantile (seeded: exports are reproducible)
ACCEPT_ALL = float(np.finfo(np.float32).min)


# Discriminator rejection sampling (Azadi et al. 2019): a rule of the sampler, so every method
# with a discriminator has it. Burn-in size and the percentile that sets gamma follow the paper.
DRS_BURN_IN = 10_000
DRS_PERCENTILE = 80  # gamma: this percentile of F over the burn-in (the paper's "dynamic" gamma)
DRS_EPSILON = 1e-6
SAMPLER_RULES = ("drs",)


@dataclasses.dataclass(frozen=True)
class Rejection:
    """A rule and the threshold its score must reach; ``how`` says where the threshold came from;
    ``params`` holds a rule's own constants (DRS: the burn-in max logit and gamma)."""

    rule: str
    threshold: float
    candidates: int
    how: str
    params: tuple = ()  # (name, value) pairs: hashable, and written to the model card as a dict

    @classmethod
    def from_card(cls, card):
        """The rejection a model card (``sampler.json``) records."""
        rule = card["rejection"]
        params = tuple((k, v) for k, v in rule.items() if k not in ("rule", "threshold", "threshold_from"))
        return cls(rule["rule"], rule["threshold"], card["candidates"], rule["threshold_from"], params)


def calibrate(model, rule=None, candidates=DEFAULT_CANDIDATES, real=None, threshold=None,
              quantile=DEFAULT_REAL_QUANTILE, keep=DEFAULT_KEEP):
    """Choose the rejection for ``model``: its default rule unless given, and a threshold that is
    explicit or calibrated: the discriminator rule at the ``quantile`` of D's logits on held-back
    ``real`` data; the noise-side rules (truncation, router) so that a share ``keep`` of prior
    draws passes."""
    rule = rule or model.default_rejection
    if rule not in (*model.rejection_rules, *SAMPLER_RULES):
        raise ValueError(f"method {model.method_name!r} has no rejection rule {rule!r}; "
                         f"choose one of {', '.join((*model.rejection_rules, *SAMPLER_RULES))}")
    if int(candidates) < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    if rule == "none":
        return Rejection(rule, ACCEPT_ALL, int(candidates), "accepts every sample")
    if threshold is None and rule in model.rejection_thresholds:  # a method's rule with a fixed threshold
        value, how = model.rejection_thresholds[rule]
        return Rejection(rule, float(value), int(candidates), how)
    if rule == "drs":
        return calibrate_drs(model, int(candidates), 0.0 if threshold is None else float(threshold))
    if threshold is not None:
        return Rejection(rule, float(threshold), int(candidates), "given")
    if rule == "discriminator":
        if real is None:
            raise ValueError("the discriminator rule needs real data to calibrate its threshold (or --threshold)")
        logits = model.discriminate(tf.constant(real, tf.float32)).numpy()
        value = float(np.quantile(logits, quantile))
        return Rejection(rule, value, int(candidates), f"{quantile:g} quantile of D's logits on {len(real)} real examples")
    if rule in ("router", "truncation"):
        if not 0.0 < keep <= 1.0:
            raise ValueError(f"keep must be in (0, 1], got {keep}")
        value = float(np.quantile(prior_scores(model, rule), 1.0 - keep))
        return Rejection(rule, value, int(candidates), f"keeps {keep:g} of {PRIOR_DRAWS} prior draws")
    raise ValueError(f"no default threshold for rule {rule!r}; pass one")


def calibrate_drs(model, candidates, threshold=0.0, burn_in=DRS_BURN_IN, percentile=DRS_PERCENTILE):
    """DRS's constants from a burn-in of the model's own samples: D*_max, the largest logit seen,
    and gamma, the ``percentile`` of F(x) (Azadi et al. 2019, section 3.2 and Algorithm 1)."""
    logits = prior_scores(model, "discriminator", draws=burn_in)
    d_max = float(logits.max())
    gamma = float(np.percentile(drs_f(logits, d_max, 0.0), percentile))
    return Rejection("drs", threshold, candidates, f"D*_max and gamma (percentile {percentile} of F) from "
                     f"{burn_in} samples", params=(("d_max", d_max), ("gamma", gamma)))


def drs_f(logits, d_max, gamma, xp=np):
    """F(x) = D~(x) - D*_max - log(1 - exp(D~(x) - D*_max - eps)) - gamma (Azadi et al. 2019, Eq. 8).

    sigmoid(F) is the acceptance probability. A logit above the burn-in's max is clipped to it
    (accepted with the highest probability) rather than making the log undefined."""
    shifted = xp.minimum(logits - d_max, 0.0)
    return shifted - xp.log(1.0 - xp.exp(shifted - DRS_EPSILON)) - gamma


def prior_scores(model, rule, draws=PRIOR_DRAWS, seed=12345):
    """The rule's scores on ``draws`` samples of the model's own noise prior, in batches."""
    scores = []
    for start in range(0, draws, 10_000):
        noise = model.sample_noise(10_000, tf.constant([seed, start], tf.int64))
        samples = noise["z"] if rule == "truncation" else model.generate(noise)[0]  # truncation needs no samples
        scores.append(model.rejection_score(rule, noise, samples).numpy())
    return np.concatenate(scores)


class Sampler(tf.Module):
    """``model`` + ``Rejection`` as a ``tf.Module`` ready for ``tf.saved_model.save`` and tf2onnx."""

    def __init__(self, model, rejection):
        super().__init__(name="sampler")
        self.model = float32_model(model)
        self.rejection = rejection
        self.noise_spec = model.noise_spec()
        if rejection.rule == "drs":  # DRS accepts at random: one more uniform per candidate
            self.noise_spec["accept_u"] = ((), "uniform01")
        self.candidates = rejection.candidates

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
        flat = {name: tf.reshape(value, [-1, *value.shape[2:]]) for name, value in noise.items()}
        samples, generator = self.model.generate(flat, training=False)
        score = tf.reshape(self.candidate_scores(flat, samples), [-1, m])
        passed = score >= rejection_threshold(self.rejection)
        accepted = tf.reduce_any(passed, axis=1)
        # First passing candidate: the count of leading failures (no argmax tie-breaking involved).
        leading_failures = tf.reduce_sum(tf.cast(tf.cumsum(tf.cast(passed, tf.int32), axis=1) == 0, tf.int32), axis=1)
        pick = tf.where(accepted, leading_failures, tf.argmax(score, axis=1, output_type=tf.int32))
        chosen = tf.one_hot(pick, m, dtype=tf.float32)  # (B, m): a selection that converts to plain ONNX ops
        samples = tf.reshape(samples, [-1, m, *samples.shape[1:]])
        weights = tf.reshape(chosen, [-1, m] + [1] * (len(samples.shape) - 2))
        return {
            "samples": tf.reduce_sum(samples * weights, axis=1),
            "accepted": accepted,
            "generator": tf.reduce_sum(tf.reshape(generator, [-1, m]) * tf.cast(chosen, tf.int32), axis=1),
            "score": tf.reduce_sum(score * chosen, axis=1),
        }


    def candidate_scores(self, noise, samples):
        """The rule's score of each candidate; DRS's is F(x) - logit(u), which is >= 0 exactly
        when a uniform u falls below the acceptance probability sigmoid(F(x))."""
        if self.rejection.rule != "drs":
            return self.model.rejection_score(self.rejection.rule, noise, samples)
        params = dict(self.rejection.params)
        logits = self.model.rejection_score("discriminator", noise, samples)
        u = tf.clip_by_value(noise["accept_u"], 1e-7, 1.0 - 1e-7)
        return drs_f(logits, params["d_max"], params["gamma"], xp=tf.math) - (tf.math.log(u) - tf.math.log(1.0 - u))


def float32_model(model):
    """``model`` computing in float32. A model trained with mixed precision keeps float32
    variables, so a float32 copy carries its weights exactly; the sampler then runs where float16
    kernels do not (onnxruntime's CPU provider) and its interface is float32 throughout."""
    if model.config.precision == "float32":
        return model
    copy = type(model).from_config({**model.get_config(), "precision": "float32"})
    copy.set_weights(model.get_weights())
    return copy


def rejection_threshold(rejection):
    # Made inside the traced function, so it is a graph constant rather than a captured tensor,
    # which tf2onnx would turn into an extra model input.
    return tf.constant(rejection.threshold, tf.float32)
