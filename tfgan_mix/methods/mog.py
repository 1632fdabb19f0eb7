"""``mog``: flat mixture of generators (paper 004, "Hierarchical Mixtures of Generators", section III).

K linear leaves G_m(z) = W_m z + w_m0 (Eq. 7) give intermediate representations h_m; a softmax
gate on z alone weighs them, and the convex combination goes through a shared trunk B_s:

    h(z) = sum_m g_m(z) G_m(z),   g(z) = softmax(V z + v_0),   x = B_s(h(z))

The combination is soft, so the whole generator is continuous and trained end to end with the
Wasserstein loss with gradient penalty (Eq. 8 and section IV-B: Adam with amsgrad, lr 1e-4,
betas (0.5, 0.999)). The toy set-up of section IV-A: z ~ N(0, I_2), 8 generators. The paper does
not give the toy trunk: we use leaves of width 32 and a 128-128 LeakyReLU trunk.

Samples between modes come with the model's design: the output is "a convex combination of all
the generators which is then passed through B_s" (Fig. 5), "smoothly interpolating in between"
(section III), so a z whose gate is far from one-hot gets a blend of leaves. Section IV-A claims
that MoG and HMoG cover every component, each generator working in a local region of z; coverage
holds here (BENCHMARKS.md, paper 004). On our gaussians5 (std 0.1, modes 2 apart) such blends
measured mostly off the manifold: see ``hmog.py`` for the gate and the authors' toy recipe.
The gate's learning rate is not what keeps it soft. On the ``mog_gaussians5`` preset (seed 0,
3000 steps) with the gate's logits reparameterised as 16 (V z + v_0), V's initial scale divided by
16 (the same initial gate, 16 times Adam's step on the logits), the median largest gate value was
0.38, with 4 of 5 modes and 86% of samples off the manifold; the control, the same
reparameterisation with 1 in place of 16 (its initial weights drawn apart from the preset run's,
which puts 83% off the manifold), gave 0.27 (uniform: 0.125), 5 modes and 38% off (measured, not
adopted).

The ``mog_gaussians5`` preset trains at section IV-B's learning rate, 1e-4, for 9000 steps, where
HMoG's preset takes 5e-4 for 3000. Measured in one 9000-step ``fit`` (XLA, the bench's data draw,
5000 samples every 1500 steps): at 5e-4 seed 2 swung between 36% and 97% of samples off the
manifold and between 3 and 5 modes, ending at 73%; at 1e-4 every seed covered all 5 modes at every
check, seeds 1 and 2 falling steadily to 0.22 and 0.19 off the manifold and seed 0 swinging
between 0.26 and 0.47, ending at 0.40. A weight average, 2e-4, or the authors' toy loss
(non-saturating, one critic step: it drops two modes) did not do better (docs/FINDINGS.md, paper 004).

The generator reported for a sample is the leaf with the largest gate value (its "responsibility").
Every sample blends all leaves, so the exported sampler keeps the shares of data regions, not of
that leaf (export/strata.py).
"""
import dataclasses

import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, register_method
from tfgan_mix.layers import SoftmaxGate


@dataclasses.dataclass
class MoGConfig(GANConfig):
    num_generators: int = 8
    latent_dim: int = 2
    noise: str = "normal"
    generator_units: tuple = (32, 128, 128)
    shared_trunk: bool = True
    discriminator_units: tuple = (512, 256, 128)
    loss: str = "wasserstein"
    gradient_penalty: float = 10.0
    d_steps: int = 5
    amsgrad: bool = True


@register_method("mog")
class MoG(MixtureGAN):
    config_class = MoGConfig
    routing_uses_z = True  # the generator is chosen from z (the sampler matches, not ties, candidates)
    blended_generators = True  # a sample is a gate-weighted blend of all leaves (Eq. 6)

    def build_networks(self):
        super().build_networks()
        self.gate = self.make_gate()

    def make_gate(self):
        """Flat softmax gating on z (the input to gating is z only, section III)."""
        return SoftmaxGate(self.config.num_generators, hidden_units=(), name="gate")

    def noise_spec(self):
        return {"z": ((self.config.latent_dim,), self.config.noise)}

    def route(self, noise, training=False):
        return self.gate(noise["z"])

    def generate(self, noise, training=False):
        probs = self.route(noise, training)
        leaves = self.generators.heads(noise["z"])  # (B, K, h): G_m(z), Eq. 7
        mixed = tf.einsum("bk,bkh->bh", tf.cast(probs, leaves.dtype), leaves)  # Eq. 6 at the root
        return self.generators.trunk(mixed), tf.argmax(probs, axis=-1, output_type=tf.int32)
