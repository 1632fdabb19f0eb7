"""``weighted_prior``: resample the prior in proportion to the discriminator's score (paper 003).

Goerttler and Kloft 2019, "Learning a Multimodal Prior Distribution for Generative Adversarial
Nets", section 3. As ``masked_prior`` (pre-sample n > m noise vectors, score s = D(G(z)), Eq. 2,
resample the batch both players train on), but the resampling is weighted (Definition 4):

    pm_weighted(z^(i)) = w(s^(i)),   sum_i w(s^(i)) = 1 (Eq. 11),   w increasing in s (Eq. 10),
    w(s0) / w(s1) = s0 / s1 (Eq. 7: weights proportional to the score)

Eq. 7 assumes a probability score s in (0, 1]; then w_i = s_i / sum_j s_j with s = sigmoid(logit).
The paper's ring experiment trains a WGAN, whose critic value has no fixed origin (D + c is the
same critic). Our choice, paper silent: for critic losses the score is first shifted by the
pre-sample's minimum, w_i proportional to s_i - min_j s_j, the proportional rule that is invariant
to the critic's offset and scale.

Generation uses the same rule (``sample_with_prior``). The exported sampler's ``prior_weight`` rule
is its continuous form, Definition 2, p_weighted(z) proportional to p_z(z) w(s(z)), by rejection
sampling: a candidate is accepted when u <= w(s(z)) / w_max (score w/w_max - u, threshold 0), with
u the candidate's uniform (with one generator ``u`` picks nothing else) and the weight's offset and
w_max taken from the pre-sample of the last training step. It is the method's default rule.
"""
import dataclasses

import tensorflow as tf

from tfgan_mix.core import MixtureGAN, register_method
from tfgan_mix.methods.masked_prior import PriorResamplingConfig, PriorResamplingGAN

_SIGMOID_LOSSES = ("ns", "minimax")


@dataclasses.dataclass
class WeightedPriorConfig(PriorResamplingConfig):
    pass


def score_to_raw_weight(scores, probability_score):
    """The score Eq. 7 is proportional to: sigmoid(logit) for a probability D, the critic value else."""
    return tf.sigmoid(scores) if probability_score else scores


def weight_offset(raw, probability_score):
    """0 for probability scores; the pre-sample's minimum for a critic (our choice, see module doc)."""
    return tf.constant(0.0) if probability_score else tf.reduce_min(raw)


def weighted_resample(candidates, weights, u):
    """Definition 4: draw index i with probability w_i / sum_j w_j by inverse CDF on ``u``.

    (n, d), (n,) non-negative, (m,) -> (m, d). A tiny floor makes all-equal weights uniform."""
    tiny = 1e-12
    probs = (weights + tiny) / (tf.reduce_sum(weights) + tiny * tf.cast(tf.shape(weights)[0], weights.dtype))
    cdf = tf.cumsum(probs)
    index = tf.reduce_sum(tf.cast(cdf[None, :] <= u[:, None], tf.int32), axis=1)
    return tf.gather(candidates, tf.minimum(index, tf.shape(candidates)[0] - 1))


@register_method("weighted_prior")
class WeightedPriorGAN(PriorResamplingGAN):
    config_class = WeightedPriorConfig
    selection_rule = "prior_weight"
    rejection_rules = MixtureGAN.rejection_rules + (selection_rule,)
    rejection_thresholds = {selection_rule: (0.0, "accept when u <= w(s(z)) / w_max, w_max from the last "
                                                  "training pre-sample (paper 003, Definition 2)")}
    default_rejection = selection_rule  # the paper generates with the same weighting it trains with

    @property
    def probability_score(self):
        return self.loss_family.name in _SIGMOID_LOSSES

    def selection_weights(self, scores):
        raw = score_to_raw_weight(scores, self.probability_score)
        return raw - weight_offset(raw, self.probability_score)

    def resample(self, candidates, scores, u):
        return weighted_resample(candidates, self.selection_weights(scores), u)

    def selection_statistics(self, scores):
        """(offset, w_max) of the pre-sample: the inference rule accepts with probability w / w_max."""
        raw = score_to_raw_weight(scores, self.probability_score)
        offset = weight_offset(raw, self.probability_score)
        return offset, tf.maximum(tf.reduce_max(raw - offset), 1e-12)

    def selection_score(self, scores, noise):
        """w(s(z)) / w_max - u: >= 0 with probability w / w_max (rejection sampling, threshold 0)."""
        raw = score_to_raw_weight(scores, self.probability_score)
        acceptance = tf.clip_by_value((raw - self.selection_stats.offset) / self.selection_stats.scale, 0.0, 1.0)
        return acceptance - noise["u"]
