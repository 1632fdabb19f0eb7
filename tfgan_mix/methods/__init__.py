"""Every built-in method. Importing this package registers them all."""
from tfgan_mix.methods import gan, hmog, mog, npgan, wgan_gp  # noqa: F401
