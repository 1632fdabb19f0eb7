"""The base model, its config and the method registry."""
from tfgan_mix.core.base import GANConfig, MixtureGAN, Step, choose_from_uniform, select_generator
from tfgan_mix.core.registry import get_method, list_methods, register_method

__all__ = [
    "GANConfig",
    "MixtureGAN",
    "Step",
    "choose_from_uniform",
    "get_method",
    "list_methods",
    "register_method",
    "select_generator",
]
