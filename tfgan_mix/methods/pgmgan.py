"""``pgmgan``: Partition-Guided Mixture of GANs (paper 002, "Partition-Guided GANs").

A space partitioner S splits the data space into k regions A_1..A_k; generator G_i and
discriminator D_i learn the data restricted to A_i, weighted by pi_i = p_data(x in A_i):

    sum_i pi_i [min_{G_i} max_{D_i} V(D_i, G_i, A_i)]                               (Eq. 1)
    V(D, G, A) = E_{x ~ p_data(x | x in A)} log D(x) + E_{z ~ p_z(z | G(z) in A)} log(1 - D(G(z)))   (Eq. 2)

G_i share every parameter but their input layer and D_i every parameter but their last layer
(section 4): a GeneratorBank with a shared trunk, and one discriminator with k output columns.

Partitioner (section 4.1), trained inside ``fit`` before it is used, in phases of the step count t:

1. t < pretext_steps (images only): the pretext network h = W2 sigma(W1 phi_0(x)) learned with
   the contrastive loss of Eq. 4 on two augmented views of each image (SimCLR's NT-Xent).
   Low-dimensional data skip this phase, as the paper's toy does (section 5.1).
2. pretext_steps <= t < pretext_steps + partition_steps: S(x) = softmax(W phi(x)) trained to
   maximise Eq. 5 on a k-NN graph E:
       sum_(i,j) in E log(S(x_i)^T S(x_j)) - alpha sum_i H(S(x_i)) + beta H(sum_i S(x_i) / N)
   initialised as the paper says: phi = phi_0 (copied from the pretext network when its phase
   ends), W a new random matrix.
3. Afterwards S is frozen exactly (see below), and so is the pretext network after phase 1.

The k-NN graph (Eq. 5's E). SCAN (Van Gansbeke et al. 2020), which section 4.1 follows, mines the
nearest neighbours once, over the dataset, in the embedding of the *frozen* pretext network, then
trains the clustering head on those fixed pairs. Here the pretext network (phi_0 and the head) is
a separate network from S and is frozen when its phase ends, so the mining space is fixed for the
whole partition phase, as in SCAN; for low-dimensional data (no pretext) it is the raw data. The
one departure: the neighbours are mined within each global batch (all replicas' examples), not
over the whole dataset, because ``train_step`` sees only batches, must keep static shapes (XLA)
and must give every replica the same graph (each replica gathers the global batch, so they do).
With the frozen embedding the batch graph is the dataset graph restricted to the batch; with
fewer candidates the k-th neighbour is farther than over the dataset (choose ``neighbours`` well
below the number of examples per partition in a batch).

Exact freezing. Every partitioner update applies the optimizer to all partitioner variables with
the inactive phase's loss masked to zero, then puts the variables of every inactive group back to
their values before the update (a masked assign: static control flow, no ``tf.cond``). A zero
gradient alone does not freeze a momentum optimizer -- Adam keeps moving on its first moment --
so this restore is what makes "frozen" exact for any optimizer.

phi is the Lipschitz residual network of section 4.2 (``layers.partitioner``), so the guide

    R_i(x) = sum_c (f_c(x) - f_i(x))_+                                           (Eq. 6)

has no local optimum outside A_i (Theorem 3). The generator loss adds it (Eq. 8):

    min_{G_i} -log D_i(G_i(z)) + lambda_t R_i(G_i(z)),

The guide's scale. Eq. 6 sums the k hinge terms; the authors' released code (its toy and its image
clusterers alike) averages them, -relu(logits - f_i).mean(-1), so its lambda = 6 weighs R_i / k.
With the sum, lambda = 6 at k = 50 was 50 times the authors' weight: measured on stacked_digits
(seed 0), the guide term averaged 3.46 over the run against 1.18 for the adversarial term. ``guide_average``
(default True) uses R_i / k in the generator loss; the partition test R_i == 0 is the same either way.
Measured (``tfgan-mix bench`` paper 002 runs, 3 seeds): on stacked_digits (k = 50) the averaged guide
covers 985 / 989 / 997 modes, reverse KL 0.306 / 0.353 / 0.288, where the sum covered 944 (0.522,
seed 0); on grid25 (k = 25) the sum is the better weight (24.3 modes, high-quality rate 0.76,
against 20.3 and 0.54 averaged), so the ``pgmgan_grid25`` preset sums (the paper gives no toy weight).

lambda_t = 0 until the partitioner is frozen, then ``guide_weight`` annealed linearly ("linear
annealing has been done during training", section 5.4): by default (``guide_anneal_steps=None``)
to 0 at the last step of the run ``fit`` is given (epochs x steps_per_epoch; the step is stored in
the ``guide_end_step`` weight, so a saved run keeps its schedule); an explicit
``guide_anneal_steps = n`` anneals over n steps instead, and 0 keeps lambda constant.

D_i sees the real points S assigns to A_i (x | x in A_i) and, per Eq. 2, only the fakes of G_i
that fall inside A_i (z | G_i(z) in A_i): a fake outside its generator's partition gets weight 0
and the ones inside stand for their generator's share of the batch (``restricted_fake_weights``;
static shapes, no boolean mask), with ``restrict_fakes=True``. The default, ``False``, trains D_i on
all of G_i's fakes (a conditional GAN's loss), as the authors' released training code does: the
restricted form leaves a fake outside A_i unopposed by D_i, so only the guide brings G_i's samples
into A_i, and with lambda = 0 (Partition GAN) nothing does. Measured on grid25 (3000 steps, seed 0,
with the guide then summed over the k partitions, ``guide_average=False``): Partition GAN 24 modes
unrestricted against 5 restricted (20% of samples inside their partition), PGMGAN high-quality rate
0.775 against 0.576.
Generator i is drawn with probability pi_i, a running average of
S's assignments of the real batches. At inference the example's uniform u picks i by inverse CDF
on pi, and the ``partition`` rejection rule accepts a sample of G_i only when R_i(x) == 0
(section 4.2) -- the default rule.

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
import inspect

import keras
import tensorflow as tf

from tfgan_mix.core import GANConfig, MixtureGAN, choose_from_uniform, register_method, select_generator
from tfgan_mix.core.base import METHOD_SALT, SALTS_PER_STEP, global_sum, real_part
from tfgan_mix.layers.partitioner import LipschitzPartitioner, ProjectionHead, nearest_neighbours
from tfgan_mix.losses import categorical_entropy

_PARTITION_SALT = METHOD_SALT  # the base uses salts 0..d_steps and the last one (test_step)


@dataclasses.dataclass
class PGMGANConfig(GANConfig):
    num_generators: int = 200  # k, section 5.2 ("we use k = 200 unless specified otherwise")
    latent_dim: int = 128  # SN-GAN's z (section 5 adopts SN-GAN's generators)
    noise: str = "normal"  # SN-GAN's z ~ N(0, I)
    shared_trunk: bool = True  # section 4: G_i share all parameters but the input layer
    guide_weight: float = 6.0  # lambda of Eq. 8, initial value (section 5.4)
    guide_average: bool = True  # the guide term is R_i / k, as the authors' code computes it (module doc); False: Eq. 6's sum
    restrict_fakes: bool = False  # True: Eq. 2 literally, D_i sees only G_i's fakes inside A_i (see module doc)
    guide_anneal_steps: int | None = None  # None: lambda -> 0 linearly by the end of the run (section 5.4); n: over n steps; 0: constant
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
            if getattr(self, name) is not None and int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("restrict_fakes", "guide_average"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if int(self.neighbours) < 1:
            raise ValueError(f"neighbours must be >= 1, got {self.neighbours}")
        if not 0.0 <= self.proportion_momentum < 1.0:
            raise ValueError(f"proportion_momentum must lie in [0, 1), got {self.proportion_momentum}")


# ---------------------------------------------------------------------- pure losses
def partition_objective(probs, neighbours, alpha, beta):
    """The terms of Eq. 5 as losses to minimise (paper 002, section 4.1), averaged per edge / point:

        consistency = -mean_(i,j) in E log(S_i . S_j)   (neighbours share a partition)
        entropy     =  mean_i H_C(S_i)                  (confident assignments; weight alpha)
        balance     =  H_C(mean_i S_i)                  (no empty partitions; weight beta, maximised)

    with H_C the categorical entropy (``losses.categorical_entropy``). ``probs`` (N, k), ``neighbours``
    (N, n) indices into the rows. Eq. 5 sums rather than averages its first two terms; averaging only
    rescales alpha and beta. Returns a dict of scalars with ``loss = consistency + alpha * entropy -
    beta * balance``.
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


