"""``mixgan``: scalable MIX-GAN (paper 001, "Lessons Learned from the Training of GANs on Artificial
Datasets", section V).

MIX+GAN (``mixgan_plus``) costs O(n_G n_D): every generator makes a batch for every discriminator.
MIX-GAN drops the learned weights (w_i = 1/n_G, v_j = 1/n_D) and splits the batch each G_i makes
into n_D equal parts, one per discriminator, so the batch size of every generator and every
discriminator stays the same while every discriminator still sees samples of every generator.
With the loss family's L_D,real, L_D,fake and L_G (paper 001 Eqs. 6-8 with uniform weights):

    L_D = (1/n_D) sum_j [ E_{x~P_r} L_D,real(D_j(x)) + (1/n_G) sum_i E_{x~P_gi, x->D_j} L_D,fake(D_j(x)) ]
    L_G = (1/n_G) sum_i (1/n_D) sum_j E_{x~P_gi, x->D_j} L_G(D_j(x))

How a batch is laid out here: example b carries one real point x_b and one fake G_i(z_bi) from
each generator (independent z_bi); all its fakes go to discriminator a(b) = (global example
counter) mod n_D, the counter running over replicas and train steps, so each generator's batch
is split evenly across the discriminators even when the batch is not a multiple of n_D, and one
replica or N give the same update. Every D_j sees the whole real batch. D_j's gradient penalty
(WGAN-GP base, Eq. 3) is taken on interpolates between x_b and the fakes it receives.

Placement (section V): ``placement="model_parallel"`` puts G_i on device i mod n and D_j on
device j mod n (n = ``placement_devices``, all visible devices by default): the generators and
discriminators are held in n round-robin groups, each group one vectorised bank on its device.
Under a ``tf.distribute`` strategy placement is off (the strategy replicates every network: data
parallelism); the groups stay, so checkpoints move between the two set-ups. XLA compiles a step
for one device, so model-parallel placement needs ``jit_compile=False``.

Defaults: the artificial-data set-up of section IV (WGAN-GP, 5-layer 1024-wide MLPs, z ~ N(0, I),
5 critic steps, TTUR D 1e-4 / G 1e-5) and section V's largest mixture, 10 generators and 10
discriminators. (Section V's CIFAR-10 runs use MHingeGAN, Adam 2e-4 with betas (0, 0.9) and 4
critic steps; ``loss="hinge"`` is the nearest built-in family.)
"""
import dataclasses
import math
import warnings

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, register_method
from tfgan_mix.layers import ComponentSplit, DiscriminatorBank, GeneratorBank
from tfgan_mix.losses import per_discriminator_gradient_penalty

PLACEMENTS = ("none", "model_parallel")


@dataclasses.dataclass
class MixGANConfig(GANConfig):
    num_generators: int = 10  # section V, Table I: 10 generators and 10 discriminators did best
    num_discriminators: int = 10
    latent_dim: int = 1024  # section IV-D (artificial data)
    noise: str = "normal"
    generator_units: tuple = (1024, 1024, 1024)  # section IV-B: 5 layers, 1024 units per hidden layer
    discriminator_units: tuple = (1024, 1024, 1024)
    loss: str = "wasserstein"
    gradient_penalty: float = 10.0
    d_steps: int = 5
    g_learning_rate: float = 1e-5
    d_learning_rate: float = 1e-4
    beta_1: float = 0.5  # paper silent for the toy; WGAN-GP's toy code, which section IV-D follows
    beta_2: float = 0.9
    placement: str = "none"  # "model_parallel": G_i on device i mod n, D_j on device j mod n
    placement_devices: int = 0  # n; 0 = every visible device, resolved when the model is built

    def _check(self):
        super()._check()
        if int(self.num_discriminators) < 1:
            raise ValueError(f"num_discriminators must be >= 1, got {self.num_discriminators}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {PLACEMENTS}, got {self.placement!r}")
        if int(self.placement_devices) < 0:
            raise ValueError(f"placement_devices must be >= 0, got {self.placement_devices}")
        if self.placement == "model_parallel" and int(self.placement_devices) == 0:
            # Kept in the config, so a reloaded model has the same groups whatever devices it finds.
            self.placement_devices = len(visible_devices())


def visible_devices():
    """The devices model-parallel placement spreads over: the GPUs, else the (logical) CPUs."""
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tuple(d.name for d in devices)


