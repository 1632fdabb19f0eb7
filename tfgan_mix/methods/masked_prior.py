"""``masked_prior``: train on the part of the prior the discriminator scores best (paper 003).

Goerttler and Kloft 2019, "Learning a Multimodal Prior Distribution for Generative Adversarial
Nets", section 3. Every update draws a pre-sample Z = {z^(1..n)} from p_z, n > m, scores it with
the current discriminator (Eq. 2)

    s^(i) = D(G(z^(i)))

and resamples the update's m noise vectors from the masked prior's mass function (Definition 3)

    pm_masked(z) = 1 / (r n)   if z in Z and s(z) > pct_{1-r}(s^(1..n)),   0 otherwise

i.e. uniformly among the top r fraction of the pre-sample. Both the discriminator's and the
generator's updates use the resampled batch ("we ... optimize the generator and the discriminator
with a batch of resampled noise values"). Generation uses the same rule: pre-sample, keep the top
r, resample (``sample_with_prior``); the exported sampler's ``prior_mask`` rule is its per-candidate
form, accept z when s(z) >= the (1 - r) quantile of s under p_z, estimated on the pre-sample of the
last training step (scored s(z) - quantile, threshold 0: it keeps the top r under p_z). It is the
method's default rejection rule.

``weighted_prior`` (Definition 4) shares everything here but the resampling rule.

Distribution: the selection is a statistic of the *global* pre-sample. Every replica gathers the
global pre-sample (each draws its slice with the base's per-global-example noise, then
``all_gather``), scores all of it, and resamples its own rows with its slice of the global
resampling uniforms; so N replicas resample exactly the rows one device would, and the
1-vs-2-replica update is the same. The pre-sample is a fixed multiple of the batch (static shapes).

Defaults: the ring experiment of section 4.1 and Table 1: z ~ U_2(-1, 1), G 128-128 ReLU, D 128-128-128,
batch 500, pre-sample 1000, r = 0.5, WGAN with 5 critic steps, learning rate 1e-4 (Adam (0.5, 0.9):
our choice, the paper names no optimizer).
Departures (our choice): the critic is kept Lipschitz with a gradient penalty (lambda 10) rather
than weight clipping; one activation serves both networks (ReLU; the paper's critic uses tanh);
the generator's output is linear (the paper's tanh cannot reach a ring of radius 2).
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, Step, register_method
from tfgan_mix.core.base import EVALUATION_SALT, global_gather, real_part, static_batch_size


@dataclasses.dataclass
class PriorResamplingConfig(GANConfig):
    latent_dim: int = 2  # paper 003 Table 1
    noise: str = "uniform"
    generator_units: tuple = (128, 128)
    discriminator_units: tuple = (128, 128, 128)
    activation: str = "relu"
    loss: str = "wasserstein"  # "We use Wasserstein-GAN [3] with five discriminator steps"
    gradient_penalty: float = 10.0  # our choice, instead of WGAN's weight clipping
    d_steps: int = 5
    beta_2: float = 0.9  # our choice, paper silent on the optimizer: WGAN-GP's Adam (beta_1 stays 0.5)
    presample_factor: int = 2  # n = factor * m: pre-sample 1000 for a batch of 500

    def _check(self):
        super()._check()
        if int(self.presample_factor) < 1:
            raise ValueError(f"presample_factor must be >= 1, got {self.presample_factor}")
        if self.d_steps + 1 >= EVALUATION_SALT:  # salt d_steps + 1 refreshes the selection statistics
            raise ValueError(f"d_steps must be < {EVALUATION_SALT - 1} for prior resampling, got {self.d_steps}")


@dataclasses.dataclass
class MaskedPriorConfig(PriorResamplingConfig):
    mask_rate: float = 0.5  # r, section 4.1

    def _check(self):
        super()._check()
        if not 0 < self.mask_rate <= 1:
            raise ValueError(f"mask_rate must be in (0, 1], got {self.mask_rate}")


@keras.saving.register_keras_serializable(package="tfgan_mix")
class SelectionStatistics(keras.layers.Layer):
    """Non-trainable (offset, scale) of the last training pre-sample's scores, for the inference rule.

    Written in every replica with the same global value, hence ``only_first_replica``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.offset = self.add_weight(name="offset", shape=(), initializer="zeros", trainable=False,
                                      aggregation="only_first_replica")
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=False,
                                     aggregation="only_first_replica")
        self.built = True  # never called: Keras's fit would otherwise try to build the model on data


# ---------------------------------------------------------------------- pure resampling rules
def masked_resample(candidates, scores, u, rate):
    """Definition 3: draw uniformly (inverse CDF on ``u``) among the top ``rate`` fraction of
    ``candidates`` by ``scores``. (n, d), (n,), (m,) -> (m, d). ``n`` must be static."""
    k = num_kept(int(candidates.shape[0]), rate)
    top = tf.math.top_k(scores, k=k, sorted=True).indices
    pick = tf.minimum(tf.cast(tf.floor(u * k), tf.int32), k - 1)
    return tf.gather(candidates, tf.gather(top, pick))


