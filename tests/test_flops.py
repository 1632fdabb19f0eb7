"""The FLOP counter of the speed bench (benchmarks/flops.py) against hand counts.

Tracing only, tiny shapes, nothing timed. Throughout, a dense layer ``in -> out`` on a batch of B
is one product of B x in by in x out: B in out multiply-adds, 2 B in out FLOPs. Its backward pass
is two such products of the same size: the kernel's gradient (x^T dy) and the input's (dy W^T).
"""
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfgan_mix.layers import GeneratorBank
from tfgan_mix.benchmarks import flops as bench_flops
from tfgan_mix.benchmarks.flops import einsum_flops, graph_flops
from tfgan_mix.benchmarks.speed import _bind_step, _loop_generators, training_step_flops

BATCH, LATENT, UNITS, OUT = 8, 4, (5, 6, 7), 2


def macs(sizes, batch):
    """Multiply-adds of each dense layer of an MLP with layer widths ``sizes`` on ``batch`` rows."""
    return [batch * a * b for a, b in zip(sizes[:-1], sizes[1:])]


def mlp_step_hand_count(sizes, batch):
    """FLOPs of one training step (forward, backward) of a dense MLP, derived by hand.

    forward:            2 B in out per layer
    kernel gradients:   2 B in out per layer
    input gradients:    2 B in out per layer except the first: the first layer's input is the
                        data (or the noise), no variable, so nothing needs its gradient; the tape
                        does not build it, or builds it as a dead op TensorFlow prunes, and the
                        counter leaves out what TensorFlow prunes.
    Bias adds, activations, their gradients and the optimizer's update are element-wise or
    reductions: not counted.
    """
    layers = macs(sizes, batch)
    return 2 * sum(layers) + 2 * sum(layers) + 2 * sum(layers[1:])


def traced_step(forward, variables, z):
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
    return tf.function(_bind_step(forward, variables, optimizer)).get_concrete_function(z)


@pytest.fixture(scope="module")
def z():
    return tf.random.stateless_uniform([BATCH, LATENT], [1, 2], -1.0, 1.0)


# ---------------------------------------------------------------------- (a) a Dense MLP
def test_dense_mlp_step_equals_the_hand_count(z):
    sizes = (LATENT, *UNITS, OUT)
    net = keras.Sequential([keras.Input((LATENT,))]
                           + [keras.layers.Dense(u, activation="leaky_relu") for u in UNITS] + [keras.layers.Dense(OUT)])
    count = graph_flops(traced_step(net, net.trainable_variables, z))
    # 2*8*(20+30+42+14) = 1696 forward, as much for the kernels, 1696 - 2*8*20 for the inputs.
    assert count.total == mlp_step_hand_count(sizes, BATCH) == 4768
    assert count.by_type == {"MatMul": count.total}


# ---------------------------------------------------------------------- (b) a GeneratorBank
@pytest.mark.parametrize("shared_trunk", [False, True])
def test_generator_bank_batch_matmuls_are_counted_k_times_one_mlp(z, shared_trunk):
    k = 3
    bank = GeneratorBank(k, (OUT,), units=UNITS, shared_trunk=shared_trunk)
    bank.build((None, LATENT))
    count = graph_flops(traced_step(bank, bank.trainable_variables, z))
    # The bank runs K-major: each layer is one batch matmul (K, B, in) x (K, in, out), the head's
    # shared z broadcast as (1, B, in); it and its two gradients are 2 B K in out each: K MLPs'
    # worth. The gradient with respect to z is built by the matmul's gradient function but nothing
    # uses it: pruned, like the MLP's first input gradient.
    assert count.total == k * mlp_step_hand_count((LATENT, *UNITS, OUT), BATCH)
    head = 2 * BATCH * k * LATENT * UNITS[0]
    assert count.pruned == head
    if shared_trunk:  # only the head is per generator; the shared trunk runs as tensordot (MatMul)
        assert count.by_type["BatchMatMulV2"] == 2 * head
    else:
        assert count.by_type == {"BatchMatMulV2": count.total}


