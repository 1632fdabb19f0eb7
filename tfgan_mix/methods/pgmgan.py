"""``pgmgan``: Partition-Guided Mixture of GANs (paper 002, "Partition-Guided GANs").

A space partitioner S splits the data space into k regions A_1..A_k; generator G_i and
discriminator D_i learn the data restricted to A_i, weighted by pi_i = p_data(x in A_i):

    sum_i pi_i [min_{G_i} max_{D_i} V(D_i, G_i, A_i)]                          (Eq. 1-2)

G_i share every parameter but their input layer and D_i every parameter but their last layer
(section 4): a GeneratorBank with a shared trunk, and one discriminator with k output columns.

Partitioner (section 4.1), trained inside ``fit`` before it is used, in phases of the step count t:

1. t < pretext_steps (images only): a pretext embedding h = W2 sigma(W1 phi(x)) learned with
   the contrastive loss of Eq. 4 on two augmented views of each image (SimCLR's NT-Xent).
   Low-dimensional data skip this phase, as the paper's toy does (section 5.1).
2. pretext_steps <= t < pretext_steps + partition_steps: S(x) = softmax(W phi(x)) trained to
   maximise Eq. 5 on a k-NN graph of h (of x itself for low-dimensional data):
       sum_(i,j) in E log(S(x_i)^T S(x_j)) - alpha sum_i H(S(x_i)) + beta H(sum_i S(x_i) / N)
   initialised as the paper says: phi is the pretext network's trunk, W a new random matrix.
3. Afterwards S is frozen (its optimizer's learning rate drops to zero).
One Adam optimizer serves phases 1 and 2 (the paper trains the pretext model with SGD), and the
k-NN graph is rebuilt on each batch from the current h rather than mined once (the paper's
pretext network is fixed when the graph is built; here phi keeps adapting in phase 2).

phi is the Lipschitz residual network of section 4.2 (``layers.partitioner``), so the guide

    R_i(x) = sum_c (f_c(x) - f_i(x))_+                                           (Eq. 6)

has no local optimum outside A_i (Theorem 3). The generator loss adds it (Eq. 8):

    min_{G_i} -log D_i(G_i(z)) + lambda_t R_i(G_i(z)),

lambda_t = 0 until the partitioner is trained, then ``guide_weight`` annealed linearly to 0 over
``guide_anneal_steps`` ("linear annealing has been done during training", section 5.4).
D_i sees the real points S assigns to A_i and the fakes of G_i. Generator i is drawn with
probability pi_i, a running average of S's assignments of the real batches. At inference the
example's uniform u picks i by inverse CDF on pi, and the ``partition`` rejection rule accepts a
sample of G_i only when R_i(x) == 0 (section 4.2) -- the default rule.

In-``fit`` design (no shared code changes): each train step first runs one partitioner update
(pretext or partition loss, chosen by masks, so the step has static control flow and compiles
with XLA), then the base's D and G updates. The partitioner phases use the *global* batch
(all-gathered across replicas; each replica applies 1/N of the gradient) so that the k-NN graph
and the batch entropy term do not depend on the number of replicas. The GAN already trains during
the partitioner phases (the shared loop steps the generator every step), on the current
partition; the guide is off until the partitioner is frozen.

Defaults: section 5 and 5.4 (k = 200, Lipschitz constant 0.9, 20 residual blocks of 3 layers,
initial lambda = 6, Adam). Everything marked "our choice" is not given in the paper's text.
"""
import dataclasses

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, choose_from_uniform, register_method, select_generator
from tfgan_mix.core.base import SALTS_PER_STEP
from tfgan_mix.layers.partitioner import LipschitzPartitioner, nearest_neighbours, partition_guide

_PARTITION_SALT = SALTS_PER_STEP - 2  # the base uses salts 0..d_steps and the last one (test_step)


