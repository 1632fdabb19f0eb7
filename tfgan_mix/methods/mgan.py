"""``mgan``: Mixture GAN (Hoang et al. 2018, "MGAN: Training GANs with multiple generators"),
as described in paper 000 (section 2, "MGAN") and paper 004 (section II-B, Eq. 4).

K generators that are "really the same network except for the first linear projection layer"
(paper 000): a GeneratorBank with ``shared_trunk=True``. Every generator gets the same z. The
discriminator has two heads on one trunk: the usual real/fake logit D, and a K-way classifier C
that learns, on fakes only, which generator made a sample. Paper 004, Eq. 4:

    min_{theta, psi} max_phi  E_x[log D(x)] + E_z[sum_i r_i log(1 - D(G_i(z)))]
                              - E_z[sum_i r_i log C_i(G_i(z))]

with r one-hot on a uniformly chosen generator. The players' losses (as in the authors' code):

    discriminator + classifier (shared trunk):  L_D = -log D(x) - log(1 - D(G_i(z))) - log C_i(G_i(z))
    generators:                                 L_G = -log D(G_i(z)) + beta * (-log C_i(G_i(z)))

so the generators are trained to be *classifiable* (the diversity term: a lower bound on the
mutual information between a sample and its generator, paper 000), with the non-saturating
adversarial term (``loss="minimax"`` gives Eq. 4's log(1 - D) literally).

Training takes the expectation over the uniform r: every z goes through all K generators and
each term is averaged over k (the authors' code feeds every generator the same z batch).
At inference one generator is drawn uniformly with the example's ``u`` (base ``generate``).

Defaults: paper 000's toy set-up (section 4.1, Table 1 "3Gen Gaussian"): 3 generators,
z ~ Uniform(-1, 1)^100, generators 200-100-20 LeakyReLU, discriminator 1000-200-100.
Paper 000 also gives its discriminator minibatch discrimination; ours has none.
"""
import dataclasses

import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, register_method


@dataclasses.dataclass
class MGANConfig(GANConfig):
    num_generators: int = 3  # paper 000, Table 1 (3Gen)
    shared_trunk: bool = True  # MGAN: generators differ only in their first layer (paper 000)
    # Diversity weight beta. Papers 000/004 are silent; 1.0 is the default of the authors' code
    # (qhoangdl/MGAN, models.py), whose CIFAR-10 script passes 0.01. Measured on the gaussians3
    # preset: with 0.125 all 3 generators sat on one mode after 1000 steps; 1.0 separates them.
    beta: float = 1.0

    def _check(self):
        super()._check()
        if self.num_generators < 2:
            raise ValueError(f"mgan needs >= 2 generators for its classifier, got {self.num_generators}")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")


def generator_cross_entropy(class_logits):
    """-log C_k(G_k(z)) for every generator k: ``(B, K, K)`` classifier logits of each generator's
    fake (axis 1: which generator made it, axis 2: the class) -> ``(B, K)``."""
    log_probs = tf.nn.log_softmax(class_logits, axis=-1)
    return -tf.linalg.diag_part(log_probs)


@register_method("mgan")
class MGAN(MixtureGAN):
    config_class = MGANConfig
    # Uses its generators equally by design (a fixed uniform prior): it cannot match unequal mode
    # weights with one generator per mode (paper 000, section 4.1's critique of MGAN).
    equal_generator_usage = True

    @property
    def discriminator_outputs(self):
        """Column 0: D's real/fake logit; columns 1..K: the classifier C's logits (shared trunk)."""
        return 1 + self.config.num_generators

    def all_fake_heads(self, noise):
        """Every generator's fake for every z through D: (adversarial logits (B, K), classifier
        logits (B, K, K))."""
        outputs = self.generators(noise["z"])  # (B, K, ...): the same z to every generator
        batch, k = tf.shape(outputs)[0], outputs.shape[1]
        flat = tf.reshape(outputs, [-1, *outputs.shape[2:]])
        logits = tf.reshape(self.discriminator_logits(flat, training=True), [batch, k, 1 + k])
        return logits[..., 0], logits[..., 1:]

    def discriminator_losses(self, step):
        real_logits = self.discriminate(step.real, training=True)
        adv, classes = self.all_fake_heads(step.noise)
        # Eq. 4, expectation over the uniform r: average the fake term over the K generators.
        terms = {
            "d_adv": tf.reduce_mean(self.loss_family.discriminator(real_logits[:, None], adv), axis=1),
            "d_cls": tf.reduce_mean(generator_cross_entropy(classes), axis=1),  # C on fakes only
        }
        return {**terms, **self.gradient_penalty_terms(step)}

    def generator_losses(self, step):
        adv, classes = self.all_fake_heads(step.noise)
        return {
            "g_adv": tf.reduce_mean(self.loss_family.generator(adv), axis=1),
            "g_cls": self.config.beta * tf.reduce_mean(generator_cross_entropy(classes), axis=1),
        }

    def classify(self, x):
        """C(x): the classifier's probabilities over the K generators, (B, K)."""
        return tf.nn.softmax(self.discriminator_logits(x)[:, 1:], axis=-1)
