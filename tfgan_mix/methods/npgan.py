"""``npgan``: Noise-Prior GAN (paper 000, "Improving Multi-Manifold GANs with a Learned Noise Prior").

K generators G_i and a noise-prior network NP that learns p(G_i | z), so it both sets how often
each generator is used and shapes the region of noise each one receives (section 3):

    G(z) = NP(G_i | z) . G_i(z)

Training uses the soft loss of Algorithm 1: every generator sees every z and the discriminator's
outputs are mixed by the prior,

    pi_j^i = NP(z_j)_i,   D_fake = sum_i pi_j^i D(G_i(z_j)),   L = log D_real + log(1 - D_fake).

Three players (section 3): "the generator and discriminator alternate gradient descent steps ...
We extend this to our third noise prior network NP, allowing gradient information to flow through
the fixed generators G_i and discriminator D while optimizing the GAN loss with respect to the
parameters of NP". So NP is *not* part of the generators' update: each train step runs, in turn,

    1. D (``d_steps`` times) on L, G and NP fixed;
    2. the generators on L, D and NP fixed;
    3. NP on L, D and the (just updated) G fixed, with its own Adam optimizer and fresh noise.

Algorithm 1 gives only the loss; the order above is the alternation of section 3 with NP as the
third player. At inference the generator is *drawn* from NP(. | z).

Defaults follow section 4.1: z ~ Uniform(-1, 1)^100, generators 200-100-20 with LeakyReLU,
discriminator 1000-200-100. Section 4.1 adds minibatch discrimination (Salimans et al. 2016);
it is offered (``minibatch_discrimination=True``; 5 kernels of 3 dimensions: our choice, paper
silent) but off by default: with it one run (seed 0, Adam 1e-3) left 7.7% of samples off the
manifold, and D's score of a sample then depends on the rest of its batch, which the exported
sampler's discriminator rules cannot give it. The paper does not give NP's architecture: we use an MLP of
two hidden layers of 128 units; NP's learning rate is the generators' unless set (paper silent; section
4.3 uses one Adam rate for everything). The loss is the non-saturating form (``loss="minimax"``
gives Algorithm 1 literally).

Measured on the ``npgan_gaussians3`` preset (3 generators, 3000 steps, ``tfgan-mix evaluate``,
seeds 0/1/2): with Adam at 2e-4, off-manifold rate 0.0016/0.0000/0.0008 (paper: 0.000), k-NN recall
0.96/0.88/0.95, 5-NN two-sample accuracy 0.64/0.66/0.71; with Adam at 1e-3 the generators collapse
onto narrow streaks, some beside their modes: 0.127/0.0004/0.0088 off-manifold, recall
0.64/0.74/0.72, two-sample accuracy 0.87/0.80/0.85. The paper gives Adam 1e-4 for its image runs
and no rate for the toys.
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.backbones import build_discriminator
from tfgan_mix.core import GANConfig, MixtureGAN, Step, register_method
from tfgan_mix.core.base import METHOD_SALT, per_example_total, real_part, static_batch_size
from tfgan_mix.layers import SoftmaxGate

# The base draws salts 0..d_steps (critic and generator updates) and the last one (test_step).
_NOISE_PRIOR_SALT = METHOD_SALT


@dataclasses.dataclass
class NPGANConfig(GANConfig):
    num_generators: int = 3
    router_units: tuple = (128, 128)
    minibatch_discrimination: bool = False  # section 4.1 uses it; off by default (measured, module doc)
    minibatch_kernels: int = 5  # B of Salimans et al.; our choice, paper silent
    minibatch_kernel_dim: int = 3  # C of Salimans et al.; our choice, paper silent
    noise_prior_learning_rate: float = None  # None: g_learning_rate

    def _check(self):
        super()._check()
        if self.d_steps >= _NOISE_PRIOR_SALT:
            raise ValueError(f"d_steps must be < {_NOISE_PRIOR_SALT} for npgan, got {self.d_steps}")
        if self.noise_prior_learning_rate is not None and not self.noise_prior_learning_rate > 0:
            raise ValueError(f"noise_prior_learning_rate must be > 0, got {self.noise_prior_learning_rate}")


def soft_generator_loss(loss_family, logits, prior):
    """Algorithm 1's fake term for G and NP: the player loss of D_fake = sum_i pi^i D(G_i(z)).

    ``logits`` (B, K): D's logits on every generator's fake of each z; ``prior`` (B, K): NP(z).
    For sigmoid losses the mixture is taken in probability space (``loss_family.mix``), so with
    ``minimax`` this is log(1 - sum_i pi^i sigmoid(l_i)) per example. Returns (B,).
    """
    return loss_family.generator(loss_family.mix(logits, prior))


@register_method("npgan")
class NPGAN(MixtureGAN):
    config_class = NPGANConfig
    extra_optimizers = ("np_optimizer",)  # NP's own Adam, saved with the compile config
    routing_uses_z = True  # the generator is chosen from z (the sampler matches, not ties, candidates)

    def build_networks(self):
        super().build_networks()
        self.noise_prior = SoftmaxGate(self.config.num_generators, self.config.router_units, name="noise_prior")

    def make_discriminator(self, num_outputs=None, name="discriminator"):
        c = self.config
        return build_discriminator(
            c.data_shape, backbone=c.discriminator_backbone, units=c.discriminator_units,
            conv_filters=c.discriminator_filters, activation=c.activation,
            num_outputs=num_outputs or self.discriminator_outputs,
            minibatch_discrimination=c.minibatch_discrimination, minibatch_kernels=c.minibatch_kernels,
            minibatch_kernel_dim=c.minibatch_kernel_dim, name=name,
        )

    # ------------------------------------------------------------------ players
    @property
    def noise_prior_variables(self):
        return list(self.noise_prior.trainable_variables)

    @property
    def generator_variables(self):
        # NP is its own player (section 3): the generators' update leaves it fixed.
        taken = {id(v) for v in self.discriminator_variables + self.noise_prior_variables}
        return [v for v in self.trainable_variables if id(v) not in taken]

    # ------------------------------------------------------------------ model
    def route(self, noise, training=False):
        return self.noise_prior(noise["z"])

    def mixed_logits(self, noise):
        """D's logits on all K generators' fakes of each z, (B, K), and NP(z), (B, K).

        With minibatch discrimination D sees each generator's B fakes as one minibatch, the size of
        the real one: a single batch of all B K fakes would give every fake K times the neighbours
        of a real point, which D could count instead of judging the samples."""
        outputs = self.generators(noise["z"])  # (B, K, ...)
        if self.config.minibatch_discrimination:
            logits = tf.stack([self.discriminate(outputs[:, i], training=True) for i in range(outputs.shape[1])], 1)
        else:
            batch, k = tf.shape(outputs)[0], outputs.shape[1]
            flat = tf.reshape(outputs, [-1, *outputs.shape[2:]])
            logits = tf.reshape(self.discriminate(flat, training=True), [batch, k])
        return logits, self.route(noise, training=True)

    def fake_logits(self, noise):
        """Algorithm 1: D's outputs on all K generators' fakes, mixed by NP(G_i | z)."""
        logits, prior = self.mixed_logits(noise)
        return self.loss_family.mix(logits, prior)

    def noise_prior_losses(self, step):
        """NP's loss: Algorithm 1's soft loss, the same as the generators' (paper 000, section 3)."""
        return {"np_adv": soft_generator_loss(self.loss_family, *self.mixed_logits(step.noise))}

    # ------------------------------------------------------------------ training
    def train_step(self, data):
        # The step number the base's draws use, read before its generator update moves it.
        step = tf.identity(self.current_step)
        super().train_step(data)  # D, then the generators (NP fixed)
        real = real_part(data)
        # NP on Algorithm 1's loss with D and every G_i fixed, averaged over the global batch.
        noise = self.draw_training_noise(static_batch_size(real), step, _NOISE_PRIOR_SALT)
        self.update_player("np", self.noise_prior_losses, self.noise_prior_variables, self.np_optimizer,
                           Step(real, noise))
        return self._logs()

    # ------------------------------------------------------------------ Keras plumbing
    def _build_by_tracing(self):
        super()._build_by_tracing()
        for name in ("np_loss", "np_adv"):
            self._trackers[name] = keras.metrics.Mean(name=name)

    def test_step(self, data):
        super().test_step(data)
        step = self.evaluation_step(data)
        terms = self.noise_prior_losses(step)
        self._record("np", terms, per_example_total(terms, static_batch_size(step.real)))
        return self._logs()

    def compile(self, d_optimizer=None, g_optimizer=None, np_optimizer=None, **kwargs):
        """As the base, plus NP's own optimizer: Adam at ``noise_prior_learning_rate`` (the
        generators' rate unless set) with the config's betas, unless one is given."""
        super().compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **kwargs)
        c = self.config
        rate = c.g_learning_rate if c.noise_prior_learning_rate is None else c.noise_prior_learning_rate
        self.np_optimizer = self.make_optimizer(np_optimizer, rate)
        self.np_optimizer.build(self.noise_prior_variables)