# The fake half of each loss family's discriminator loss (every family's is a sum real + fake).
_FAKE_TERMS = {
    "ns": tf.nn.softplus,  # -log(1 - sigmoid(f))
    "minimax": tf.nn.softplus,
    "wasserstein": lambda f: f,
    "hinge": lambda f: tf.nn.relu(1.0 + f),
}


def fake_term(loss_name, fake_logits):
    """The fake part of the discriminator loss of ``loss_name``, per example."""
    if loss_name not in _FAKE_TERMS:
        raise ValueError(f"pgmgan cannot restrict D's fake term for loss {loss_name!r}; "
                         f"supported: {sorted(_FAKE_TERMS)}")
    return _FAKE_TERMS[loss_name](fake_logits)


def restricted_fake_weights(index, inside, num_generators):
    """Per-fake weights that turn a batch average into Eq. 1-2's fake term (paper 002):

        sum_i pi_i E_{z ~ p_z(z | G_i(z) in A_i)} [log(1 - D_i(G_i(z)))]

    G_i made n_i of the batch's fakes (n_i / N estimates pi_i, the rate generator i is drawn at)
    and c_i of them fall inside A_i (``inside``). The conditional mean over those c_i, weighted by
    n_i / N, is (1/N) sum_b w_b loss_b with w_b = inside_b * n_(i_b) / c_(i_b): a fake outside its
    partition weighs 0, one inside stands for its generator's share. A generator with no fake
    inside A_i in the batch drops out of that batch's estimate. Counts are over the global batch
    (summed across replicas), so the weights do not depend on the number of replicas. Static
    shapes: one-hot sums, no boolean mask. ``index`` (B,) int, ``inside`` (B,) bool -> (B,) float32.
    """
    one_hot = tf.one_hot(index, num_generators, dtype=tf.float32)
    inside = tf.cast(inside, tf.float32)
    drawn = global_sum(tf.reduce_sum(one_hot, axis=0))  # n_i
    kept = global_sum(tf.reduce_sum(one_hot * inside[:, None], axis=0))  # c_i
    ratio = drawn / tf.maximum(kept, 1.0)
    return inside * tf.reduce_sum(one_hot * ratio[None, :], axis=-1)


