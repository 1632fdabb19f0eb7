"""Choosing a ``tf.distribute`` strategy by name: default, mirrored, multiworker, tpu.

On a machine without GPUs, ``mirrored`` splits the CPU into N logical devices, which is how
multi-device code is exercised here; with GPUs it mirrors over them. ``multiworker`` reads the
cluster from ``TF_CONFIG``. ``tpu`` resolves and initialises a TPU system; everything it needs
(static shapes, XLA-compilable steps) is tested on CPU with ``jit_compile=True``.
"""
import functools

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multiworker", "tpu")


def split_cpu(num_devices):
    """Expose ``num_devices`` logical CPU devices. Must run before TensorFlow's runtime starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) >= num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)
    except RuntimeError as error:
        raise RuntimeError(
            f"cannot split the CPU into {num_devices} devices after TensorFlow has started; "
            "call split_cpu() first thing in the process"
        ) from error


def make_strategy(name="default", devices=None, tpu=None):
    """Build the named strategy. ``devices``: replicas for ``mirrored``; ``tpu``: TPU address."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            names = [f"/gpu:{i}" for i in range(devices or len(gpus))]
        else:
            split_cpu(devices or 2)
            names = [d.name for d in tf.config.list_logical_devices("CPU")][: devices or 2]
        return mirrored_strategy(tuple(names))
    if name == "multiworker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or "")
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


@functools.cache
def mirrored_strategy(devices):
    """One ``MirroredStrategy`` per device set and process.

    Every new instance numbers its collective ops from the same keys, and the runtime remembers
    each key's tensor shape, so a second instance over the same devices fails with "Shape
    mismatch in the collective instance". Reusing the instance keeps the keys unique.
    """
    return tf.distribute.MirroredStrategy(list(devices))
