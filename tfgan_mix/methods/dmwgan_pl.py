"""``dmwgan_pl``: disconnected-manifold WGAN with a learned prior over generators.

Khayatkhoei, Singh and Elgammal 2018, "Disconnected Manifold Learning for Generative Adversarial
Networks" (NeurIPS; arXiv 1806.00880), as compared in paper 000 (related work and Table 1).

K separate generators G_c share one noise z ~ U(-1, 1)^d; a sample comes from generator c drawn
from a learned prior r(c; zeta) = softmax(zeta). Three objectives:

1. WGAN with a one-sided gradient penalty (the critic D):
       L_D = E[D(G_c(z))] - E[D(x)] + lambda_gp E[max(0, ||grad D(x_hat)|| - 1)^2]
   with x_hat on the line between a real and a fake point.
2. Generators and encoder Q maximise a lower bound on the mutual information between the
   generator index and its samples, I(c; G_c(z)) >= E_{c~r, z}[log Q(c | G_c(z))] + H(r):
       L_G = -E[D(G_c(z))] + lambda_info E[-log Q(c | G_c(z))],    L_Q = E[-log Q(c | G_c(z))]
   so each generator makes points the others cannot be confused with. Q is a small head on the
   critic's last hidden features (the critic's own weights are not trained by L_Q).
3. The prior r is fitted to the encoder's posterior on *real* data (cross-entropy; it is not part
   of the minimax game, and gradients of the GAN loss do not reach it, since c is drawn). The
   authors' released code minimises a cross-entropy *averaged* over the K classes,
       L_r' = -mean_{x, c}[ Q(c | x) log r(c) ] - beta_t H(r),   beta_t = beta_0 * decay^t,
   beta_0 = 1000. We write the cross-entropy summed over classes, so we minimise K L_r':
       L_r = -E_{x ~ data}[ sum_c Q(c | x) log r(c) ] - K beta_t H(r)
   (the same minimiser, and the same Adam steps up to Adam's epsilon).
   The entropy bonus keeps every generator in play early; it decays so r can then drop redundant
   generators ("inferring the necessary number of generators").

Mapping onto the two players of ``MixtureGAN``: the critic is the discriminator player; the
generators, Q and zeta form the generator player and are updated together after the critic steps
(the authors update G, Q and r together too, each with its own Adam). Adam's step does not depend
on a loss's scale, so the authors' separate prior learning rate (1e-3 vs 2e-4 for G) is kept by
parameterising r = softmax(prior_lr_scale * zeta): Adam then moves the logits prior_lr_scale times
faster. Defaults follow the authors' released code where the paper is silent (Adam betas (0.5, 0.5),
learning rate 2e-4, 5 critic steps, lambda_gp 10, lambda_info 1, entropy weight beta_0 = 1000 with
decay 0.999 per generator step against the class-averaged cross-entropy, i.e. 1000 K against our
class-summed one).
Batch norm in Q is left out (statistics over the local batch would differ across replicas).
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, register_method
from tfgan_mix.layers.activations import get_activation
from tfgan_mix.losses import entropy_from_log_probs as entropy
from tfgan_mix.losses import interpolate_gradient_norms


@dataclasses.dataclass
class DMWGANPLConfig(GANConfig):
    num_generators: int = 10  # authors' code; paper 000 compares with 3 (see the preset)
    loss: str = "wasserstein"
    gradient_penalty: float = 10.0  # one-sided, see one_sided_gradient_penalty
    d_steps: int = 5
    g_learning_rate: float = 2e-4
    d_learning_rate: float = 2e-4
    beta_2: float = 0.5
    info_weight: float = 1.0  # lambda_info
    encoder_units: tuple = (128,)  # Q's hidden layers on top of the critic's features
    prior_lr_scale: float = 5.0  # 1e-3 / 2e-4: the authors' prior vs generator learning rates
    prior_entropy_weight: float = 1000.0  # beta_0 against the class-averaged cross-entropy (authors' code)
    prior_entropy_decay: float = 0.999  # beta_t = beta_0 * decay^t, t = generator steps

    def _check(self):
        super()._check()
        if self.info_weight < 0 or self.prior_entropy_weight < 0 or self.prior_lr_scale <= 0:
            raise ValueError("dmwgan_pl needs info_weight >= 0, prior_entropy_weight >= 0, prior_lr_scale > 0")
        if not 0 < self.prior_entropy_decay <= 1:
            raise ValueError(f"prior_entropy_decay must be in (0, 1], got {self.prior_entropy_decay}")


@keras.saving.register_keras_serializable(package="tfgan_mix")
class GeneratorPrior(keras.layers.Layer):
    """r(c) = softmax(scale * zeta) over K generators, independent of z; zeta starts at 0 (uniform)."""

    def __init__(self, num_generators, scale=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")  # probabilities in float32 under mixed precision
        super().__init__(**kwargs)
        self.num_generators = int(num_generators)
        self.scale = float(scale)
        self.zeta = self.add_weight(name="zeta", shape=(self.num_generators,), initializer="zeros")

    def log_probs(self):
        return tf.nn.log_softmax(self.scale * self.zeta)

    def call(self, z):
        """r broadcast to the batch: (B, K)."""
        return tf.zeros([tf.shape(z)[0], 1]) + tf.exp(self.log_probs())[None, :]

    def get_config(self):
        config = super().get_config()
        config.update(num_generators=self.num_generators, scale=self.scale)
        return config


def one_sided_gradient_penalty(critic, real, fake, epsilon):
    """max(0, ||grad_x D(x_hat)||_2 - 1)^2 per example, x_hat = eps x + (1 - eps) x_fake.

    The one-sided penalty of Gulrajani et al. 2017 (section 4, footnote) that DMWGAN-PL's released
    code uses: only gradients steeper than 1 are penalised. ``epsilon``: (B,) in [0, 1].
    """
    return tf.square(tf.nn.relu(interpolate_gradient_norms(critic, real, fake, epsilon) - 1.0))


def prior_cross_entropy(posterior, log_prior):
    """-sum_c Q(c | x) log r(c) per real example: (B, K), (K,) -> (B,)."""
    return -tf.reduce_sum(posterior * log_prior[None, :], axis=-1)


def prior_entropy_bonus(log_prior, weight):
    """-K beta_t H(r): the authors' -beta_t H(r) against a class-averaged cross-entropy, multiplied by
    K because ``prior_cross_entropy`` sums over the K classes (see the module docstring)."""
    return -float(log_prior.shape[-1]) * weight * entropy(log_prior)


@register_method("dmwgan_pl")
class DMWGANPL(MixtureGAN):
    config_class = DMWGANPLConfig

    def build_networks(self):
        super().build_networks()
        c = self.config
        self.prior = GeneratorPrior(c.num_generators, c.prior_lr_scale, name="generator_prior")
        self._encoder_act = get_activation(c.activation)
        self.encoder_hidden = [keras.layers.Dense(u, name=f"encoder_hidden{i}") for i, u in enumerate(c.encoder_units)]
        # float32 logits under mixed precision, as the critic's (the cross-entropies need the range)
        self.encoder_out = keras.layers.Dense(c.num_generators, name="encoder_logits", dtype="float32")

    # ------------------------------------------------------------------ networks
    def route(self, noise, training=False):
        """r(c): the learned prior, the same for every z."""
        return self.prior(noise["z"])

    def encoder_logits(self, x, training=False):
        """Q(c | x) as logits, (B, K), from the critic's features."""
        h = self.discriminator_features(x, training)  # the critic's last hidden layer
        for layer in self.encoder_hidden:
            h = self._encoder_act(layer(h))
        return self.encoder_out(h)

    # ------------------------------------------------------------------ losses
    def discriminator_losses(self, step):
        c = self.config
        fake, _ = self.generate(step.noise, training=True)
        fake = tf.stop_gradient(fake)
        critic = lambda x: self.discriminate(x, training=True)  # noqa: E731
        terms = {"d_adv": self.loss_family.discriminator(critic(step.real), critic(fake))}
        if c.gradient_penalty > 0:
            terms["d_gp"] = c.gradient_penalty * one_sided_gradient_penalty(
                critic, step.real, fake, step.noise["gp_epsilon"])
        return terms

    def generator_losses(self, step):
        c = self.config
        fake, index = self.generate(step.noise, training=True)
        terms = {"g_adv": self.loss_family.generator(self.discriminate(fake, training=True))}
        # 2. MI lower bound: trains the generators and Q (the critic's weights belong to the other player).
        info = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=index, logits=self.encoder_logits(fake, True))
        terms["g_info"] = c.info_weight * info
        # 3. Prior: fit r to Q's posterior on real data; Q itself is not trained by this term.
        posterior = tf.stop_gradient(tf.nn.softmax(self.encoder_logits(step.real, True)))
        log_prior = self.prior.log_probs()
        terms["g_prior"] = prior_cross_entropy(posterior, log_prior)
        if c.prior_entropy_weight > 0:
            terms["g_prior_entropy"] = prior_entropy_bonus(log_prior, self._entropy_weight())
        return terms

    def _entropy_weight(self):
        """beta_t = beta_0 * decay^t over generator steps (t = 0 before compile)."""
        c = self.config
        t = tf.cast(self.current_step, tf.float32)
        return c.prior_entropy_weight * tf.pow(tf.constant(c.prior_entropy_decay, tf.float32), t)