# ---------------------------------------------------------------------- the method
@register_method("pgmgan")
class PGMGAN(MixtureGAN):
    config_class = PGMGANConfig
    extra_optimizers = ("p_optimizer",)  # saved with the compile config
    rejection_rules = MixtureGAN.rejection_rules + ("partition", "partition_manifold")
    # Section 4.2 accepts a sample of G_i only when R_i(x) == 0; the default adds the data manifold,
    # since a partition cell is wider than its mode (export/rules.py, PartitionManifold).
    default_rejection = "partition_manifold"

    @property
    def discriminator_outputs(self):
        """D_i(x) is column i: the k discriminators share all but their last layer (section 4)."""
        return self.config.num_generators

    @property
    def uses_pretext(self):
        """Images get the contrastive pretext embedding; low-dimensional data skip it (section 5.1)."""
        return len(self.config.data_shape) == 3

    @property
    def pretext_done_step(self):
        """The first step of the partition phase (0 without a pretext phase)."""
        return self.config.pretext_steps if self.uses_pretext else 0

    @property
    def partitioner_done_step(self):
        """The first step with a frozen partitioner."""
        return self.pretext_done_step + self.config.partition_steps

    def phases(self, step):
        """(in_pretext, in_partition) as bool scalars for train step ``step``."""
        step = tf.cast(step, tf.int64)
        return step < self.pretext_done_step, (step >= self.pretext_done_step) & (step < self.partitioner_done_step)

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
            # The pretext network h = W2 sigma(W1 phi_0(x)) (section 4.1): its own trunk phi_0, the
            # partitioner's architecture, copied into S's phi when the pretext phase ends; frozen
            # afterwards, so the k-NN graph of Eq. 5 is mined in a fixed embedding (SCAN).
            self.pretext_trunk = LipschitzPartitioner(
                0, blocks=c.partitioner_blocks, layers_per_block=c.partitioner_layers,
                units=c.partitioner_units, lipschitz=c.partitioner_lipschitz, activation=c.partitioner_activation,
                name="pretext_trunk", dtype="float32")
            self.pretext_trunk.build((None, *c.data_shape))
            self.pretext_head = ProjectionHead(c.pretext_units, c.pretext_dim, name="pretext_head", dtype="float32")
            self.pretext_head.build((None, self.partitioner.input_dim))
        # The last step of the run fit was given (epochs x steps_per_epoch): lambda reaches 0 there.
        self.guide_end_step = self.add_weight(
            name="guide_end_step", shape=(), dtype="int64", initializer="zeros", trainable=False,
            aggregation="only_first_replica")
        # pi_i: the share of real data in each partition (a running average of S's assignments).
        self.partition_proportions = self.add_weight(
            name="partition_proportions", shape=(c.num_generators,),
            initializer=keras.initializers.Constant(1.0 / c.num_generators), trainable=False,
            aggregation="only_first_replica",  # every replica computes the same global value
        )

    @property
    def pretext_variables(self):
        """phi_0 and the projection head: trained in the pretext phase only (images)."""
        if not self.uses_pretext:
            return []
        return [v for layer in (self.pretext_trunk, self.pretext_head) for v in layer.trainable_variables]

    @property
    def partition_variables(self):
        """phi, W and b of S: trained in the partition phase only."""
        return list(self.partitioner.trainable_variables)

    @property
    def partitioner_variables(self):
        return self.partition_variables + self.pretext_variables

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
        # pi is one distribution for every row: its CDF once, not one per row of a (B, k) tile.
        index = choose_from_uniform(tf.convert_to_tensor(self.partition_proportions), noise["u"])
        if not self.generators.shared_trunk:
            return select_generator(self.generators(noise["z"]), index), index
        # Shared trunk: only each example's own input layer, then the trunk once per example, so
        # the step's cost does not grow with k (paper 002 runs k = 200).
        return self.generators.trunk(self.generators.own_heads(noise["z"], index)), index

    def discriminator_column(self, x, index, training=False):
        """D_i(x) with i = ``index`` per row, (B,): the shared trunk once, then only each row's own
        column of the k-wide last layer (gathered), so D's cost does not grow with k either."""
        if self.config.num_generators == 1:  # one column: the plain layer (a gather measured 5% slower)
            return self.discriminator_logits(x, training)[:, 0]
        logits = self.discriminator.layers[-1]
        # float32 logits under mixed precision, as the Dense layer casts its input
        h = tf.cast(self.discriminator_features(x, training), logits.compute_dtype)
        kernel = tf.gather(tf.transpose(tf.convert_to_tensor(logits.kernel)), index)  # (B, features)
        return tf.reduce_sum(h * kernel, axis=-1) + tf.gather(tf.convert_to_tensor(logits.bias), index)

    def discriminate(self, x, training=False):
        """D_i(x) for the partition i = argmax_c f_c(x) that x lies in."""
        return self.discriminator_column(x, self.partitioner.assign(x), training)

    def fake_logits(self, noise):
        fake, index = self.generate(noise, training=True)
        return self.discriminator_column(fake, index, training=True)

    # ------------------------------------------------------------------ losses
    def inside_own_partition(self, samples, index):
        """Whether each sample lies in its generator's partition: R_i(x) == 0 (Eq. 7), (B,) bool."""
        return self.partitioner.guide(samples, index) <= 0.0

    def discriminator_losses(self, step):
        """Eq. 1-2: D_i on the real points of A_i and on the fakes of G_i that lie in A_i.

        Real points are routed to D_i by the partition they lie in (so the batch average is
        sum_i pi_i E[. | x in A_i]); fakes are weighted by ``restricted_fake_weights``.
        """
        real_logits = self.discriminate(step.real, training=True)
        fake, index = self.generate(step.noise, training=True)
        fake_logits = self.discriminator_column(fake, index, training=True)
        fake_part = fake_term(self.config.loss, fake_logits)
        real_part = self.loss_family.discriminator(real_logits, fake_logits) - fake_part
        if not self.config.restrict_fakes:
            return {"d_adv": real_part + fake_part, **self.gradient_penalty_terms(step)}
        weight = tf.stop_gradient(restricted_fake_weights(
            index, self.inside_own_partition(tf.stop_gradient(fake), index), self.config.num_generators))
        return {"d_adv": real_part + weight * fake_part, **self.gradient_penalty_terms(step)}

    def guide_weight_at(self, step):
        """lambda_t of Eq. 8: 0 while the partitioner trains, then ``guide_weight`` decaying
        linearly (section 5.4): to 0 at the end of the run ``fit`` was given (``guide_end_step``)
        when ``guide_anneal_steps`` is None, over ``guide_anneal_steps`` steps otherwise, never
        when it is 0."""
        c = self.config
        start = float(self.partitioner_done_step)
        since = tf.cast(step, tf.float32) - start
        if c.guide_anneal_steps == 0:
            decay = tf.constant(1.0)
        else:
            if c.guide_anneal_steps is None:
                length = tf.cast(tf.convert_to_tensor(self.guide_end_step), tf.float32) - start
            else:
                length = tf.constant(float(c.guide_anneal_steps))
            decay = tf.where(length > 0.0, tf.clip_by_value(1.0 - since / tf.maximum(length, 1.0), 0.0, 1.0), 0.0)
        return tf.where(since >= 0.0, c.guide_weight * decay, 0.0)

    def generator_losses(self, step):
        """Eq. 8: the adversarial term of G_i against D_i plus lambda_t R_i(G_i(z)), with R_i / k when
        ``guide_average`` (the authors' scale, module doc)."""
        fake, index = self.generate(step.noise, training=True)
        terms = {"g_adv": self.loss_family.generator(self.discriminator_column(fake, index, training=True))}
        if self.config.guide_weight > 0:
            guide = self.partitioner.guide(fake, index)
            if self.config.guide_average:
                guide = guide / self.config.num_generators
            terms["g_guide"] = self.guide_weight_at(self.current_step) * guide
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

    def mining_embedding(self, real):
        """The space Eq. 5's k-NN graph is mined in: the pretext embedding h = W2 sigma(W1 phi_0(x)),
        L2-normalised (cosine neighbours, as SCAN), for images; the raw data otherwise (section 5.1).
        The pretext network is frozen after its phase, so this is a fixed function in the partition
        phase. No gradient flows through it."""
        if not self.uses_pretext:
            return tf.reshape(real, [real.shape[0], -1])
        return tf.math.l2_normalize(tf.stop_gradient(self.pretext_head(self.pretext_trunk.features(real))), -1)

    def partitioner_losses(self, real, step):
        """Masked pretext (Eq. 4) and partition (Eq. 5) losses on the global batch ``real``.

        Returns (total loss, {name: scalar to log}, S(real)). The masks pick the phase of ``step``.
        """
        c = self.config
        step = tf.cast(step, tf.int64)
        in_pretext, in_partition = (tf.cast(m, tf.float32) for m in self.phases(step))
        batch = real.shape[0]
        probs = self.partitioner(real)
        if self.uses_pretext:
            seed = tf.stack([tf.constant(c.seed, tf.int64), step * SALTS_PER_STEP + _PARTITION_SALT])
            noise = self.sample_noise(batch, seed, self.partition_noise_spec())
            views = [self.pretext_head(self.pretext_trunk.features(augment(real, noise, v))) for v in (1, 2)]
            pretext = contrastive_loss(*views, c.pretext_temperature)
        else:
            pretext = tf.constant(0.0)
        neighbours = nearest_neighbours(self.mining_embedding(real), min(c.neighbours, batch - 1))
        terms = partition_objective(probs, neighbours, c.entropy_weight, c.balance_weight)
        loss = in_pretext * pretext + in_partition * terms["loss"]
        logs = {"p_consistency": terms["consistency"], "p_entropy": terms["entropy"], "p_balance": terms["balance"]}
        if self.uses_pretext:
            logs["p_contrastive"] = pretext
        return loss, logs, probs

    def _partitioner_update(self, real):
        c = self.config
        step = self.current_step
        in_pretext, in_partition = self.phases(step)
        if self.uses_pretext:
            # Section 4.1: S starts from phi_0. Copied while the pretext network trains, so phi holds
            # the final phi_0 when the partition phase starts (at step == pretext_steps).
            self.partitioner.copy_features_from(self.pretext_trunk, tf.cast(step, tf.int64) <= self.pretext_done_step)
        replicas = self.num_replicas()
        real = self.global_gather(real)  # the k-NN graph and H(mean S) need the global batch
        groups = [(self.partition_variables, in_partition), (self.pretext_variables, in_pretext)]
        before = [[tf.identity(tf.convert_to_tensor(v)) for v in variables] for variables, _ in groups]
        variables = self.partitioner_variables
        with tf.GradientTape() as tape:
            loss, logs, probs = self.partitioner_losses(real, step)
            scaled = loss / replicas  # every replica holds the whole loss; gradients are summed
        grads = tape.gradient(scaled, variables)
        self.p_optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        # Exact freeze: a masked (zero) loss does not stop a momentum optimizer, so every variable
        # outside its phase is put back. Static control flow; replicas agree (identical values).
        for (group, active), values in zip(groups, before):
            for v, value in zip(group, values):
                v.assign(tf.where(active, tf.convert_to_tensor(v), value))
        self.partitioner.update_power_vectors(in_partition)
        if self.uses_pretext:
            self.pretext_trunk.update_power_vectors(in_pretext)
        counts = tf.reduce_mean(tf.one_hot(tf.argmax(probs, -1), c.num_generators), axis=0)
        m = c.proportion_momentum
        self.partition_proportions.assign(m * self.partition_proportions + (1.0 - m) * counts)
        self._trackers["p_loss"].update_state(loss)
        for name, value in logs.items():
            self._trackers[name].update_state(value)

    def train_step(self, data):
        self._partitioner_update(real_part(data))
        return super().train_step(data)

    def fit(self, *args, **kwargs):
        """``keras.Model.fit``, which first records the run's last step in ``guide_end_step`` (the
        current step plus (epochs - initial_epoch) x steps_per_epoch) so that lambda anneals to 0
        over the run (``guide_anneal_steps=None``). A run resumed by BackupAndRestore calls fit
        with the same arguments on a fresh model, so it records the same end."""
        arguments = inspect.signature(keras.Model.fit).bind(self, *args, **kwargs).arguments
        steps = arguments.get("steps_per_epoch")
        data = arguments.get("x")
        if steps is None and isinstance(data, tf.data.Dataset) and int(data.cardinality()) > 0:
            steps = int(data.cardinality())
        if steps is not None:
            epochs, initial = arguments.get("epochs", 1), arguments.get("initial_epoch", 0)
            now = int(tf.convert_to_tensor(self.current_step).numpy())
            self.guide_end_step.assign(now + (epochs - initial) * int(steps))
        elif self.config.guide_anneal_steps is None and self.config.guide_weight > 0:
            raise ValueError("guide_anneal_steps=None anneals lambda over the run, but fit cannot tell the "
                             "run's length: pass steps_per_epoch or set guide_anneal_steps")
        return super().fit(*args, **kwargs)

    # ------------------------------------------------------------------ Keras plumbing
    def _build_by_tracing(self):
        super()._build_by_tracing()
        _, logs, _ = self.partitioner_losses(tf.zeros([2, *self.config.data_shape]), 0)  # builds the pretext head
        for name in ("p_loss", *logs):
            self._trackers[name] = keras.metrics.Mean(name=name)

    def compile(self, d_optimizer=None, g_optimizer=None, p_optimizer=None, **kwargs):
        """As the base, plus the partitioner's optimizer (Adam at ``partitioner_learning_rate``
        unless one is given; any optimizer: the phases' freezing does not rely on its rate)."""
        super().compile(d_optimizer=d_optimizer, g_optimizer=g_optimizer, **kwargs)
        if p_optimizer is not None:
            self.p_optimizer = keras.optimizers.get(p_optimizer)
        else:
            self.p_optimizer = keras.optimizers.Adam(learning_rate=self.config.partitioner_learning_rate)
        self.p_optimizer.build(self.partitioner_variables)
