"""The base model, its config and the method registry.

The registry imports no TensorFlow and is loaded here; the base model's names are loaded from
``tfgan_mix.core.base`` on first access, so listing methods (``tfgan-mix methods``) never loads
TensorFlow.
"""
from tfgan_mix.core.registry import get_method, list_methods, register_method

_FROM_BASE = ("GANConfig", "MixtureGAN", "Step", "build_model", "choose_from_uniform", "select_generator")


def __getattr__(name):
    """``GANConfig`` and the other base names, loaded on first access (module ``__getattr__``, PEP 562)."""
    if name not in _FROM_BASE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Imported here, not at the top: base.py imports TensorFlow, which the registry's users
    # (the listing commands of the command line) must not pay for.
    from tfgan_mix.core import base

    value = getattr(base, name)
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__():
    return sorted({*globals(), *_FROM_BASE})


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
