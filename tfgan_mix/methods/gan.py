"""``gan``: one generator, the non-saturating loss.

Goodfellow et al. 2014, "Generative Adversarial Nets", Eq. 1, with the generator maximising
log D(G(z)) instead of minimising log(1 - D(G(z))) (section 3). The baseline every mixture is
compared with: a single continuous generator has to bridge the gaps between disconnected modes.
"""
import dataclasses

from tfgan_mix.core import GANConfig, MixtureGAN, register_method


@dataclasses.dataclass
class GANMethodConfig(GANConfig):
    loss: str = "ns"


@register_method("gan")
class GAN(MixtureGAN):
    config_class = GANMethodConfig
    max_generators = 1