def num_kept(n, rate):
    """r n rounded, at least one."""
    return max(1, int(round(rate * n)))


def global_presample(pre_z):
    """This replica's (B, f, d) slice of the pre-sample -> the global pre-sample (B_global f, d),
    ordered by global example as one device would draw it."""
    gathered = global_gather(pre_z)  # (B_global, f, d), static
    _, factor, dim = gathered.shape
    return tf.reshape(gathered, [gathered.shape[0] * factor, dim])


class PriorResamplingGAN(MixtureGAN):
    """One generator trained on noise resampled by the discriminator's score (paper 003, section 3).

    Subclasses give the resampling rule (``resample``), the statistics the inference rule needs
    (``selection_statistics``) and the rule itself (``selection_score``)."""

    config_class = PriorResamplingConfig
    max_generators = 1
    selection_rule = None  # name of the method's inference-time rejection rule

    def build_networks(self):
        super().build_networks()
        self.selection_stats = SelectionStatistics(name="selection_statistics")

    def training_noise_spec(self):
        c = self.config
        return {
            **super().training_noise_spec(),
            "pre_z": ((c.presample_factor, c.latent_dim), c.noise),  # n = factor * m pre-sample
            "resample_u": ((), "uniform01"),  # one draw from the restricted prior per example
        }

    # ------------------------------------------------------------------ the score, s = D(G(z)) (Eq. 2)
    def presample_scores(self, candidates):
        samples = self.generators(candidates)[:, 0]
        return tf.stop_gradient(self.discriminate(samples))

    def resample(self, candidates, scores, u):
        raise NotImplementedError

    def selection_statistics(self, scores):
        raise NotImplementedError

    def selection_score(self, scores, noise):
        raise NotImplementedError

    # ------------------------------------------------------------------ training
    def resampled(self, step):
        """The step with its z replaced by m draws from the restricted pre-sample."""
        candidates = global_presample(step.noise["pre_z"])
        z = self.resample(candidates, self.presample_scores(candidates), step.noise["resample_u"])
        return Step(step.real, {**step.noise, "z": tf.stop_gradient(z)})

    def discriminator_losses(self, step):
        return super().discriminator_losses(self.resampled(step))

    def generator_losses(self, step):
        return super().generator_losses(self.resampled(step))

    def train_step(self, data):
        # The step number as the base's draws saw it, read before the generator's update: read
        # after it inside the step, replicas under MirroredStrategy saw 2 after the first update.
        step = tf.identity(self.current_step)
        logs = super().train_step(data)
        self._refresh_statistics(static_batch_size(real_part(data)), step)
        return logs

    def _refresh_statistics(self, local_batch, step):
        """Score a fresh global pre-sample with the updated G and D and store what the inference
        rule needs (its own noise salt, so it never reuses a training draw)."""
        noise = self.draw_training_noise(local_batch, step, self.config.d_steps + 1)
        offset, scale = self.selection_statistics(self.presample_scores(global_presample(noise["pre_z"])))
        self.selection_stats.offset.assign(offset)
        self.selection_stats.scale.assign(scale)

    # ------------------------------------------------------------------ generation
    def sample_with_prior(self, num_samples, seed=0):
        """The paper's generation: pre-sample factor * num_samples z, resample num_samples of them
        by the rule, generate. Returns numpy (samples, scores of the chosen z)."""
        c = self.config
        spec = {"pre_z": ((c.presample_factor, c.latent_dim), c.noise), "u": ((), "uniform01")}
        noise = self.sample_noise(num_samples, tf.constant([seed, 1], tf.int64), spec)
        candidates = tf.reshape(noise["pre_z"], [-1, c.latent_dim])
        z = self.resample(candidates, self.presample_scores(candidates), noise["u"])
        samples = self.generators(z)[:, 0]
        return samples.numpy(), self.discriminate(samples).numpy()


@register_method("masked_prior")
class MaskedPriorGAN(PriorResamplingGAN):
    config_class = MaskedPriorConfig
    selection_rule = "prior_mask"
    rejection_rules = MixtureGAN.rejection_rules + (selection_rule,)
    default_rejection = selection_rule  # the paper generates with the same mask it trains with

    def resample(self, candidates, scores, u):
        return masked_resample(candidates, scores, u, self.config.mask_rate)

    def selection_statistics(self, scores):
        """pct_{1-r} of the pre-sample's scores: the smallest score that is kept."""
        k = num_kept(int(scores.shape[0]), self.config.mask_rate)
        return tf.reduce_min(tf.math.top_k(scores, k=k).values), tf.constant(1.0)

    def selection_score(self, scores, noise):
        """s(z) - pct_{1-r}: non-negative exactly for the z the mask keeps (threshold 0)."""
        return scores - self.selection_stats.offset

