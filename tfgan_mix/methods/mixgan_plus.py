"""``mixgan_plus``: MIX+GAN with a WGAN-GP base (paper 001, "Lessons Learned from the Training of
GANs on Artificial Datasets", section III-B; MIX+GAN is Arora et al. 2017).

n_G generators G_i and n_D discriminators D_j. Both players play mixed strategies with weights
w = softmax(a) over generators and v = softmax(b) over discriminators (a, b trainable logits):

    p_g(x) = sum_i w_i p_gi(x)                                                          (Eq. 4)
    D(x)   = sum_j v_j D_j(x)                                                           (Eq. 5)
    L_D = sum_j sum_i v_j w_i E_{x~P_gi}[L_D,fake(D_j(x))]                              (Eq. 6)
        + sum_j v_j E_{x~P_r}[L_D,real(D_j(x))] - (1/n_D) sum_j log v_j                  (Eq. 7)
    L_G = sum_j sum_i v_j w_i E_{x~P_gi}[L_G(D_j(x))] - (1/n_G) sum_i log w_i            (Eq. 8)

The log terms pull the weights towards uniform. With the WGAN-GP base (Eq. 3) L_D,fake(d) = d,
L_D,real(d) = -d, L_G(d) = -d. Since sum_i w_i = 1, Eqs. 6-7 equal sum_ij v_j w_i L_ij, where
L_ij is D_j's critic loss against G_i alone; we put D_j's gradient penalty on the interpolates
between real data and G_i's fakes inside L_ij (where the penalty goes is our choice, paper silent).
a belongs to the generator player, b (with every D_j) to the discriminator player.

Section IV-D: in each iteration "each generator generates n_D batches of fake data, which are
distributed to the n_D discriminators": every pair (i, j) gets its own noise, so one example
carries n_G x n_D fakes. All n_G generators run as one ``GeneratorBank`` and all n_D
discriminators as one ``DiscriminatorBank`` (stacked kernels, one einsum per layer), so nothing
loops over n_G x n_D; n_G and n_D are independent (the reference MIX+GAN code sizes v by n_G).

Inference draws the generator from w (``route`` returns softmax(a) for every z).

Defaults (sections IV-B and IV-D): 5-layer networks (3 hidden layers of 1024 LeakyReLU units),
z ~ N(0, I_1024), lambda = 10, 5 critic updates per generator update, Adam with TTUR: D 1e-4,
G 1e-5. Update order (section IV-D, "updated in the following order"): each iteration takes one
generator step (Eq. 8) and then ``d_steps`` critic steps (Eqs. 6-7), so G moves against the critics
of the previous iteration and the critics then answer the new G (``train_step``). Departure: the
paper draws a fresh real batch for each critic step; here the iteration's batch serves all of them,
as in every method of the package.
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, Step, register_method
from tfgan_mix.core.base import real_part, static_batch_size
from tfgan_mix.layers import DiscriminatorBank
from tfgan_mix.losses import entropy_regularizer, per_discriminator_gradient_penalty


@dataclasses.dataclass
class MixGANPlusConfig(GANConfig):
    num_generators: int = 3  # n_G; 3G3D is the paper's set-up for the training-set-size study (Fig. 11)
    num_discriminators: int = 3  # n_D
    latent_dim: int = 1024  # section IV-D: z has the data's dimension
    noise: str = "normal"  # section IV-D: 1024-d Gaussian input noise
    generator_units: tuple = (1024, 1024, 1024)  # section IV-B: 5 layers, 1024 units per hidden layer
    discriminator_units: tuple = (1024, 1024, 1024)
    loss: str = "wasserstein"  # section III: WGAN-GP base
    gradient_penalty: float = 10.0  # section IV-D
    d_steps: int = 5  # section IV-D
    g_learning_rate: float = 1e-5  # section IV-D: TTUR
    d_learning_rate: float = 1e-4
    beta_1: float = 0.5  # paper silent on Adam's betas; those of WGAN-GP's toy code, which it follows
    beta_2: float = 0.9

    def _check(self):
        super()._check()
        if int(self.num_discriminators) < 1:
            raise ValueError(f"num_discriminators must be >= 1, got {self.num_discriminators}")


# ---------------------------------------------------------------------- layers
@keras.saving.register_keras_serializable(package="tfgan_mix")
class MixtureWeights(keras.layers.Layer):
    """Trainable mixture weights w = softmax(a) over ``num_components`` (logits start at 0: uniform)."""

    def __init__(self, num_components, **kwargs):
        super().__init__(**kwargs)
        self.num_components = int(num_components)
        self.logits = self.add_weight(name="logits", shape=(self.num_components,), initializer="zeros")
        self.built = True

    def probs(self):
        return tf.nn.softmax(self.logits)

    def log_probs(self):
        return tf.nn.log_softmax(self.logits)

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components)
        return config


# ---------------------------------------------------------------------- the method
@register_method("mixgan_plus")
class MixGANPlus(MixtureGAN):
    config_class = MixGANPlusConfig

    def build_networks(self):
        c = self.config
        self.generators = self.make_generator_bank()
        self.generator_weights = MixtureWeights(c.num_generators, name="generator_weights")
        self.critics = DiscriminatorBank(
            c.num_discriminators, c.data_shape, units=c.discriminator_units, backbone=c.discriminator_backbone,
            conv_filters=c.discriminator_filters, activation=c.activation, learn_weights=True, name="critics")
        # A Keras model around the bank (column 0: the mixed D of Eq. 5), for tools that expect one.
        self.discriminator = keras.Sequential([keras.Input(c.data_shape), self.critics], name="discriminator")

    def discriminator_layers(self):
        # v (the bank's mixture logits) is the discriminator player's; w stays with the generators.
        return [self.discriminator]

    # ------------------------------------------------------------------ noise
    def training_noise_spec(self):
        """One z per (discriminator, generator) pair and one interpolation weight per pair."""
        c = self.config
        pairs = (c.num_discriminators, c.num_generators)
        return {"z": ((*pairs, c.latent_dim), c.noise), "gp_epsilon": (pairs, "uniform01")}

    # ------------------------------------------------------------------ routing
    def route(self, noise, training=False):
        """Inference draws G_i with probability w_i (Eq. 4): the same w for every z."""
        w = self.generator_weights.probs()
        return tf.tile(w[None, :], [tf.shape(noise["z"])[0], 1])

    # ------------------------------------------------------------------ losses
    def _pair_fakes(self, noise):
        """G_i(z_bji) for every example b and pair (i, j), laid out for the critics: ``(B * n_G, n_D, ...)``."""
        c = self.config
        z = noise["z"]  # (B, n_D, n_G, latent)
        batch = z.shape[0]
        fakes = self.generators(tf.reshape(z, [-1, c.num_generators, c.latent_dim]))  # (B n_D, n_G, ...)
        fakes = tf.reshape(fakes, [batch, c.num_discriminators, c.num_generators, *c.data_shape])
        fakes = tf.transpose(fakes, [0, 2, 1, *range(3, 3 + len(c.data_shape))])  # (B, n_G, n_D, ...)
        return tf.reshape(fakes, [batch * c.num_generators, c.num_discriminators, *c.data_shape])

    def _pair_weights(self):
        """v_j w_i as ``(1, n_G, n_D)``."""
        w = self.generator_weights.probs()
        v = self.critics.mixture_weights()
        return (w[:, None] * v[None, :])[None]

    def discriminator_losses(self, step):
        c = self.config
        batch = step.real.shape[0]
        fakes = tf.stop_gradient(self._pair_fakes(step.noise))
        fake_scores = tf.reshape(self.critics.per_discriminator(fakes), [batch, c.num_generators, -1])
        real_scores = self.critics.scores(step.real)[:, None, :]  # (B, 1, n_D)
        pair_weights = self._pair_weights()
        # Eqs. 6-7: a separable critic loss, so sum_ij v_j w_i L(real_j, fake_ij) = Eq. 6 + Eq. 7's first term.
        pair_losses = self.loss_family.discriminator(real_scores, fake_scores)
        terms = {"d_adv": tf.reduce_sum(pair_weights * pair_losses, axis=[1, 2])}
        if c.gradient_penalty > 0:
            eps = tf.transpose(step.noise["gp_epsilon"], [0, 2, 1])  # (B, n_G, n_D)
            eps = tf.reshape(eps, [-1, c.num_discriminators] + [1] * len(c.data_shape))
            real = tf.repeat(step.real[:, None], c.num_generators, axis=0)  # (B n_G, 1, ...)
            x_hat = eps * real + (1.0 - eps) * fakes
            penalty = per_discriminator_gradient_penalty(self.critics.per_discriminator, x_hat)
            penalty = tf.reshape(penalty, [batch, c.num_generators, c.num_discriminators])
            terms["d_gp"] = c.gradient_penalty * tf.reduce_sum(pair_weights * penalty, axis=[1, 2])
        terms["d_entropy"] = entropy_regularizer(self.critics.log_mixture_weights())  # Eq. 7, last term
        return terms

    # ------------------------------------------------------------------ training
    def train_step(self, data):
        """Paper 001, section IV-D: the generator step first, then ``d_steps`` critic steps.

        Noise salts as the base's (critic update k uses salt k, the generator update salt d_steps),
        so only the order of the updates differs from the shared loop."""
        real = real_part(data)
        local_batch = static_batch_size(real)
        step = tf.identity(self.current_step)  # read before the generator update moves it
        self._update("g", Step(real, self.draw_training_noise(local_batch, step, self.config.d_steps)))
        for critic_step in range(self.config.d_steps):
            self._update("d", Step(real, self.draw_training_noise(local_batch, step, critic_step)))
        return self._logs()

    def generator_losses(self, step):
        c = self.config
        batch = step.real.shape[0]
        fake_scores = self.critics.per_discriminator(self._pair_fakes(step.noise))
        fake_scores = tf.reshape(fake_scores, [batch, c.num_generators, c.num_discriminators])
        pair_losses = self.loss_family.generator(fake_scores)
        return {
            "g_adv": tf.reduce_sum(self._pair_weights() * pair_losses, axis=[1, 2]),  # Eq. 8, first term
            "g_entropy": entropy_regularizer(self.generator_weights.log_probs()),  # Eq. 8, last term
        }
