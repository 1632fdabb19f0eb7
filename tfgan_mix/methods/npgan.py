"""``npgan``: Noise-Prior GAN (paper 000, "Improving Multi-Manifold GANs with a Learned Noise Prior").

K generators G_i and a noise-prior network NP that learns p(G_i | z), so it both sets how often
each generator is used and shapes the region of noise each one receives (section 3):

    G(z) = NP(G_i | z) . G_i(z)

Training uses the soft loss of Algorithm 1: every generator sees every z and the discriminator's
outputs are mixed by the prior,

    pi_j^i = NP(z_j)_i,   D_fake = sum_i pi_j^i D(G_i(z_j)),   L = log D_real + log(1 - D_fake),

so gradients reach the generators and NP (the NP network is updated with the generators, on the
same GAN loss, through the fixed D). At inference the generator is *drawn* from NP(. | z).

Defaults follow section 4.1: z ~ Uniform(-1, 1)^100, generators 200-100-20 with LeakyReLU,
discriminator 1000-200-100. The paper does not give NP's architecture: we use an MLP of two
hidden layers of 128 units, and the non-saturating form of the loss (``loss="minimax"`` gives
Algorithm 1 literally). Minibatch discrimination is not used.
"""
import dataclasses

import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, register_method
from tfgan_mix.layers import SoftmaxGate


@dataclasses.dataclass
class NPGANConfig(GANConfig):
    num_generators: int = 3
    router_units: tuple = (128, 128)


@register_method("npgan")
class NPGAN(MixtureGAN):
    config_class = NPGANConfig

    def build_networks(self):
        super().build_networks()
        self.noise_prior = SoftmaxGate(self.config.num_generators, self.config.router_units, name="noise_prior")

    def route(self, noise, training=False):
        return self.noise_prior(noise["z"])

    def fake_logits(self, noise):
        """Algorithm 1: D's outputs on all K generators' fakes, mixed by NP(G_i | z)."""
        outputs = self.generators(noise["z"])  # (B, K, ...)
        batch, k = tf.shape(outputs)[0], outputs.shape[1]
        flat = tf.reshape(outputs, [-1, *outputs.shape[2:]])
        logits = tf.reshape(self.discriminate(flat, training=True), [batch, k])
        return self.loss_family.mix(logits, self.route(noise, training=True))
