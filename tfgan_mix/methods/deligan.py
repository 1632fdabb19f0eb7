"""``deligan``: one generator on a learned mixture-of-Gaussians latent space.

Gurumurthy, Sarvadevabhatla and Babu 2017, "DeLiGAN: Generative Adversarial Networks for Diverse
and Limited Data" (CVPR), as summarised in paper 000's related work. The latent prior is a mixture
of K Gaussians with learnable means and standard deviations, reparameterised so gradients reach them:

    p_z(z) = sum_i (1/K) N(z | mu_i, diag(sigma_i^2)),   z = mu_i + sigma_i * eps,  eps ~ N(0, I)

The component weights stay fixed and uniform (paper 000: "each Gaussian is selected with an equal
probability, and this never changes"). So that the sigma_i do not shrink toward zero (each
component reduced to a point), the generator also minimises DeLiGAN's regulariser

    L_sigma = lambda * (1/(K d)) * sum_i sum_j (1 - sigma_ij)^2

(the authors' code averages over components and latent dimensions; lambda = 0.1 on their toy).

How ``num_generators`` maps: there is ONE generator network; ``num_generators`` is K, the number of
latent mixture components, and the ``generator`` index reported for a sample is the component its
z came from (what the scatter-by-generator pictures and usage metrics should show for DeLiGAN).

Departures from the authors' code, on purpose: their released code ties component i to batch row
i (the means are a (batch, d) variable). Here the component is drawn per example from the uniform
``u`` in ``noise_spec`` (inverse CDF over the K equal weights), so any batch size works and the
exported sampler draws components exactly as training does. Paper 000 (section 4.1) feeds DeLiGAN
z ~ N(0, I_100) with the same 200-100-20 generator and 1000-200-100 discriminator as NPGAN.
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, choose_from_uniform, register_method


@dataclasses.dataclass
class DeLiGANConfig(GANConfig):
    num_generators: int = 3  # K latent components; paper 000's 3-Gaussian set-up
    noise: str = "normal"  # eps ~ N(0, I): paper 000, "DeLiGAN ... requires samples from Normal(0, 1)"
    sigma_penalty: float = 0.1  # lambda of L_sigma (authors' toy code)
    mu_init_range: float = 1.0  # mu_i ~ U(-a, a) (authors' code)
    sigma_init: float = 0.02  # authors' toy code (their MNIST code uses 0.2). Measured: with small
    # networks and 400 steps, 0.2 put two of three components on one mode in 3 of 5 seeds, 0.02 in none;
    # with paper 000's networks and 3000 steps it is the other way round (the preset sets 0.2)

    def _check(self):
        super()._check()
        if self.sigma_penalty < 0 or self.sigma_init <= 0 or self.mu_init_range < 0:
            raise ValueError("deligan needs sigma_penalty >= 0, sigma_init > 0 and mu_init_range >= 0")


@keras.saving.register_keras_serializable(package="tfgan_mix")
class LatentMixture(keras.layers.Layer):
    """K learnable diagonal Gaussians: ``(eps, component) -> mu_c + sigma_c * eps``."""

    def __init__(self, num_components, latent_dim, mu_init_range=1.0, sigma_init=0.02, **kwargs):
        kwargs.setdefault("dtype", "float32")  # the latent stays float32 under mixed precision
        super().__init__(**kwargs)
        self.num_components = int(num_components)
        self.latent_dim = int(latent_dim)
        self.mu_init_range = float(mu_init_range)
        self.sigma_init = float(sigma_init)
        shape = (self.num_components, self.latent_dim)
        self.mu = self.add_weight(
            name="mu", shape=shape,
            initializer=keras.initializers.RandomUniform(-self.mu_init_range, self.mu_init_range),
        )
        self.sigma = self.add_weight(name="sigma", shape=shape,
                                     initializer=keras.initializers.Constant(self.sigma_init))

    def call(self, eps, component):
        # A one-hot matmul rather than a gather: plain ONNX ops, and gradients reach only the
        # chosen component's mu and sigma.
        one_hot = tf.one_hot(component, self.num_components, dtype=eps.dtype)
        return tf.matmul(one_hot, self.mu) + tf.matmul(one_hot, self.sigma) * eps

    def get_config(self):
        config = super().get_config()
        config.update(num_components=self.num_components, latent_dim=self.latent_dim,
                      mu_init_range=self.mu_init_range, sigma_init=self.sigma_init)
        return config


def sigma_regulariser(sigma):
    """DeLiGAN's L_sigma without lambda: mean over components and dimensions of (1 - sigma)^2."""
    return tf.reduce_mean(tf.square(1.0 - sigma))


@register_method("deligan")
class DeLiGAN(MixtureGAN):
    config_class = DeLiGANConfig
    equal_generator_usage = True  # components are drawn uniformly and their weights never change

    def build_networks(self):
        c = self.config
        self.generators = self.make_generator_bank(num_generators=1)  # one network for every component
        self.discriminator = self.make_discriminator()
        self.latent_mixture = LatentMixture(c.num_generators, c.latent_dim, c.mu_init_range, c.sigma_init,
                                            name="latent_mixture")

    def generate(self, noise, training=False):
        """Component i ~ Uniform{1..K} by inverse CDF on ``u``; z = mu_i + sigma_i * eps; x = G(z)."""
        component = choose_from_uniform(self.route(noise, training), noise["u"])
        latent = self.latent_mixture(noise["z"], component)
        return self.generators(latent)[:, 0], component

    def generator_losses(self, step):
        terms = super().generator_losses(step)
        if self.config.sigma_penalty > 0:
            # A scalar of the parameters only: the same on every replica, broadcast per example.
            terms["g_sigma"] = self.config.sigma_penalty * sigma_regulariser(self.latent_mixture.sigma)
        return terms
