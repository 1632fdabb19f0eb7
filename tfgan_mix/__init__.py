"""tfgan_mix: mixture-of-generators GANs for Keras 3 / TensorFlow.

    import tfgan_mix
    model = tfgan_mix.get_method("npgan")(data_shape=(2,), num_generators=3)

Importing the package loads no TensorFlow (the ``tfgan-mix`` command lives in it, and its help and
listing commands answer without TensorFlow): ``get_method`` imports a method's module when first
asked for it, and ``GANConfig``/``MixtureGAN`` load on first access. ``import tfgan_mix.methods``
registers every built-in method, which ``keras.models.load_model`` needs to deserialise a model
file (``tfgan_mix.runs.load_run`` does it for a run directory).
"""
from tfgan_mix import core
from tfgan_mix.core import get_method, list_methods, register_method

_FROM_CORE = ("GANConfig", "MixtureGAN")


def __getattr__(name):
    """``GANConfig`` and ``MixtureGAN`` from ``tfgan_mix.core``, which loads them (and TensorFlow) on first access."""
    if name not in _FROM_CORE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(core, name)


def __dir__():
    return sorted({*globals(), *_FROM_CORE})


__all__ = ["GANConfig", "MixtureGAN", "get_method", "list_methods", "register_method"]
__version__ = "0.1.0"
