"""``MixtureGAN``: the Keras model every method subclasses. It owns ``train_step``.

A method is a config dataclass plus a subclass that overrides a few small hooks:

    build_networks()             create generators, discriminator, routers (called once in __init__)
    noise_spec()                 the random inputs one sample needs (z, uniforms for choices, ...)
    route(noise, training)       p(G_i | z): (B, K) probabilities (uniform by default)
    generate(noise, training)    (samples (B, ...), generator index (B,))
    fake_logits(noise)           D's adversarial logits on the fakes (NPGAN mixes K of them)
    discriminator_losses(step)   {name: per-example loss (B,)} for the discriminator player
    generator_losses(step)       {name: per-example loss (B,)} for the generator player (and routers)

The base sums each player's terms, averages over the *global* batch, applies the gradients and
logs every term as a ``keras.metrics.Mean``. Method differences live in hooks and class
attributes, never in ``isinstance`` branches here.

Distribution rules (docs/ARCHITECTURE.md, "Distribution rules"), enforced here once for all methods:
* per-example losses are averaged with ``tf.nn.compute_average_loss`` over the global batch,
  because gradients are summed across replicas;
* noise is a stateless function of (seed, step, global example index): every replica draws the
  global batch's noise and keeps its own slice, so replicas see different noise and a run on N
  replicas draws exactly the noise a single device would;
* shapes are static (batch size from the data's static shape), so every step compiles with XLA.

Methods that need a statistic of the global batch use the helpers below (``global_gather``,
``global_sum``, ``global_mean``, ``replica_id``; also on the class) rather than talking to
``tf.distribute`` themselves.

What else a method may use: ``make_config`` (options -> config, checked), ``current_step`` (the
train step being run), ``make_optimizer`` and ``update_player`` (a third player's optimizer and
update, as the base's two), ``extra_optimizers`` (saved and restored with the compile config), and
the plain helpers ``real_part``, ``static_batch_size`` and ``per_example_total``.

Precision: ``precision="mixed_float16"|"mixed_bfloat16"`` builds every sub-layer under that Keras
dtype policy; variables, routers, logits, samples and losses stay float32 (see ``dtype_policy``).
"""
import contextlib
import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfgan_mix import constants
from tfgan_mix.backbones import build_discriminator
from tfgan_mix.layers import GeneratorBank
from tfgan_mix.losses import get_loss_family, gradient_penalty

NOISE_PRIORS = constants.LATENT_PRIORS
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LEARNING_RATE_DECAYS = ("constant", "linear")
SALTS_PER_STEP = 64  # distinct noise draws one train step may make (critic steps + generator step)
EVALUATION_SALT = SALTS_PER_STEP - 1  # the draw of ``test_step``
METHOD_SALT = SALTS_PER_STEP - 2  # free for one draw of a method's own (a third player, a partitioner)


