"""``wgan-gp``: one generator, Wasserstein loss with gradient penalty.

Gulrajani et al. 2017, "Improved Training of Wasserstein GANs", Algorithm 1:
    L_D = D(x_fake) - D(x_real) + lambda (||grad D(x_hat)||_2 - 1)^2,   L_G = -D(x_fake)
with its defaults lambda = 10, n_critic = 5, Adam(alpha = 1e-4, beta_1 = 0, beta_2 = 0.9).
"""
import dataclasses

from tfgan_mix.core import GANConfig, MixtureGAN, register_method


@dataclasses.dataclass
class WGANGPConfig(GANConfig):
    loss: str = "wasserstein"
    gradient_penalty: float = 10.0
    d_steps: int = 5
    beta_1: float = 0.0
    beta_2: float = 0.9


@register_method("wgan-gp")
class WGANGP(MixtureGAN):
    config_class = WGANGPConfig
    max_generators = 1
