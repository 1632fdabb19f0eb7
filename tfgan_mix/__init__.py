"""tfgan_mix: mixture-of-generators GANs for Keras 3 / TensorFlow.

    import tfgan_mix
    model = tfgan_mix.get_method("npgan")(data_shape=(2,), num_generators=3)
"""
from tfgan_mix.core import GANConfig, MixtureGAN, get_method, list_methods, register_method
from tfgan_mix import methods  # noqa: F401  (registers the built-in methods, so load_model finds them)

__all__ = ["GANConfig", "MixtureGAN", "get_method", "list_methods", "register_method"]
__version__ = "0.1.0"
