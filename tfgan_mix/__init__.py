"""tfgan_mix: mixture-of-generators GANs for Keras 3 / TensorFlow.

    import tfgan_mix
    model = tfgan_mix.get_method("npgan")(data_shape=(2,), num_generators=3)
"""
from tfgan_mix.core import GANConfig, MixtureGAN, get_method, list_methods, register_method

__all__ = ["GANConfig", "MixtureGAN", "get_method", "list_methods", "register_method"]
__version__ = "0.1.0"