# ---------------------------------------------------------------------- (c) bank == loop
def test_generator_bank_counts_as_a_python_loop_of_k_mlps(z):
    k = 4
    bank = GeneratorBank(k, (OUT,), units=UNITS)
    bank.build((None, LATENT))
    loop = _loop_generators(k, LATENT, UNITS, OUT)
    loop_forward = lambda x: tf.stack([net(x) for net in loop], axis=1)  # noqa: E731 (as the bench runs it)
    bank_count = graph_flops(traced_step(bank, bank.trainable_variables, z))
    loop_count = graph_flops(traced_step(loop_forward, [v for net in loop for v in net.trainable_variables], z))
    assert bank_count.total == loop_count.total == k * mlp_step_hand_count((LATENT, *UNITS, OUT), BATCH)
    assert set(loop_count.by_type) == {"MatMul"} and set(bank_count.by_type) == {"BatchMatMulV2"}


# ---------------------------------------------------------------------- the bench's train step
def test_gan_train_step_equals_the_hand_count():
    """The step ``training_step_gflops`` measures, at toy size: D's update, then G's.

    D's update: G forward on the noise; D forward on the real and on the fake batch; D's kernel
    gradients for both and D's input gradients for both except D's first layer. The tape also
    builds G's backward and D's first input gradient of the fake batch: nothing uses them (G's
    variables are not updated here), so TensorFlow prunes them.
    G's update: G forward; D forward on the fake batch; D's input gradients in every layer (the
    gradient reaches G through D's input); G's kernel gradients and G's input gradients except the
    first layer's (z). D's kernel gradients are built and pruned.
    """
    batch, width, data_dim, latent = 4, 16, 8, 100
    g_sizes = (latent, width, width, width, data_dim)
    d_sizes = (data_dim, width, width, width, 1)
    g, d = sum(macs(g_sizes, batch)), sum(macs(d_sizes, batch))
    d_first = macs(d_sizes, batch)[0]
    g_first = macs(g_sizes, batch)[0]
    d_update = g + 2 * d + 2 * d + 2 * (d - d_first)
    g_update = g + d + d + g + (g - g_first)
    count = training_step_flops("gan", width=width, layers=5, batch=batch, data_dim=data_dim)
    assert count.total == 2 * (d_update + g_update)
    assert count.pruned > 0 and count.loops == []


# ---------------------------------------------------------------------- op rules
@pytest.mark.parametrize("equation, shapes, expected", [
    ("bki,kio->bko", [(2, 3, 4), (3, 4, 5)], 2 * 2 * 3 * 4 * 5),
    ("bi,kio->bko", [(2, 4), (3, 4, 5)], 2 * 2 * 3 * 4 * 5),
    ("bko,bki->kio", [(2, 3, 5), (2, 3, 4)], 2 * 2 * 3 * 4 * 5),
    ("ij,jk", [(2, 3), (3, 4)], 2 * 2 * 3 * 4),  # implicit output 'ik'
    ("...ij,...jk->...ik", [(5, 1, 2, 3), (4, 3, 6)], 2 * 5 * 4 * 2 * 3 * 6),  # broadcast batch (5, 4)
    ("ab,bc->c", [(7, 3), (3, 4)], 2 * 3 * 4),  # 'a' is summed away before the product
    ("ij->ji", [(3, 4)], 0),  # one operand: a transpose or a reduction counts 0
    ("ii->", [(3, 3)], 0),
])
def test_einsum_rule(equation, shapes, expected):
    assert einsum_flops(equation, shapes) == expected


def test_einsum_rule_matches_the_traced_op():
    f = tf.function(lambda a, b: tf.einsum("...ij,...jk->...ik", a, b))
    count = graph_flops(f, tf.ones([5, 1, 2, 3]), tf.ones([4, 3, 6]))
    assert count.by_type == {"Einsum": 2 * 5 * 4 * 2 * 3 * 6}


