"""Discriminator trunks. (Generator backbones live in ``layers.GeneratorBank``.)

* ``mlp``: Dense layers with LeakyReLU/ReLU, for points (paper 000 uses 1000-200-100).
* ``dcgan``: strided 3x3 convs with LeakyReLU (Radford et al. 2015), for images.

``num_outputs`` > 1 gives auxiliary heads on the same trunk (column 0 is always the adversarial
logit), which is how methods add a classifier that shares the discriminator's trunk.

``minibatch_discrimination=True`` appends a ``MinibatchDiscrimination`` layer (Salimans et al. 2016)
to the trunk's last features, before the logits, as paper 000's toy discriminator uses (section 4.1).
"""
import keras

from tfgan_mix.layers.minibatch import MinibatchDiscrimination


def build_discriminator(
    input_shape,
    *,
    backbone="mlp",
    units=(1000, 200, 100),
    conv_filters=(32, 64),
    activation="leaky_relu",
    num_outputs=1,
    minibatch_discrimination=False,
    minibatch_kernels=5,
    minibatch_kernel_dim=3,
    name="discriminator",
):
    """A Keras model mapping a batch of samples to logits of shape ``(B, num_outputs)``."""
    layers = [keras.Input(shape=tuple(input_shape))]
    if backbone == "mlp":
        layers.append(keras.layers.Flatten())
        for width in units:
            layers += [keras.layers.Dense(width), _activation_layer(activation)]
    elif backbone == "dcgan":
        if len(input_shape) != 3:
            raise ValueError(f"the dcgan discriminator needs image input (h, w, c), got {tuple(input_shape)}")
        for filters in conv_filters:
            layers += [keras.layers.Conv2D(filters, 3, strides=2, padding="same"), _activation_layer(activation)]
        layers.append(keras.layers.Flatten())
    else:
        raise ValueError(f"unknown discriminator backbone {backbone!r}; choose 'mlp' or 'dcgan'")
    if minibatch_discrimination:
        layers.append(MinibatchDiscrimination(minibatch_kernels, minibatch_kernel_dim, name="minibatch_discrimination"))
    # float32 logits under mixed precision: losses and rejection thresholds need the range.
    layers.append(keras.layers.Dense(num_outputs, name="logits", dtype="float32"))
    return keras.Sequential(layers, name=name)


def _activation_layer(name):
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=0.2)
    return keras.layers.Activation(name)
