"""K components (generators or discriminators) split into round-robin groups, each on its device."""
import contextlib

import numpy as np
import tensorflow as tf


class ComponentSplit:
    """K components (generators or discriminators) held in ``groups`` round-robin groups: group g
    holds components g, g + groups, g + 2 groups, ... (paper 001 section V: component k on device
    k mod n). ``apply`` runs a per-group function and returns the K outputs in component order.

    Device scopes are used only when asked (``placed``), when devices are given, and never under a
    ``tf.distribute`` strategy, which places everything itself (data parallelism).
    """

    def __init__(self, num_components, groups=1, devices=()):
        self.groups = max(1, min(int(groups), int(num_components)))
        self.devices = tuple(devices)
        self.members = [list(range(g, num_components, self.groups)) for g in range(self.groups)]
        order = [k for members in self.members for k in members]  # component at each concatenated position
        self.inverse = np.argsort(order).astype(np.int32)  # numpy: a constant in every traced graph

    def device_scope(self, group, placed):
        if not placed or not self.devices or tf.distribute.has_strategy():
            return contextlib.nullcontext()
        return tf.device(self.devices[group % len(self.devices)])

    def apply(self, fn, x, per_component, placed=False):
        """``fn(g, x_g)`` -> ``(N, K_g, ...)``; ``x`` is shared, or ``(N, K, ...)`` when ``per_component``."""
        if self.groups == 1:
            with self.device_scope(0, placed):
                return fn(0, x)
        outputs = []
        for g, members in enumerate(self.members):  # a loop over devices, not over components
            with self.device_scope(g, placed):
                xg = tf.gather(x, np.asarray(members, np.int32), axis=1) if per_component else x
                outputs.append(fn(g, xg))
        return tf.gather(tf.concat(outputs, axis=1), self.inverse, axis=1)