@keras.saving.register_keras_serializable(package="tfgan_mix")
class GeneratorGroups(keras.layers.Layer):
    """K generators in ``groups`` round-robin ``GeneratorBank``s (group g: generators g, g + groups,
    ...), group g on ``devices[g % len(devices)]``. ``call`` matches ``GeneratorBank.call``: z is
    ``(B, latent)`` or ``(B, K, latent)``, the output ``(B, K, *sample_shape)`` in generator order."""

    def __init__(self, num_generators, latent_dim, bank_options, groups=1, devices=(), **kwargs):
        super().__init__(**kwargs)
        self.num_generators = int(num_generators)
        self.latent_dim = int(latent_dim)
        self.bank_options = dict(bank_options)
        self.devices = tuple(devices)
        self.split = ComponentSplit(self.num_generators, groups, self.devices)
        self.banks = []
        for g, members in enumerate(self.split.members):
            with self.split.device_scope(g, placed=True):
                bank = GeneratorBank(num_generators=len(members), name=f"bank{g}", **self.bank_options)
                bank.build((None, self.latent_dim))
            self.banks.append(bank)
        self.built = True

    def call(self, z):
        return self.run(z)

    def run(self, z, placed=False):
        return self.split.apply(lambda g, zg: self.banks[g](zg), z, len(z.shape) == 3, placed)

    def get_config(self):
        config = super().get_config()
        config.update(num_generators=self.num_generators, latent_dim=self.latent_dim,
                      bank_options=self.bank_options, groups=self.split.groups, devices=list(self.devices))
        return config


