"""``megan``: Mixture of Experts GAN (Park et al. 2018), as in paper 004, section II-C.

K generators G_i each make a sample from z; a gating network looks at z *and* the generators'
first-layer activations nu_i(z) and picks exactly one of them (paper 004, Fig. 3):

    l(z)   = gate([z, nu_1(z), ..., nu_K(z)])                 gating logits, (K,)
    g_i    = -log(-log u_i),  u_i ~ Uniform(0, 1)             Gumbel noise
    y_soft = softmax((l(z) + g) / tau)
    y_hard = one_hot(argmax_i (l_i(z) + g_i))                  = a draw from softmax(l(z)) (Gumbel-max)
    y      = y_hard + y_soft - stop_gradient(y_soft)           straight-through Gumbel-softmax
    x      = sum_i y_i G_i(z)                                  forward: exactly one generator's sample

The discriminator is the usual two-class one and the adversarial objective is Eq. 1 (paper 004:
"the training objective is the same as Equation (1)"; the likelihood loss, section IV-B). The
gate is updated with the generators. MEGAN adds a load-balancing term so the gate does not
send everything to a few generators; we use the importance loss of Shazeer et al. 2017
("Outrageously large neural networks", Eq. 6-7): with q_k the gate's mean probability of generator
k over the *global* batch,

    L_balance = w * CV(q)^2 = w * (K sum_k q_k^2 - 1)          (0 when usage is uniform)

The Gumbel uniforms are part of ``noise_spec`` (``gumbel_u``, K per example), so a sample is a
deterministic function of its noise: reproducible, and the exported sampler / ONNX clients feed
them. Noise without ``gumbel_u`` (e.g. ``model(z)``) picks the gate's most probable generator.

Defaults: paper 004's toy set-up (sections IV-A, IV-B): 8 generators, z ~ N(0, I_2), Adam
(amsgrad) lr 1e-4, betas (0.5, 0.999). MEGAN's experts are whole generators (no shared trunk).
Our choices where papers 000/004 are silent: generator and gate widths, tau = 1, w = 0.1
(Shazeer et al.'s importance weight), the gate sees nu_i = act(first layer) with gradients
flowing into the generators' first layers.
"""
import dataclasses

import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, register_method, select_generator
from tfgan_mix.layers import SoftmaxGate, get_activation

_GUMBEL_EPS = 1e-6  # keeps -log(-log u) finite for u at the ends of [0, 1)


@dataclasses.dataclass
class MEGANConfig(GANConfig):
    num_generators: int = 8  # paper 004, section IV-A
    latent_dim: int = 2  # paper 004, section IV-A
    noise: str = "normal"  # paper 004, section IV-A
    generator_units: tuple = (32, 128, 128)  # our choice, paper silent
    discriminator_units: tuple = (512, 256, 128)  # our choice, paper silent (as mog's)
    router_units: tuple = (64,)  # gating network hidden widths; our choice, paper silent
    temperature: float = 1.0  # Gumbel-softmax tau; our choice, paper silent
    # w: our choice (Shazeer et al. 2017's value), papers 000/004 silent. Measured on gaussians3 with
    # 3 generators: w = 0.01 let the gate collapse onto one generator within 400 steps.
    load_balance: float = 0.1
    amsgrad: bool = True  # paper 004, section IV-B

    def _check(self):
        super()._check()
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.load_balance < 0:
            raise ValueError(f"load_balance must be >= 0, got {self.load_balance}")


def gumbel(u):
    """Standard Gumbel noise from uniforms in [0, 1): -log(-log u)."""
    u = tf.clip_by_value(u, _GUMBEL_EPS, 1.0 - _GUMBEL_EPS)
    return -tf.math.log(-tf.math.log(u))


def straight_through_gumbel_softmax(logits, u, temperature):
    """(y, index): y is one-hot in the forward pass with the gradient of softmax((l + g) / tau);
    index = argmax(l + g), a draw from softmax(l) (Jang et al. 2017, section 2.2)."""
    perturbed = logits + gumbel(u)
    y_soft = tf.nn.softmax(perturbed / temperature, axis=-1)
    index = tf.argmax(perturbed, axis=-1, output_type=tf.int32)
    y_hard = tf.one_hot(index, logits.shape[-1], dtype=logits.dtype)
    return y_hard + y_soft - tf.stop_gradient(y_soft), index


def importance_cv_squared(mean_probs):
    """CV^2 of the per-generator importance (Shazeer et al. 2017, Eq. 6), from q = the gate's mean
    probabilities over the batch, (K,): var(q) / mean(q)^2 = K sum_k q_k^2 - 1 (as sum_k q_k = 1)."""
    k = tf.cast(tf.shape(mean_probs)[-1], mean_probs.dtype)
    return k * tf.reduce_sum(tf.square(mean_probs)) - 1.0


@register_method("megan")
class MEGAN(MixtureGAN):
    config_class = MEGANConfig
    routing_uses_z = True  # the generator is chosen from z (the sampler matches, not ties, candidates)
    # Uses its generators (about) equally by design (the load-balancing term evens out the gate's
    # usage): it cannot match unequal mode weights with one generator per mode (paper 000, 4.1).
    equal_generator_usage = True

    def build_networks(self):
        super().build_networks()
        c = self.config
        self.gate = SoftmaxGate(c.num_generators, c.router_units, name="gate")
        # Built by a call (we later use only gate.logits), so Keras sees every layer built and
        # fit does not try to build the model on a data batch.
        self.gate(tf.zeros([1, c.latent_dim + c.num_generators * self.generators.head_width]))

    def noise_spec(self):
        k = self.config.num_generators
        return {"z": ((self.config.latent_dim,), self.config.noise), "gumbel_u": ((k,), "uniform01")}

    def gate_logits(self, z, first_layer):
        """The gating network on [z, nu_1(z), ..., nu_K(z)]; ``first_layer`` is (B, K, h)."""
        nu = tf.cast(get_activation(self.config.activation)(first_layer), z.dtype)  # the gate runs in float32
        features = tf.concat([z, tf.reshape(nu, [-1, nu.shape[1] * nu.shape[2]])], axis=-1)
        return self.gate.logits(features)

    def route(self, noise, training=False):
        z = noise["z"]
        return tf.nn.softmax(self.gate_logits(z, self.generators.heads(z)), axis=-1)

    def generate(self, noise, training=False):
        z = noise["z"]
        first_layer = self.generators.heads(z)  # (B, K, h): nu_i(z) before the activation
        outputs = self.generators.trunk(first_layer, per_generator_axis=True)  # (B, K, ...)
        logits = self.gate_logits(z, first_layer)
        u = noise.get("gumbel_u")
        if u is None:
            u = tf.fill(tf.shape(logits), 0.5)  # equal noise on every generator: the gate's argmax
        y, index = straight_through_gumbel_softmax(logits, u, self.config.temperature)
        if not training:
            return select_generator(outputs, index), index  # exactly the chosen generator's sample
        weights = tf.reshape(y, [-1, outputs.shape[1]] + [1] * (len(outputs.shape) - 2))
        return tf.reduce_sum(outputs * weights, axis=1), index

    def generator_losses(self, step):
        terms = super().generator_losses(step)  # g_adv on the straight-through sample
        if self.config.load_balance > 0:
            usage = self.global_mean(self.route(step.noise, training=True))  # q over the global batch
            terms["g_balance"] = self.config.load_balance * importance_cv_squared(usage)
        return terms
