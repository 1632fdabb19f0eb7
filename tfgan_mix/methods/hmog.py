"""``hmog``: hierarchical mixture of generators (paper 004, section III).

MoG with the flat softmax gate replaced by a soft binary decision tree: internal node m sends z
left with probability sigma_m(z) = sigmoid(v_m z + v_m0) (Eq. 5), and the response of a node is
the gate-weighted sum of its children's (Eq. 6), down to linear leaf generators (Eq. 7). Unrolled,
the root's response is sum over leaves of (product of gate values on the path) x G_leaf(z), which
is exactly MoG's combination with the tree's leaf probabilities as weights, so everything but
the router is inherited. K = 2**depth leaves; the toy uses depth 3 (8 generators).
"""
import dataclasses
import math

from tfgan_mix.core import register_method
from tfgan_mix.layers import SoftBinaryTree
from tfgan_mix.methods.mog import MoG, MoGConfig


@dataclasses.dataclass
class HMoGConfig(MoGConfig):
    def _check(self):
        super()._check()
        k = int(self.num_generators)
        if k < 2 or 2 ** round(math.log2(k)) != k:
            raise ValueError(f"hmog needs a power of two >= 2 generators (a complete binary tree), got {k}")


@register_method("hmog")
class HMoG(MoG):
    config_class = HMoGConfig

    def make_gate(self):
        return SoftBinaryTree(depth=round(math.log2(self.config.num_generators)), name="gate")