@register_method("mixgan")
class MixGAN(MixtureGAN):
    config_class = MixGANConfig

    def build_networks(self):
        c = self.config
        placed = c.placement == "model_parallel"
        groups = c.placement_devices if placed else 1
        devices = visible_devices() if placed else ()
        if placed and tf.distribute.has_strategy():
            warnings.warn("mixgan: model-parallel placement is off under a tf.distribute strategy "
                          "(the strategy replicates every network: data parallelism)", stacklevel=2)
        self.generators = GeneratorGroups(
            c.num_generators, c.latent_dim, groups=groups, devices=devices, name="generators",
            bank_options=dict(output_shape=c.data_shape, units=c.generator_units, backbone=c.generator_backbone,
                              conv_filters=c.generator_filters, shared_trunk=c.shared_trunk,
                              activation=c.activation, output_activation=c.output_activation))
        self.critics = DiscriminatorBank(
            c.num_discriminators, c.data_shape, units=c.discriminator_units, backbone=c.discriminator_backbone,
            conv_filters=c.discriminator_filters, activation=c.activation, learn_weights=False, groups=groups,
            devices=devices, name="critics")
        # Column 0: the uniform mixture (1/n_D) sum_j D_j(x), used by the discriminator rejection rule.
        self.discriminator = keras.Sequential([keras.Input(c.data_shape), self.critics], name="discriminator")

    def model_parallel(self):
        """Whether G_i / D_j are pinned to their devices now (never under a tf.distribute strategy)."""
        return self.config.placement == "model_parallel" and not tf.distribute.has_strategy()

    @property
    def step_compiles_with_xla(self):
        return not self.model_parallel()

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """As the base; XLA compiles a step for one device, so placement turns ``jit_compile="auto"`` off
        and refuses ``jit_compile=True``."""
        if not self.step_compiles_with_xla and kwargs.get("jit_compile") is True:
            raise ValueError("mixgan: placement='model_parallel' spreads a step over devices, which XLA cannot "
                             "compile; use jit_compile=False (or placement='none')")
        super().compile(d_optimizer, g_optimizer, **kwargs)
        if not self.step_compiles_with_xla:
            self.jit_compile = False

    # ------------------------------------------------------------------ noise
    def training_noise_spec(self):
        """Each example: one z per generator and one interpolation weight per fake."""
        c = self.config
        return {"z": ((c.num_generators, c.latent_dim), c.noise), "gp_epsilon": ((c.num_generators,), "uniform01")}

    # ------------------------------------------------------------------ batch split
    def _assignment_offset(self, batch):
        """Global counter of this replica's first example, mod n_D (None: always 0)."""
        n_d = self.config.num_discriminators
        if batch % n_d == 0:
            return None  # every replica's slice of every step starts at a multiple of n_D
        replicas = self.num_replicas()
        start = tf.cast(self.current_step, tf.int64) * batch * replicas + tf.cast(self.replica_id(), tf.int64) * batch
        return tf.cast(tf.math.floormod(start, n_d), tf.int32)

    def _fake_scores(self, noise, real=None):
        """D_a(b)(G_i(z_bi)) for every example b and generator i, ``(B, n_G)``. With ``real`` (the
        critic's update) the fakes are constants and the gradient penalty of each pair comes too."""
        c = self.config
        z = noise["z"]
        batch = z.shape[0]
        offset = self._assignment_offset(batch)
        slots = batch if offset is None else math.ceil((batch + c.num_discriminators - 1) / c.num_discriminators) \
            * c.num_discriminators
        fakes = self.generators.run(_to_slots(z, offset, slots), placed=True)  # (P, n_G, ...)
        # Slot p goes to D_(p mod n_D): (P/n_D, n_D, n_G, ...) -> (P/n_D * n_G, n_D, ...) for the critics.
        if real is not None:
            fakes = tf.stop_gradient(fakes)  # the critic's update: no backward pass through the generators
        grid = tf.reshape(fakes, [-1, c.num_discriminators, c.num_generators, *c.data_shape])
        by_critic = tf.reshape(tf.transpose(grid, [0, 2, 1, *range(3, 3 + len(c.data_shape))]),
                               [-1, c.num_discriminators, *c.data_shape])

        def to_examples(values):  # (P/n_D * n_G, n_D) -> (B, n_G)
            values = tf.transpose(tf.reshape(values, [-1, c.num_generators, c.num_discriminators]), [0, 2, 1])
            return _from_slots(tf.reshape(values, [slots, c.num_generators]), offset, batch)

        scores = to_examples(self.critics.per_discriminator(by_critic, placed=True))
        if real is None or c.gradient_penalty <= 0:
            return scores, None
        eps = tf.reshape(tf.transpose(tf.reshape(_to_slots(noise["gp_epsilon"], offset, slots),
                                                 [-1, c.num_discriminators, c.num_generators]), [0, 2, 1]),
                         [-1, c.num_discriminators] + [1] * len(c.data_shape))
        real_slots = tf.reshape(_to_slots(real, offset, slots), [-1, 1, c.num_discriminators, *c.data_shape])
        real_slots = tf.reshape(tf.tile(real_slots, [1, c.num_generators] + [1] * (1 + len(c.data_shape))),
                                [-1, c.num_discriminators, *c.data_shape])
        x_hat = eps * real_slots + (1.0 - eps) * by_critic
        critic = lambda x: self.critics.per_discriminator(x, placed=True)  # noqa: E731
        return scores, to_examples(per_discriminator_gradient_penalty(critic, x_hat))

    # ------------------------------------------------------------------ losses
    def discriminator_losses(self, step):
        c = self.config
        fake_scores, penalty = self._fake_scores(step.noise, step.real)
        real_scores = self.critics.scores(step.real, placed=True)  # every D_j sees the whole real batch
        # The family's D loss is separable, so its mean over the (n_D x n_G) grid of (real_j, fake_i)
        # is mean_j L_real(D_j(x)) + mean_i L_fake(D_a(b)(G_i(z_bi))).
        grid = self.loss_family.discriminator(real_scores[:, :, None], fake_scores[:, None, :])
        terms = {"d_adv": tf.reduce_mean(grid, axis=[1, 2])}
        if penalty is not None:
            terms["d_gp"] = c.gradient_penalty * tf.reduce_mean(penalty, axis=1)
        return terms

    def generator_losses(self, step):
        fake_scores, _ = self._fake_scores(step.noise)
        return {"g_adv": tf.reduce_mean(self.loss_family.generator(fake_scores), axis=1)}


def _to_slots(x, offset, slots):
    """(B, ...) -> (slots, ...): slot p holds example p - offset, zeros elsewhere (never read back)."""
    if offset is None:
        return x
    padded = tf.concat([x, tf.zeros([slots - x.shape[0], *x.shape[1:]], x.dtype)], axis=0)
    return tf.gather(padded, tf.math.floormod(tf.range(slots) - offset, slots))


def _from_slots(values, offset, batch):
    """The inverse of ``_to_slots`` for the ``batch`` real examples."""
    if offset is None:
        return values
    return tf.gather(values, tf.range(batch) + offset)
