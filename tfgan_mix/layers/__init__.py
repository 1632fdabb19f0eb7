"""Building blocks: the vectorised generator and discriminator banks (on the stacked kernels of
``layers.stacked``) and the routers."""
from tfgan_mix.layers.activations import get_activation
from tfgan_mix.layers.component_split import ComponentSplit
from tfgan_mix.layers.discriminator_bank import DiscriminatorBank
from tfgan_mix.layers.gating import SoftBinaryTree, SoftmaxGate, tree_paths
from tfgan_mix.layers.generator_bank import GeneratorBank
from tfgan_mix.layers.minibatch import MinibatchDiscrimination

__all__ = ["ComponentSplit", "DiscriminatorBank", "GeneratorBank", "SoftBinaryTree", "SoftmaxGate",
           "get_activation", "tree_paths"]