@dataclasses.dataclass
class GANConfig:
    """Options every method shares. Subclasses add fields and change defaults.

    ``"auto"`` fields resolve from the data: images get the dcgan backbone and a tanh output.
    """

    data_shape: tuple = (2,)
    num_generators: int = 1
    latent_dim: int = 100
    noise: str = "uniform"
    generator_units: tuple = (200, 100, 20)
    generator_backbone: str = "auto"
    generator_filters: tuple = (64, 32)
    shared_trunk: bool = False
    discriminator_backbone: str = "auto"
    discriminator_units: tuple = (1000, 200, 100)
    discriminator_filters: tuple = (32, 64)
    activation: str = "leaky_relu"
    output_activation: str = "auto"
    loss: str = "ns"
    gradient_penalty: float = 0.0
    d_steps: int = 1
    g_learning_rate: float = 1e-4
    d_learning_rate: float = 1e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    amsgrad: bool = False
    # "linear": each player's rate falls linearly to 0 over learning_rate_decay_steps train steps
    # (Keras' PolynomialDecay); ``tfgan-mix train`` sets the steps to the run's length.
    learning_rate_decay: str = "constant"
    learning_rate_decay_steps: int = 0
    precision: str = "float32"
    seed: int = 0

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):  # JSON round trips turn tuples into lists
                setattr(self, field.name, tuple(value))
        self.data_shape = tuple(int(s) for s in self.data_shape)
        images = len(self.data_shape) == 3
        if self.generator_backbone == "auto":
            self.generator_backbone = "dcgan" if images else "mlp"
        if self.discriminator_backbone == "auto":
            self.discriminator_backbone = "dcgan" if images else "mlp"
        if self.output_activation == "auto":
            self.output_activation = "tanh" if images else None
        self._check()

    def _check(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.noise not in NOISE_PRIORS:
            raise ValueError(f"noise must be one of {NOISE_PRIORS}, got {self.noise!r}")
        for name in ("num_generators", "latent_dim", "d_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.d_steps >= SALTS_PER_STEP:
            raise ValueError(f"d_steps must be < {SALTS_PER_STEP}, got {self.d_steps}")
        if self.learning_rate_decay not in LEARNING_RATE_DECAYS:
            raise ValueError(f"learning_rate_decay must be one of {LEARNING_RATE_DECAYS}, got {self.learning_rate_decay!r}")
        if self.learning_rate_decay == "linear" and int(self.learning_rate_decay_steps) < 1:
            raise ValueError("learning_rate_decay='linear' needs learning_rate_decay_steps >= 1, the run's length in "
                             f"train steps (tfgan-mix train sets it from --steps), got {self.learning_rate_decay_steps}")
        get_loss_family(self.loss)  # raises on an unknown loss

    @classmethod
    def field_names(cls):
        return [f.name for f in dataclasses.fields(cls)]


@dataclasses.dataclass
class Step:
    """What one player's loss hooks see: the local real batch and this update's noise."""

    real: tf.Tensor
    noise: dict


# ---------------------------------------------------------------------- distribution helpers
# Every replica runs these with its own slice of the global batch. Outside a replica context (a
# model built or called under ``strategy.scope()``) and on one device they act on the local value.
def num_replicas():
    """The replicas in sync under the current strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def replica_id():
    """This replica's index (its slice of the global batch is rows ``id * B ... id * B + B - 1``),
    an int32 scalar; 0 on one device and outside a replica context."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tf.constant(0, tf.int32)
    return tf.cast(context.replica_id_in_sync_group, tf.int32)


def global_gather(x):
    """The global batch of ``x`` (B, ...): every replica's rows in replica order, (N B, ...), with
    the static shape kept (an all-gather loses it). Every replica gets the same tensor."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    replicas = context.num_replicas_in_sync
    return tf.reshape(context.all_gather(x, axis=0), [x.shape[0] * replicas, *x.shape[1:]])


def global_sum(x):
    """``x`` summed over the replicas (an all-reduce); gradients flow through it."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_reduce(tf.distribute.ReduceOp.SUM, x)


def global_mean(per_example):
    """Mean over the *global* batch of ``per_example`` (B, ...) along its first axis: the statistic
    (and its gradient) one device would compute on the whole batch."""
    local_sum = tf.reduce_sum(per_example, axis=0)
    batch = tf.cast(tf.shape(per_example)[0], per_example.dtype)
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return local_sum / batch
    total = context.all_reduce(tf.distribute.ReduceOp.SUM, local_sum)
    return total / (batch * context.num_replicas_in_sync)


class MixtureGAN(keras.Model):
    """Base class of every mixture-of-generators GAN. See the module docstring for the hooks."""

    config_class = GANConfig
    method_name = None  # set by @register_method
    max_generators = None  # e.g. 1 for single-generator methods
    discriminator_outputs = 1  # > 1 adds auxiliary heads on the discriminator trunk
    equal_generator_usage = False  # True: generators are used equally by design (uniform choice, balanced gate)
    routing_uses_z = False  # True: the generator choice depends on z (a noise prior, a gate on z)
    # True: every sample blends all generators (a soft gate) and the reported generator is only the
    # largest weight, so the exported sampler keeps the data regions' shares instead of its.
    blended_generators = False
    # Outlier-rejection rules of the exported sampler (export/rules.py), by name; methods add their own.
    rejection_rules = ("none", "manifold", "discriminator", "drs", "router", "truncation")
    default_rejection = "manifold"  # measured against the others in README, "Outlier rejection"
    # Optimizers a method's ``compile`` adds to d_optimizer and g_optimizer (attribute and keyword
    # name, e.g. "np_optimizer"): serialised with the compile config and restored with the model.
    extra_optimizers = ()

    # The distribution helpers (module functions above), for methods: ``self.global_mean(x)``.
    num_replicas = staticmethod(num_replicas)
    replica_id = staticmethod(replica_id)
    global_gather = staticmethod(global_gather)
    global_sum = staticmethod(global_sum)
    global_mean = staticmethod(global_mean)

    def __init__(self, name=None, **options):
        config = self.make_config(options)
        # The model itself stays float32 so noise enters uncast (float16 uniforms would bias the
        # inverse-CDF generator choice); its sub-layers take ``precision`` below.
        super().__init__(name=name or self.method_name or type(self).__name__.lower(), dtype="float32")
        self.config = config
        self.loss_family = get_loss_family(config.loss)
        with dtype_policy(config.precision):  # every sub-layer takes the model's precision
            self.build_networks()
            self._build_by_tracing()

    # ------------------------------------------------------------------ configuration
    @classmethod
    def make_config(cls, options):
        """The method's config from a dict of options: unknown names and too many generators are
        refused with a message naming the valid options (as the constructor does)."""
        unknown = sorted(set(options) - set(cls.config_class.field_names()))
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for method {cls.method_name!r}; "
                f"valid options: {', '.join(cls.config_class.field_names())}"
            )
        config = cls.config_class(**options)
        if cls.max_generators is not None and config.num_generators > cls.max_generators:
            raise ValueError(
                f"method {cls.method_name!r} uses at most {cls.max_generators} generator(s); "
                f"got num_generators={config.num_generators}"
            )
        return config

    def get_config(self):
        return {"name": self.name, **dataclasses.asdict(self.config)}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ------------------------------------------------------------------ networks (hook)
    def build_networks(self):
        """Create the networks. Default: a GeneratorBank of K generators and one discriminator."""
        self.generators = self.make_generator_bank()
        self.discriminator = self.make_discriminator()

    def make_generator_bank(self, num_generators=None, shared_trunk=None):
        c = self.config
        bank = GeneratorBank(
            num_generators=num_generators or c.num_generators,
            output_shape=c.data_shape,
            units=c.generator_units,
            backbone=c.generator_backbone,
            conv_filters=c.generator_filters,
            shared_trunk=c.shared_trunk if shared_trunk is None else shared_trunk,
            activation=c.activation,
            output_activation=c.output_activation,
            name="generators",
        )
        bank.build((None, c.latent_dim))  # so methods may call bank.heads/trunk directly
        return bank

    def make_discriminator(self, num_outputs=None, name="discriminator"):
        c = self.config
        return build_discriminator(
            c.data_shape,
            backbone=c.discriminator_backbone,
            units=c.discriminator_units,
            conv_filters=c.discriminator_filters,
            activation=c.activation,
            num_outputs=num_outputs or self.discriminator_outputs,
            name=name,
        )

    def discriminator_layers(self):
        """Layers trained by the discriminator player; everything else belongs to the generator."""
        return [self.discriminator]

    @property
    def discriminator_variables(self):
        return [v for layer in self.discriminator_layers() for v in layer.trainable_variables]

    @property
    def generator_variables(self):
        taken = {id(v) for v in self.discriminator_variables}
        return [v for v in self.trainable_variables if id(v) not in taken]

    # ------------------------------------------------------------------ noise (hook + machinery)
    def noise_spec(self):
        """name -> (shape of one example's draw, distribution). ``u`` picks a generator."""
        return {"z": ((self.config.latent_dim,), self.config.noise), "u": ((), "uniform01")}

    def training_noise_spec(self):
        """``noise_spec`` plus randomness only training needs (the gradient penalty's weights)."""
        return {**self.noise_spec(), "gp_epsilon": ((), "uniform01")}

    def sample_noise(self, batch_size, seed, spec=None):
        """Stateless noise for ``batch_size`` examples; ``seed`` is an int pair (tensor of shape (2,))."""
        seed = tf.cast(seed, tf.int64)
        noise = {}
        for index, (name, (shape, distribution)) in enumerate((spec or self.noise_spec()).items()):
            # Each noise stream gets its own seed; the offset is a prime to keep streams apart.
            noise[name] = _draw(distribution, [batch_size, *shape], seed + tf.constant([index * 7919, 0], tf.int64))
        return noise

    def draw_training_noise(self, local_batch, step, salt):
        """This replica's slice of the global batch's noise for update ``salt`` of train step ``step``."""
        replicas = num_replicas()
        seed = tf.stack([tf.constant(self.config.seed, tf.int64), tf.cast(step, tf.int64) * SALTS_PER_STEP + salt])
        noise = self.sample_noise(local_batch * replicas, seed, self.training_noise_spec())
        if replicas == 1:
            return noise
        replica = replica_id()
        return {
            name: tf.slice(value, [replica * local_batch] + [0] * (len(value.shape) - 1), [local_batch, *value.shape[1:]])
            for name, value in noise.items()
        }

    # ------------------------------------------------------------------ model hooks
    def route(self, noise, training=False):
        """p(G_i | z): uniform over the K generators unless a method learns it."""
        z = noise["z"]
        k = self.config.num_generators
        return tf.fill([tf.shape(z)[0], k], 1.0 / k)

    def generate(self, noise, training=False):
        """Samples and the index of the generator that made each: one generator per example,
        drawn from ``route`` with the example's uniform ``u``."""
        probs = self.route(noise, training)
        index = choose_from_uniform(probs, noise["u"])
        return select_generator(self.generators(noise["z"]), index), index

    def discriminator_logits(self, x, training=False):
        return self.discriminator(x, training=training)

    def discriminator_features(self, x, training=False):
        """D's last hidden layer: every layer of the discriminator but its logits layer."""
        h = x
        for layer in self.discriminator.layers[:-1]:
            h = layer(h, training=training)
        return h

    def discriminate(self, x, training=False):
        """The adversarial logit, (B,)."""
        return self.discriminator_logits(x, training)[:, 0]

    def fake_logits(self, noise):
        fake, _ = self.generate(noise, training=True)
        return self.discriminate(fake, training=True)

    def discriminator_losses(self, step):
        real_logits = self.discriminate(step.real, training=True)
        terms = {"d_adv": self.loss_family.discriminator(real_logits, self.fake_logits(step.noise))}
        return {**terms, **self.gradient_penalty_terms(step)}

    def gradient_penalty_terms(self, step):
        """``{"d_gp": lambda * GP}`` on the adversarial logit when ``gradient_penalty`` > 0, else ``{}``."""
        if self.config.gradient_penalty <= 0:
            return {}
        fake, _ = self.generate(step.noise, training=True)
        penalty = gradient_penalty(
            lambda x: self.discriminate(x, training=True), step.real, tf.stop_gradient(fake), step.noise["gp_epsilon"]
        )
        return {"d_gp": self.config.gradient_penalty * penalty}

    def generator_losses(self, step):
        return {"g_adv": self.loss_family.generator(self.fake_logits(step.noise))}

    # ------------------------------------------------------------------ Keras plumbing
    def call(self, inputs, training=False):
        """Noise in (a dict as ``noise_spec`` describes, or just z), samples out."""
        # Just z: the generator is drawn as in sampling (a fixed u would always pick one generator).
        noise = inputs if isinstance(inputs, dict) else {"z": inputs, "u": tf.random.uniform([tf.shape(inputs)[0]])}
        samples, index = self.generate(noise, training=training)
        return {"samples": samples, "generator": index}

    def _build_by_tracing(self):
        """Run both players' losses once on a tiny batch: creates every variable and tells us the
        names of the loss terms, so a Mean metric exists for each before training is traced."""
        noise = self.sample_noise(2, tf.constant([0, 0]), self.training_noise_spec())
        step = Step(real=tf.zeros([2, *self.config.data_shape]), noise=noise)
        d_terms = self.discriminator_losses(step)
        g_terms = self.generator_losses(step)
        names = ["d_loss", *d_terms, "g_loss", *g_terms]
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True

    @property
    def metrics(self):
        return list(self._trackers.values())

    def compile(self, d_optimizer=None, g_optimizer=None, **kwargs):
        """Adam with the config's learning rates (TTUR) unless optimizers are given; with
        ``precision="mixed_float16"`` each is wrapped in a ``LossScaleOptimizer`` (dynamic loss
        scaling: float16 gradients underflow without it; bfloat16 has float32's range and needs none).

        Both optimizers are built on their variables here, under the caller's strategy scope: Keras
        3.15 creates slots lazily inside the distributed function otherwise (keras #23085), and
        ``BackupAndRestore`` would silently skip unbuilt optimizer state.
        """
        c = self.config
        kwargs.pop("optimizer", None)
        self.d_optimizer = self.make_optimizer(d_optimizer, c.d_learning_rate, updates_per_step=c.d_steps)
        self.g_optimizer = self.make_optimizer(g_optimizer, c.g_learning_rate)
        super().compile(optimizer=self.g_optimizer, **kwargs)
        self.d_optimizer.build(self.discriminator_variables)
        self.g_optimizer.build(self.generator_variables)

    def make_optimizer(self, given, learning_rate, updates_per_step=1):
        """``given`` (an optimizer or its identifier) or Adam at ``learning_rate`` with the config's
        betas, amsgrad and decay (``updates_per_step``: the optimizer's updates per train step, so
        every player's rate reaches 0 at the same step); wrapped for dynamic loss scaling under
        ``mixed_float16``."""
        c = self.config
        return loss_scaled(_optimizer(given, rate_schedule(learning_rate, c, updates_per_step), c), c.precision)

    def get_compile_config(self):
        return {
            "d_optimizer": keras.optimizers.serialize(self.d_optimizer),
            "g_optimizer": keras.optimizers.serialize(self.g_optimizer),
            "jit_compile": self.jit_compile,
            "steps_per_execution": self.steps_per_execution,
            **{key: keras.optimizers.serialize(getattr(self, key)) for key in self.extra_optimizers},
        }

    def compile_from_config(self, config):
        config = dict(config)
        for key in ("d_optimizer", "g_optimizer"):
            config[key] = keras.optimizers.deserialize(config[key])
        for key in self.extra_optimizers:
            if key in config:
                config[key] = keras.optimizers.deserialize(config[key])
        self.compile(**config)

    # ------------------------------------------------------------------ training
    @property
    def step_compiles_with_xla(self):
        """Whether XLA can compile this model's train step as built (every method's can on one
        device; a method that spreads one step over devices says no)."""
        return True

    @property
    def current_step(self):
        """The train step being run: the generator optimizer's update count (an int64 variable;
        read it with ``tf.identity`` before the generator's update if the step needs it after),
        or a constant 0 before ``compile`` (while the model is first traced)."""
        optimizer = getattr(self, "g_optimizer", None)
        return tf.constant(0, tf.int64) if optimizer is None else optimizer.iterations

    def train_step(self, data):
        real = real_part(data)
        local_batch = static_batch_size(real)
        step = self.current_step
        for critic_step in range(self.config.d_steps):
            self._update("d", Step(real, self.draw_training_noise(local_batch, step, critic_step)))
        self._update("g", Step(real, self.draw_training_noise(local_batch, step, self.config.d_steps)))
        return self._logs()

    def test_step(self, data):
        step = self.evaluation_step(data)
        for player, terms in (("d", self.discriminator_losses(step)), ("g", self.generator_losses(step))):
            self._record(player, terms, per_example_total(terms, static_batch_size(step.real)))
        return self._logs()

    def evaluation_step(self, data):
        """The ``Step`` ``test_step`` scores: the real batch of ``data`` and its own noise draw."""
        real = real_part(data)
        return Step(real, self.draw_training_noise(static_batch_size(real), self.current_step, EVALUATION_SALT))

    def _logs(self):
        logs = {name: tracker.result() for name, tracker in self._trackers.items()}
        if _multi_worker():
            # Keras 3.15 reduces each log across workers with strategy.reduce(MEAN, axis=0), which
            # fails on scalars (tensorflow #72388); a length-1 vector reduces to the same scalar.
            logs = {name: tf.reshape(value, [1]) for name, value in logs.items()}
        return logs

    def _update(self, player, step):
        if player == "d":
            self.update_player("d", self.discriminator_losses, self.discriminator_variables, self.d_optimizer, step)
        else:
            self.update_player("g", self.generator_losses, self.generator_variables, self.g_optimizer, step)

    def update_player(self, player, losses_fn, variables, optimizer, step):
        """One update of ``variables`` on ``losses_fn(step)`` (per-example terms averaged over the
        global batch), logged as ``{player}_loss`` and each term. The base's D and G updates; a
        method with a third player (NPGAN's noise prior) runs its update through this too."""
        batch = static_batch_size(step.real)
        global_batch = batch * num_replicas()
        with tf.GradientTape() as tape:
            terms = losses_fn(step)
            per_example = per_example_total(terms, batch)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss)  # the loss itself unless loss scaling is on
        grads = tape.gradient(scaled, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        self._record(player, terms, per_example)

    def _record(self, player, terms, per_example):
        # Each replica records its local means; Mean's sum/count aggregation makes them global.
        self._trackers[f"{player}_loss"].update_state(tf.reduce_mean(per_example))
        for name, value in terms.items():
            self._trackers[name].update_state(tf.reduce_mean(value))

    # ------------------------------------------------------------------ sampling
    def sample(self, num_samples, seed=0, batch_size=4096):
        """Draw ``num_samples`` samples: returns numpy ``(samples, generator_index)``."""
        outputs = [
            self._sample_batch(tf.constant(min(batch_size, num_samples - start)), tf.constant([seed, start], tf.int64))
            for start in range(0, num_samples, batch_size)
        ]
        samples = np.concatenate([o["samples"].numpy() for o in outputs])
        index = np.concatenate([o["generator"].numpy() for o in outputs])
        return samples, index

    @tf.function(reduce_retracing=True)
    def _sample_batch(self, batch, seed):
        return self(self.sample_noise(batch, seed), training=False)


# ---------------------------------------------------------------------- helpers
def choose_from_uniform(probs, u):
    """Categorical draw by inverse CDF: the index i with cdf_{i-1} <= u < cdf_i. (B, K), (B,) -> (B,)

    ``probs`` may also be one distribution ``(K,)`` shared by every row of ``u``. Written with cumsum
    and a comparison (no random op) so the same uniforms give the same choice in Keras, SavedModel
    and ONNX.
    """
    cdf = tf.cumsum(probs, axis=-1)
    index = tf.reduce_sum(tf.cast(cdf <= u[:, None], tf.int32), axis=-1)
    return tf.minimum(index, tf.shape(probs)[-1] - 1)


def select_generator(outputs, index):
    """outputs (B, K, ...), index (B,) -> (B, ...): each example's output from its generator.

    A one-hot weighted sum rather than a gather: gradients reach only the chosen generator, and
    it converts to the simplest ONNX ops.
    """
    one_hot = tf.one_hot(index, outputs.shape[1], dtype=outputs.dtype)
    one_hot = tf.reshape(one_hot, [-1, outputs.shape[1]] + [1] * (len(outputs.shape) - 2))
    return tf.reduce_sum(outputs * one_hot, axis=1)


def _multi_worker():
    # The same test Keras's reduce_per_replica makes before its multi-worker reduction.
    strategy = tf.distribute.get_strategy()
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._in_multi_worker_mode()


def _draw(distribution, shape, seed):
    if distribution == "uniform":
        return tf.random.stateless_uniform(shape, seed, minval=-1.0, maxval=1.0)
    if distribution == "normal":
        return tf.random.stateless_normal(shape, seed)
    if distribution == "uniform01":
        return tf.random.stateless_uniform(shape, seed)
    raise ValueError(f"unknown noise distribution {distribution!r}")


def rate_schedule(learning_rate, config, updates_per_step=1):
    """``learning_rate``, or with ``learning_rate_decay="linear"`` Keras' ``PolynomialDecay`` from it
    to 0 over the config's ``learning_rate_decay_steps`` train steps (``updates_per_step`` optimizer
    updates each). Ending at a rate of 0 settles players whose updates circle an equilibrium
    instead of converging to it (docs/FINDINGS.md, "The demo's default run")."""
    if config.learning_rate_decay == "constant":
        return learning_rate
    steps = int(config.learning_rate_decay_steps) * int(updates_per_step)
    return keras.optimizers.schedules.PolynomialDecay(learning_rate, steps, end_learning_rate=0.0)


def _optimizer(given, learning_rate, config):
    if given is not None:
        return keras.optimizers.get(given)
    return keras.optimizers.Adam(
        learning_rate=learning_rate, beta_1=config.beta_1, beta_2=config.beta_2, amsgrad=config.amsgrad
    )


def real_part(data):
    """The real batch of what ``fit`` gives a train step (``x`` or ``(x, ...)``)."""
    return data[0] if isinstance(data, (tuple, list)) else data


def static_batch_size(real):
    """The batch's static size; an error naming the fix when the dataset has none."""
    batch = real.shape[0]
    if batch is None:
        raise ValueError(
            "the real batch needs a static size: batch the dataset with drop_remainder=True "
            "(every train step must have static shapes for XLA/TPU)"
        )
    return batch


def per_example_total(terms, batch):
    """Sum of the loss terms per example, in float32; a batch-level (scalar) term is broadcast to (B,)."""
    return tf.add_n([tf.broadcast_to(tf.cast(value, tf.float32), [batch]) for value in terms.values()])


def loss_scaled(optimizer, precision):
    """``optimizer`` wrapped in a ``LossScaleOptimizer`` under ``mixed_float16`` (once), else itself."""
    if precision == "mixed_float16" and not isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


@contextlib.contextmanager
def dtype_policy(name):
    """Keras's global dtype policy set to ``name`` while layers are created, then restored.

    Variables stay float32 under the mixed policies; layers compute in float16/bfloat16. Layers
    that must stay float32 say so themselves: routers (probabilities), the discriminator's logit
    layer and the generators' output (losses, rejection scores and exported samples are float32).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def build_model(method, options, strategy=None, **compile_kwargs):
    """Create, build and compile the registered ``method`` with ``options`` inside
    ``strategy.scope()`` (networks and optimizers; the distribution rules above)."""
    from tfgan_mix.core.registry import get_method  # the registry imports method modules on demand

    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = get_method(method)(**options)
        model.compile(**compile_kwargs)
    return model
