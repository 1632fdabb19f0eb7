"""``madgan``: Multi-Agent Diverse GAN (Ghosh et al. 2018), as in paper 004, section II-A.

A shared block B_s turns z into an intermediate representation h, and K generators G_i map h to
samples (paper 004, Fig. 1: the generators share their *early* layers). The discriminator is a
(K+1)-way softmax classifier: class 0 is "real", class i is "made by generator i". Paper 004:

    D:    max_phi   E_x[log D_0(x)] + E_z[sum_i r_i log D_i(G_i(z))]          (Eq. 2)
    G_i:  min_theta E_z[log(1 - D_0(G_i(z)))]                                  (Eq. 3)

r_i is 1 for the generator that processes z. To tell the generators apart D must push them to
different modes, which is where the diversity comes from.

D_0 = softmax(l)_0, so the logit of "real" is a = l_0 - logsumexp(l_1..l_K), and
log(1 - D_0) = -softplus(a): Eq. 3 is the ``minimax`` loss family on a; the default ``ns``
minimises -log D_0 = softplus(-a) instead (Goodfellow et al.'s non-saturating form). ``discriminate``
returns a, so the base's discriminator rejection rule scores "how real" a sample is.

Training takes the expectation over the uniform r: every z goes through all K generators and the
fake terms are averaged over k (each generator gets a gradient every step). At inference one
generator is drawn uniformly with the example's ``u`` (base ``generate``).

Defaults: paper 004's toy set-up (section IV-A and IV-B): 8 generators, z ~ N(0, I_2), the
likelihood-based loss, Adam (amsgrad) lr 1e-4, betas (0.5, 0.999). The paper gives no toy
architecture: B_s = 128-128 LeakyReLU, then per generator 128 -> 32 -> output (our choice).
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, choose_from_uniform, register_method, select_generator
from tfgan_mix.layers import GeneratorBank, get_activation


@dataclasses.dataclass
class MADGANConfig(GANConfig):
    num_generators: int = 8  # paper 004, section IV-A
    latent_dim: int = 2  # paper 004, section IV-A
    noise: str = "normal"  # paper 004, section IV-A
    shared_units: tuple = (128, 128)  # B_s widths; our choice, paper silent
    generator_units: tuple = (32,)  # each G_i after B_s; our choice, paper silent
    discriminator_units: tuple = (512, 256, 128)  # our choice, paper silent (as mog's)
    amsgrad: bool = True  # paper 004, section IV-B

    def _check(self):
        super()._check()
        if self.loss not in ("ns", "minimax"):
            # Paper 004, section IV-B: a Wasserstein critic does not apply, D must be a classifier.
            raise ValueError(
                f"madgan's discriminator is a (K+1)-way classifier: loss must be 'ns' or 'minimax', got {self.loss!r}"
            )
        if self.num_generators < 2:
            raise ValueError(f"madgan needs >= 2 generators, got {self.num_generators}")


def real_logit(logits):
    """The logit of D_0 from (..., K+1) class logits: log D_0 - log(1 - D_0) = l_0 - logsumexp(l_1..K)."""
    return logits[..., 0] - tf.reduce_logsumexp(logits[..., 1:], axis=-1)


def madgan_discriminator_loss(real_logits, fake_logits):
    """Eq. 2, negated, per example and averaged over the uniform r:

        -log D_0(x) - (1/K) sum_i log D_i(G_i(z))

    ``real_logits``: (B, K+1); ``fake_logits``: (B, K, K+1), fake_logits[:, i] is D on G_i(z)."""
    real_term = -tf.nn.log_softmax(real_logits, axis=-1)[:, 0]
    fake_log_probs = tf.nn.log_softmax(fake_logits, axis=-1)[..., 1:]  # (B, K, K): class i = generator i
    fake_term = -tf.reduce_mean(tf.linalg.diag_part(fake_log_probs), axis=-1)
    return real_term + fake_term


@register_method("madgan")
class MADGAN(MixtureGAN):
    config_class = MADGANConfig
    # Uses its generators equally by design (a fixed uniform prior): it cannot match unequal mode
    # weights with one generator per mode (paper 000, section 4.1's critique of MGAN).
    equal_generator_usage = True

    @property
    def discriminator_outputs(self):
        """K+1 softmax logits: class 0 real, class i generator i."""
        return 1 + self.config.num_generators

    def build_networks(self):
        c = self.config
        self.shared_block = [keras.layers.Dense(u, name=f"shared{i}") for i, u in enumerate(c.shared_units)]
        width = c.shared_units[-1] if c.shared_units else c.latent_dim
        self.generators = GeneratorBank(
            num_generators=c.num_generators,
            output_shape=c.data_shape,
            units=c.generator_units,
            backbone=c.generator_backbone,
            conv_filters=c.generator_filters,
            shared_trunk=c.shared_trunk,
            activation=c.activation,
            output_activation=c.output_activation,
            name="generators",
        )
        self.generators.build((None, width))
        self.discriminator = self.make_discriminator()

    def shared(self, z):
        """B_s(z): the representation every generator starts from."""
        act = get_activation(self.config.activation)
        h = z
        for layer in self.shared_block:
            h = act(layer(h))
        return h

    def all_outputs(self, noise):
        """Every generator's sample for every z: (B, K, ...)."""
        return self.generators(self.shared(noise["z"]))

    def generate(self, noise, training=False):
        index = choose_from_uniform(self.route(noise, training), noise["u"])
        return select_generator(self.all_outputs(noise), index), index

    def discriminate(self, x, training=False):
        return real_logit(self.discriminator_logits(x, training))

    def fake_class_logits(self, noise):
        """D's K+1 logits on every generator's fake: (B, K, K+1)."""
        outputs = self.all_outputs(noise)
        batch, k = tf.shape(outputs)[0], outputs.shape[1]
        flat = tf.reshape(outputs, [-1, *outputs.shape[2:]])
        return tf.reshape(self.discriminator_logits(flat, training=True), [batch, k, k + 1])

    def fake_logits(self, noise):
        """D_0's logit on every generator's fake, (B, K)."""
        return real_logit(self.fake_class_logits(noise))

    def discriminator_losses(self, step):
        real = self.discriminator_logits(step.real, training=True)
        terms = {"d_adv": madgan_discriminator_loss(real, self.fake_class_logits(step.noise))}
        return {**terms, **self.gradient_penalty_terms(step)}

    def generator_losses(self, step):
        # Eq. 3 (loss="minimax") or its non-saturating form, averaged over the K generators.
        return {"g_adv": tf.reduce_mean(self.loss_family.generator(self.fake_logits(step.noise)), axis=1)}
