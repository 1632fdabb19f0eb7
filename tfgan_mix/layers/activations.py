"""Activation lookup by name, shared by every network in the package."""
import tensorflow as tf

_ACTIVATIONS = {
    None: tf.identity,
    "linear": tf.identity,
    "leaky_relu": lambda x: tf.nn.leaky_relu(x, alpha=0.2),
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "elu": tf.nn.elu,
    "sigmoid": tf.sigmoid,
}


def get_activation(name):
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(k for k in _ACTIVATIONS if k)}") from None
