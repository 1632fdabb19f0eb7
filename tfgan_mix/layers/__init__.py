"""Building blocks: the vectorised generator bank and the routers."""
from tfgan_mix.layers.activations import get_activation
from tfgan_mix.layers.gating import SoftBinaryTree, SoftmaxGate, tree_paths
from tfgan_mix.layers.generator_bank import GeneratorBank
from tfgan_mix.layers.minibatch import MinibatchDiscrimination

__all__ = ["GeneratorBank", "SoftBinaryTree", "SoftmaxGate", "get_activation", "tree_paths"]