@dataclasses.dataclass
class PGMGANConfig(GANConfig):
    num_generators: int = 200  # k, section 5.2 ("we use k = 200 unless specified otherwise")
    latent_dim: int = 128  # SN-GAN's z (section 5 adopts SN-GAN's generators)
    noise: str = "normal"  # SN-GAN's z ~ N(0, I)
    shared_trunk: bool = True  # section 4: G_i share all parameters but the input layer
    guide_weight: float = 6.0  # lambda of Eq. 8, initial value (section 5.4)
    guide_anneal_steps: int = 20000  # lambda -> 0 linearly over this many steps; our choice, paper silent
    pretext_steps: int = 2000  # images only; our choice, paper silent
    partition_steps: int = 2000  # our choice, paper silent
    partitioner_blocks: int = 20  # section 5: 20 residual blocks ...
    partitioner_layers: int = 3  # ... of 3 layers (60 layers)
    partitioner_units: int = 128  # our choice, paper silent (dense layers, see layers.partitioner)
    partitioner_lipschitz: float = 0.9  # section 5
    partitioner_activation: str = "elu"  # section 4.2 lists ELU, ReLU, LeakyReLU
    partitioner_learning_rate: float = 1e-3  # Adam (section 5); rate: our choice
    neighbours: int = 5  # k of the k-NN graph (within the global batch); our choice, paper silent
    entropy_weight: float = 0.1  # alpha of Eq. 5; our choice, paper silent (larger merges grid modes)
    balance_weight: float = 5.0  # beta of Eq. 5; our choice (SCAN's entropy weight)
    proportion_momentum: float = 0.99  # running average of pi_i; our choice, paper silent
    pretext_units: int = 128  # W1 of the pretext head; our choice, paper silent
    pretext_dim: int = 64  # h; our choice, paper silent
    pretext_temperature: float = 0.5  # tau of Eq. 4; our choice (SimCLR)

    def _check(self):
        super()._check()
        if self.guide_weight < 0:
            raise ValueError(f"guide_weight must be >= 0, got {self.guide_weight}")
        for name in ("pretext_steps", "partition_steps", "guide_anneal_steps"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if int(self.neighbours) < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if not 0.0 <= self.proportion_momentum < 1.0:
            raise ValueError(f"proportion_momentum must lie in [0, 1), got {self.proportion_momentum}")


# ---------------------------------------------------------------------- pure losses
def categorical_entropy(probs):
    """H_C(p) = -sum_c p_c log p_c over the last axis."""
    return -tf.reduce_sum(probs * tf.math.log(tf.maximum(probs, 1e-12)), axis=-1)


def partition_objective(probs, neighbours, alpha, beta):
    """The terms of Eq. 5 as losses to minimise (paper 002, section 4.1), averaged per edge / point:

        consistency = -mean_(i,j) in E log(S_i . S_j)   (neighbours share a partition)
        entropy     =  mean_i H_C(S_i)                  (confident assignments; weight alpha)
        balance     =  H_C(mean_i S_i)                  (no empty partitions; weight beta, maximised)

    ``probs`` (N, k), ``neighbours`` (N, n) indices into the rows. Eq. 5 sums rather than averages
    its first two terms; averaging only rescales alpha and beta. Returns a dict of scalars with
    ``loss = consistency + alpha * entropy - beta * balance``.
    """
    dots = tf.einsum("nk,nmk->nm", probs, tf.gather(probs, neighbours))
    consistency = -tf.reduce_mean(tf.math.log(tf.maximum(dots, 1e-8)))
    entropy = tf.reduce_mean(categorical_entropy(probs))
    balance = categorical_entropy(tf.reduce_mean(probs, axis=0))
    return {"loss": consistency + alpha * entropy - beta * balance,
            "consistency": consistency, "entropy": entropy, "balance": balance}


def contrastive_loss(h1, h2, temperature):
    """NT-Xent (paper 002, Eq. 4; Chen et al. 2020): for the 2N views, with sim the cosine,

        -log exp(sim(h_i, h_j) / tau) / sum_{k != i} exp(sim(h_i, h_k) / tau),   (i, j) a positive pair,

    averaged over the 2N views. ``h1``, ``h2`` (N, dim): row n of each is a view of image n.
    """
    h = tf.math.l2_normalize(tf.concat([h1, h2], axis=0), axis=-1)
    n2 = tf.shape(h)[0]
    sim = tf.matmul(h, h, transpose_b=True) / temperature
    sim -= tf.linalg.diag(tf.fill([n2], tf.constant(1e9, sim.dtype)))  # k != i
    n = n2 // 2
    positive = tf.concat([tf.range(n, n2), tf.range(0, n)], axis=0)
    log_prob = tf.reduce_sum(sim * tf.one_hot(positive, n2, dtype=sim.dtype), axis=-1) - tf.reduce_logsumexp(sim, -1)
    return -tf.reduce_mean(log_prob)


def augment(images, noise, view):
    """One random view of each image for the pretext task (our choice of augmentations for small
    images: a shift of up to one pixel, contrast/brightness jitter, pixel noise; no flips, which
    change digits). All randomness comes from ``noise`` (stateless); shapes are static."""
    shift, scale, offset, pixels = (noise[f"view{view}_{k}"] for k in ("shift", "scale", "offset", "pixels"))
    h, w = images.shape[1], images.shape[2]
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
    shifted = tf.stack([padded[:, dy:dy + h, dx:dx + w, :] for dy in range(3) for dx in range(3)], axis=1)
    choice = tf.one_hot(tf.minimum(tf.cast(shift * 9.0, tf.int32), 8), 9, dtype=images.dtype)
    x = tf.reduce_sum(shifted * choice[:, :, None, None, None], axis=1)
    x = x * (0.8 + 0.4 * scale)[:, None, None, None] + (0.2 * offset - 0.1)[:, None, None, None]
    return x + 0.05 * pixels


def pick_column(logits, index):
    """logits (B, k), index (B,) -> (B,): each row's column ``index`` (a one-hot sum)."""
    return tf.reduce_sum(logits * tf.one_hot(index, logits.shape[-1], dtype=logits.dtype), axis=-1)


# ---------------------------------------------------------------------- the method
@register_method("pgmgan")
class PGMGAN(MixtureGAN):
    config_class = PGMGANConfig
    rejection_rules = MixtureGAN.rejection_rules + ("partition",)
    default_rejection = "partition"  # section 4.2: accept a sample of G_i only when R_i(x) == 0
    rejection_thresholds = {"partition": (0.0, "R_i(x) == 0: inside its generator's partition (paper 002)")}

    @property
    def discriminator_outputs(self):
        """D_i(x) is column i: the k discriminators share all but their last layer (section 4)."""
        return self.config.num_generators

    @property
    def uses_pretext(self):
        """Images get the contrastive pretext embedding; low-dimensional data skip it (section 5.1)."""
        return len(self.config.data_shape) == 3

    @property
    def partitioner_done_step(self):
        """The first step with a frozen partitioner."""
        c = self.config
        return (c.pretext_steps if self.uses_pretext else 0) + c.partition_steps

    # ------------------------------------------------------------------ networks
    def build_networks(self):
        c = self.config
        super().build_networks()
        self.partitioner = LipschitzPartitioner(
            c.num_generators, blocks=c.partitioner_blocks, layers_per_block=c.partitioner_layers,
            units=c.partitioner_units, lipschitz=c.partitioner_lipschitz, activation=c.partitioner_activation,
            name="partitioner", dtype="float32",  # float32 under any precision: argmax, R_i == 0 and pi must be exact
        )
        self.partitioner.build((None, *c.data_shape))
        if self.uses_pretext:
            self.pretext_head = keras.Sequential(  # float32 like the partitioner it trains
                [keras.Input((self.partitioner.input_dim,)),
                 keras.layers.Dense(c.pretext_units, activation="relu", dtype="float32"),
                 keras.layers.Dense(c.pretext_dim, dtype="float32")], name="pretext_head")
        # pi_i: the share of real data in each partition (a running average of S's assignments).
        self.partition_proportions = self.add_weight(
            name="partition_proportions", shape=(c.num_generators,),
            initializer=keras.initializers.Constant(1.0 / c.num_generators), trainable=False,
            aggregation="only_first_replica",  # every replica computes the same global value
        )

    @property
    def partitioner_variables(self):
        layers = [self.partitioner] + ([self.pretext_head] if self.uses_pretext else [])
        return [v for layer in layers for v in layer.trainable_variables]

    @property
    def generator_variables(self):
        # The partitioner is trained by its own objective and frozen, never by the generator's guide.
        taken = {id(v) for v in self.discriminator_variables + self.partitioner_variables}
        return [v for v in self.trainable_variables if id(v) not in taken]

    # ------------------------------------------------------------------ routing and generation
    def route(self, noise, training=False):
        """p(G_i) = pi_i, whatever z is."""
        z = noise["z"]
        pi = tf.convert_to_tensor(self.partition_proportions)
        return tf.tile(pi[None, :], [tf.shape(z)[0], 1])

    def generate(self, noise, training=False):
        index = choose_from_uniform(self.route(noise, training), noise["u"])
        if not self.generators.shared_trunk:
            return select_generator(self.generators(noise["z"]), index), index
        # Shared trunk: select the input layer's output, then run the trunk once per example.
        heads = self.generators.heads(noise["z"])  # (B, k, h)
        one_hot = tf.one_hot(index, heads.shape[1], dtype=heads.dtype)
        return self.generators.trunk(tf.einsum("bk,bkh->bh", one_hot, heads)), index

    def discriminate(self, x, training=False):
        """D_i(x) for the partition i = argmax_c f_c(x) that x lies in."""
        return pick_column(self.discriminator_logits(x, training), self.partitioner.assign(x))

    def fake_logits(self, noise):
        fake, index = self.generate(noise, training=True)
        return pick_column(self.discriminator_logits(fake, training=True), index)

    # ------------------------------------------------------------------ losses
    def guide_weight_at(self, step):
        """lambda_t: 0 while the partitioner trains, then guide_weight decaying linearly to 0."""
        c = self.config
        since = tf.cast(step, tf.float32) - float(self.partitioner_done_step)
        decay = 1.0 if c.guide_anneal_steps == 0 else tf.clip_by_value(1.0 - since / c.guide_anneal_steps, 0.0, 1.0)
        return tf.where(since >= 0.0, c.guide_weight * decay, 0.0)

    def _current_step(self):
        optimizer = getattr(self, "g_optimizer", None)  # absent while the model is first traced
        return tf.constant(0, tf.int64) if optimizer is None else optimizer.iterations

    def generator_losses(self, step):
        """Eq. 8: the adversarial term of G_i against D_i plus lambda_t R_i(G_i(z))."""
        fake, index = self.generate(step.noise, training=True)
        terms = {"g_adv": self.loss_family.generator(pick_column(self.discriminator_logits(fake, True), index))}
        if self.config.guide_weight > 0:
            terms["g_guide"] = self.guide_weight_at(self._current_step()) * self.partitioner.guide(fake, index)
        return terms

    # ------------------------------------------------------------------ the partitioner's own training
    def partition_noise_spec(self):
        """Noise of the pretext task's two augmented views (images only)."""
        if not self.uses_pretext:
            return {}
        spec = {}
        for view in (1, 2):
            spec.update({f"view{view}_{name}": ((), "uniform01") for name in ("shift", "scale", "offset")})
            spec[f"view{view}_pixels"] = (self.config.data_shape, "normal")
        return spec

    def partitioner_losses(self, real, step):
        """Masked pretext (Eq. 4) and partition (Eq. 5) losses on the global batch ``real``.

        Returns (total loss, {name: scalar to log}, S(real)). The mask picks the phase of ``step``.
        """
        c = self.config
        step = tf.cast(step, tf.int64)
        pretext_end = c.pretext_steps if self.uses_pretext else 0
        in_pretext = tf.cast(step < pretext_end, tf.float32)
        in_partition = tf.cast((step >= pretext_end) & (step < self.partitioner_done_step), tf.float32)
        batch = real.shape[0]
        probs = self.partitioner(real)
        if self.uses_pretext:
            seed = tf.stack([tf.constant(c.seed, tf.int64), step * SALTS_PER_STEP + _PARTITION_SALT])
            noise = self.sample_noise(batch, seed, self.partition_noise_spec())
            views = [self.pretext_head(self.partitioner.features(augment(real, noise, v))) for v in (1, 2)]
            pretext = contrastive_loss(*views, c.pretext_temperature)
            # The k-NN graph on the pretext embedding h (held fixed for this loss).
            embedding = tf.math.l2_normalize(tf.stop_gradient(self.pretext_head(self.partitioner.features(real))), -1)
        else:
            pretext = tf.constant(0.0)
            embedding = tf.reshape(real, [batch, -1])
        neighbours = nearest_neighbours(embedding, min(c.neighbours, batch - 1))
        terms = partition_objective(probs, neighbours, c.entropy_weight, c.balance_weight)
        loss = in_pretext * pretext + in_partition * terms["loss"]
        logs = {"p_consistency": terms["consistency"], "p_entropy": terms["entropy"], "p_balance": terms["balance"]}
        if self.uses_pretext:
            logs["p_contrastive"] = pretext
        return loss, logs, probs

    def _partitioner_update(self, real):
        c = self.config
        step = self.g_optimizer.iterations
        context = tf.distribute.get_replica_context()
        replicas = context.num_replicas_in_sync if context is not None else 1
        if replicas > 1:  # the k-NN graph and H(mean S) need the global batch
            real = tf.reshape(context.all_gather(real, axis=0), [real.shape[0] * replicas, *real.shape[1:]])  # static
        variables = self.partitioner_variables
        with tf.GradientTape() as tape:
            loss, logs, probs = self.partitioner_losses(real, step)
            scaled = loss / replicas  # every replica holds the whole loss; gradients are summed
        grads = tape.gradient(scaled, variables)
        training = tf.cast(step, tf.int64) < self.partitioner_done_step
        # The zero mask makes a frozen phase exact for any optimizer (the default's rate is also 0).
        mask = tf.cast(training, tf.float32)
        self.p_optimizer.apply_gradients([(g * mask, v) for g, v in zip(grads, variables) if g is not None])
        self.partitioner.update_power_vectors(training)
        counts = tf.reduce_mean(tf.one_hot(tf.argmax(probs, -1), c.num_generators), axis=0)
        m = c.proportion_momentum
        self.partition_proportions.assign(m * self.partition_proportions + (1.0 - m) * counts)
        self._trackers["p_loss"].update_state(loss)
        for name, value in logs.items():
            self._trackers[name].update_state(value)

    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data
        self._partitioner_update(real)
        return super().train_step(data)

    # ------------------------------------------------------------------ inference: rejection
    def rejection_score(self, rule, noise, samples):
        """``partition``: -R_i(x) for the generator i that made x; accepted at threshold 0, i.e.
        only when x lies in its generator's partition A_i (section 4.2)."""
        if rule == "partition":
            index = choose_from_uniform(self.route(noise), noise["u"])
            return -self.partitioner.guide(samples, index)
        return super().rejection_score(rule, noise, samples)

    # ------------------------------------------------------------------ Keras plumbing
    def _build_by_tracing(self):
        super()._build_by_tracing()
        _, logs, _ = self.partitioner_losses(tf.zeros([2, *self.config.data_shape]), 0)  # builds the pretext head
        for name in ("p_loss", *logs):
            self._trackers[name] = keras.metrics.Mean(name=name)

    def compile(self, d_optimizer=None, g_optimizer=None, p_optimizer=None, **kwargs):
        """As the base, plus the partitioner's optimizer: Adam whose rate drops to zero once the
        partitioner is trained (so it is frozen exactly), unless one is given."""
        super().compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **kwargs)
        if p_optimizer is not None:
            self.p_optimizer = keras.optimizers.get(p_optimizer)
        else:
            # PiecewiseConstantDecay keeps values[0] while iterations <= boundary: the last training
            # step is partitioner_done_step - 1 (the optimizer steps once per train step).
            rate = keras.optimizers.schedules.PiecewiseConstantDecay(
                [self.partitioner_done_step - 1], [self.config.partitioner_learning_rate, 0.0])
            self.p_optimizer = keras.optimizers.Adam(learning_rate=rate)
        self.p_optimizer.build(self.partitioner_variables)

    def get_compile_config(self):
        return {**super().get_compile_config(), "p_optimizer": keras.optimizers.serialize(self.p_optimizer)}

    def compile_from_config(self, config):
        config = dict(config)
        if "p_optimizer" in config:
            config["p_optimizer"] = keras.optimizers.deserialize(config["p_optimizer"])
        super().compile_from_config(config)
