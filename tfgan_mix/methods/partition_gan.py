"""``partition_gan``: Partition GAN (paper 002, "Partition-Guided GANs", section 4.1).

PGMGAN without the guide: the same space partitioner (contrastive pretext for images, Eq. 4; the
k-NN partition objective, Eq. 5; the Lipschitz residual architecture of section 4.2), one
generator and one discriminator per partition sharing all but their input / last layer, trained
on the objective of Eq. 1-2 with partitions drawn with the data proportions pi_i, but lambda = 0
in Eq. 8 (the paper's "Partition GAN" ablation, Tables 1-2 and Figure 5: "lambda = 0 corresponds
to the partition+GAN"). Everything else is PGMGAN's: the k-NN graph mined in the frozen pretext
embedding (raw data for low-dimensional data), the exact freeze of the partitioner after its
phase, and D_i trained on the real points of A_i and on the fakes of G_i inside A_i only (Eq. 2).
Without the guide nothing but D_i acts on G_i, and D_i is never trained on G_i's fakes outside
A_i, so those get no deliberate signal; samples are still accepted only inside their generator's
partition (R_i(x) == 0), which needs no training signal from the guide.
"""
import dataclasses

from tfgan_mix.core import register_method
from tfgan_mix.methods.pgmgan import PGMGAN, PGMGANConfig


@dataclasses.dataclass
class PartitionGANConfig(PGMGANConfig):
    guide_weight: float = 0.0  # section 5.4, Figure 5: lambda = 0 is Partition GAN


@register_method("partition_gan")
class PartitionGAN(PGMGAN):
    config_class = PartitionGANConfig