def test_matmul_transposes_and_batch_broadcasting():
    a, b = tf.ones([3, 2]), tf.ones([4, 3])  # a^T b^T: (2, 3) x (3, 4)
    assert graph_flops(tf.function(lambda x, y: tf.matmul(x, y, transpose_a=True, transpose_b=True)), a, b).total \
        == 2 * 2 * 3 * 4
    x, y = tf.ones([3, 1, 4, 2]), tf.ones([5, 4, 6])  # adjoint x: (2, 4) per batch, batch (3, 5)
    count = graph_flops(tf.function(lambda p, q: tf.matmul(p, q, adjoint_a=True)), x, y)
    assert count.total == 2 * 3 * 5 * 2 * 4 * 6 and set(count.by_type) <= set(bench_flops.BATCH_MATMUL)


def test_conv_forward_and_both_gradients():
    """Two 3x3 convs (valid, stride 2, then same): forward, both filter gradients, and the second
    conv's input gradient (the first conv's input is data: pruned). Each is 2 x the forward output
    size x kh kw c_in."""
    x = tf.ones([2, 9, 9, 3])
    w1 = tf.Variable(tf.ones([3, 3, 3, 4]))
    w2 = tf.Variable(tf.ones([3, 3, 4, 5]))

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            h = tf.nn.conv2d(x, w1, strides=2, padding="VALID")  # (2, 4, 4, 4)
            y = tf.nn.conv2d(h, w2, strides=1, padding="SAME")  # (2, 4, 4, 5)
            loss = tf.reduce_sum(y)
        return loss, tape.gradient(loss, [w1, w2])  # without the loss, y would be pruned

    first = 2 * (2 * 4 * 4 * 4) * (3 * 3 * 3)
    second = 2 * (2 * 4 * 4 * 5) * (3 * 3 * 4)
    count = graph_flops(step, x)
    assert count.by_type == {"Conv2D": first + second, "Conv2DBackpropFilter": first + second,
                             "Conv2DBackpropInput": second}


def test_depthwise_conv():
    x, w = tf.ones([2, 6, 6, 3]), tf.ones([3, 3, 3, 2])  # channel multiplier 2: 6 output channels
    f = tf.function(lambda a, b: tf.nn.depthwise_conv2d(a, b, strides=[1, 1, 1, 1], padding="SAME"))
    assert graph_flops(f, x, w).total == 2 * (2 * 6 * 6 * 6) * 9


def test_nested_functions_cond_and_while_are_walked():
    @tf.function
    def inner(x, w):
        return tf.matmul(x, w)

    def outer(x, w, n):
        y = inner(x, w)  # a PartitionedCall
        y = tf.cond(n > 0, lambda: tf.matmul(tf.matmul(y, w), w), lambda: y)  # the dearer branch counts
        _, y = tf.while_loop(lambda i, y: i < n, lambda i, y: (i + 1, tf.matmul(y, w)), (0, y))  # once
        return y

    one = 2 * 4 * 8 * 8
    count = graph_flops(tf.function(outer), tf.ones([4, 8]), tf.ones([8, 8]), tf.constant(2))
    assert count.total == one + 2 * one + one
    assert len(count.loops) == 1


def test_pruned_ops_are_not_counted():
    def f(a, b):
        tf.matmul(b, a)  # its result is used by nothing: TensorFlow never runs it
        return tf.matmul(a, b)

    count = graph_flops(tf.function(f), tf.ones([2, 3]), tf.ones([3, 2]))
    assert count.total == 2 * 2 * 3 * 2 and count.pruned == 2 * 3 * 2 * 3


def test_unknown_shapes_are_an_error():
    f = tf.function(lambda a, b: tf.matmul(a, b))
    with pytest.raises(ValueError, match="fully defined"):
        graph_flops(f.get_concrete_function(tf.TensorSpec([None, 3]), tf.TensorSpec([3, 2])))


def test_counts_are_python_ints():
    count = graph_flops(tf.function(lambda a: tf.matmul(a, a)), tf.ones([3, 3]))
    assert type(count.total) is int and not isinstance(count.total, np.integer)
