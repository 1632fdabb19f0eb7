"""FLOPs of one call of a traced ``tf.function``, counted from the graph's static shapes.

What is counted: the multiply-adds of every contraction, times 2 (one multiply and one add), in the
traced graph and in every function it calls (``PartitionedCall``/``StatefulPartitionedCall``, ``If``
and ``While`` bodies, found in the graph's function library):

* ``MatMul``: ``2 m k n`` (``transpose_a``/``transpose_b`` honoured): 2 x output size x the
  contracted size.
* ``BatchMatMul``/``BatchMatMulV2``/``BatchMatMulV3``: 2 x output size x the contracted size, so
  broadcast batch dimensions count once per output batch (``adj_x``/``adj_y`` honoured).
* ``Einsum`` with two operands: 2 x the product of the sizes of every distinct index, ellipsis
  dimensions included (broadcast to the larger size). An index that appears in one operand only and
  not in the output is left out: TensorFlow's kernel sums it away before the product, a reduction
  like ``Sum``. ``bki,kio->bko`` is ``2 B K i o``. A one-operand einsum (a transpose, trace or
  reduction) counts 0, as reductions do.
* ``Conv2D``, ``Conv2DBackpropInput``, ``Conv2DBackpropFilter`` (and ``Conv3D``'s): 2 x the size of
  the forward output x the filter's window and input depth (``kh kw c_in``). The forward conv, its
  input gradient and its filter gradient are each one such product. ``DepthwiseConv2dNative`` and
  its two backprops: 2 x the forward output size x ``kh kw``.

What is not counted: element-wise ops (activations, bias adds, the optimizer's update), reductions
(``Sum``, ``Mean``, ``BiasAddGrad``), data movement (transposes, concats, gathers) and random
number generation. The count is the contractions' multiply-adds x 2, which is what a matmul peak
in FLOP/s measures. (TensorFlow's graph profiler counts ``MatMul`` and ``Conv2D`` but no ``Einsum``,
adds element-wise ops, and counts pruned ops too.)

Only ops that run are counted: TensorFlow prunes, before running a function, every op that no
output, no control output and no stateful op depends on (``PruneFunctionBody``), and so does this
count. A ``GradientTape`` builds gradients it does not need (with respect to sampled noise, or
through a generator whose variables the current update leaves alone); those ops are pruned and
reported in ``FlopCount.pruned``, not in ``total``.

A ``While`` body is counted once: its trip count is a runtime value; ``FlopCount.loops`` names every
loop so a caller can scale. An ``If`` or ``Case`` counts its most expensive branch. Every counted op needs fully
defined static shapes (trace with a fixed batch size); an unknown dimension is an error naming the
op. The dtype does not change the count.
"""
import dataclasses
import math

from tensorflow.python.eager import context
from tensorflow.python.framework import function_def_to_graph

MATMUL = ("MatMul",)
BATCH_MATMUL = ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")
CONV = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter",
        "Conv3D", "Conv3DBackpropInputV2", "Conv3DBackpropFilterV2")
DEPTHWISE = ("DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput", "DepthwiseConv2dNativeBackpropFilter")
COUNTED = MATMUL + BATCH_MATMUL + ("Einsum",) + CONV + DEPTHWISE

_CALLS = ("PartitionedCall", "StatefulPartitionedCall")
_IFS = ("If", "StatelessIf")
_CASES = ("Case", "StatelessCase")
_WHILES = ("While", "StatelessWhile")


@dataclasses.dataclass
class FlopCount:
    """``total``: FLOPs of the ops that run; ``by_type``: the same split by op type; ``pruned``:
    FLOPs of contractions in the graph that TensorFlow prunes before running it; ``loops``: names of
    the ``While`` ops whose bodies were counted once."""

    total: int = 0
    by_type: dict = dataclasses.field(default_factory=dict)
    pruned: int = 0
    loops: list = dataclasses.field(default_factory=list)

    def add(self, op_type, flops):
        self.total += flops
        self.by_type[op_type] = self.by_type.get(op_type, 0) + flops

    def merge(self, other, times=1):
        for op_type, flops in other.by_type.items():
            self.add(op_type, times * flops)
        self.pruned += times * other.pruned
        self.loops += other.loops


def graph_flops(function, *args, **kwargs):
    """FLOPs of one call: a ``FlopCount`` for a ``tf.function`` traced on ``args``/``kwargs``, a
    concrete function, or a ``FuncGraph``."""
    if hasattr(function, "get_concrete_function"):
        function = function.get_concrete_function(*args, **kwargs)
    return _count_graph(getattr(function, "graph", function))


def op_flops(op):
    """FLOPs of one op by the rules of the module docstring (0 for an op type not counted)."""
    kind = op.type
    if kind in MATMUL:
        a = _shape(op, op.inputs[0])
        inner = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * math.prod(_shape(op, op.outputs[0])) * inner
    if kind in BATCH_MATMUL:
        x = _shape(op, op.inputs[0])
        inner = x[-2] if op.get_attr("adj_x") else x[-1]
        return 2 * math.prod(_shape(op, op.outputs[0])) * inner
    if kind == "Einsum":
        return einsum_flops(op.get_attr("equation").decode(), [_shape(op, t) for t in op.inputs])
    if kind in CONV or kind in DEPTHWISE:
        forward_output, window = _conv_parts(op)
        return 2 * math.prod(forward_output) * window
    return 0


def einsum_flops(equation, shapes):
    """FLOPs of ``tf.einsum(equation, *operands)`` with operands of ``shapes`` (module docstring)."""
    equation = equation.replace(" ", "")
    inputs, arrow, output = equation.partition("->")
    terms = inputs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum {equation!r} has {len(terms)} operands, got {len(shapes)} shapes")
    if len(terms) == 1:
        return 0
    if len(terms) != 2:
        raise ValueError(f"an Einsum op takes one or two operands, {equation!r} has {len(terms)}")
    widths = [len(shape) - len(term.replace("...", "")) for term, shape in zip(terms, shapes)]
    ellipsis_rank = max(widths)
    labelled = [_labels(term, width, ellipsis_rank) for term, width in zip(terms, widths)]
    size = {}
    for labels, shape in zip(labelled, shapes):
        for label, dim in zip(labels, shape):
            size[label] = max(size.get(label, 1), dim)
    if arrow:
        out = set(_labels(output, ellipsis_rank, ellipsis_rank))
    else:  # implicit output: the indices that appear once, and the ellipsis
        letters = [label for labels in labelled for label in labels if not label.startswith(".")]
        out = {label for label in letters if letters.count(label) == 1} | {f".{i}" for i in range(ellipsis_rank)}
    first, second = set(labelled[0]), set(labelled[1])
    kept = [label for label in size if label in out or (label in first and label in second)]
    return 2 * math.prod(size[label] for label in kept)


# ---------------------------------------------------------------------- helpers
def _labels(term, width, ellipsis_rank):
    """One label per dimension of ``term``, whose ellipsis covers ``width`` dimensions: they are
    named ``.0``, ``.1``, ... right-aligned against the widest ellipsis (``ellipsis_rank``), so the
    broadcast dimensions of both operands and of the output share names."""
    if "..." not in term:
        return list(term)
    head, tail = term.split("...")
    return list(head) + [f".{i}" for i in range(ellipsis_rank - width, ellipsis_rank)] + list(tail)


def _shape(op, tensor):
    shape = tensor.shape
    if shape.rank is None or not shape.is_fully_defined():
        raise ValueError(f"cannot count the FLOPs of {op.type} {op.name!r}: {tensor.name} has shape {shape}; "
                         "trace with fully defined shapes (a fixed batch size)")
    return shape.as_list()


def _conv_parts(op):
    """(forward output shape, multiply-adds per forward output element) of a conv or its backprop."""
    kind = op.type
    if kind.endswith("BackpropInput") or kind.endswith("BackpropInputV2"):
        forward_output, kernel = _shape(op, op.inputs[2]), _shape(op, op.inputs[1])
    elif kind.endswith("BackpropFilter") or kind.endswith("BackpropFilterV2"):
        forward_output, kernel = _shape(op, op.inputs[2]), _shape(op, op.outputs[0])
    else:
        forward_output, kernel = _shape(op, op.outputs[0]), _shape(op, op.inputs[1])
    # Filters are (window..., in, out) or, depthwise, (kh, kw, in, multiplier): one input per output.
    window = math.prod(kernel[:-2])
    return forward_output, window if kind in DEPTHWISE else window * kernel[-2]


def _live_ops(graph):
    """The ops TensorFlow runs: those an output, a control output or a stateful op depends on."""
    seeds = [t.op for t in graph.outputs] + list(getattr(graph, "control_outputs", []))
    seeds += [op for op in graph.get_operations() if _stateful(op)]
    live, stack = set(), list(seeds)
    while stack:
        op = stack.pop()
        if op.name in live:
            continue
        live.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    return live


def _stateful(op):
    try:
        return op.op_def.is_stateful
    except (AttributeError, ValueError):  # an op without a registered definition: keep it
        return True


def _function_graph(graph, name):
    """The graph of library function ``name``, looked up from ``graph`` outwards."""
    g = graph
    while g is not None:
        function = getattr(g, "_functions", {}).get(name)
        if function is not None:
            return function.graph
        g = getattr(g, "outer_graph", None)
    fdef = context.context().get_function_def(name)
    return function_def_to_graph.function_def_to_graph(fdef)


def _count_graph(graph):
    count = FlopCount()
    live = _live_ops(graph)
    for op in graph.get_operations():
        if op.name not in live:
            if op.type in COUNTED:
                try:
                    count.pruned += op_flops(op)
                except ValueError:
                    pass  # a pruned op with an unknown shape never runs: nothing to count
            continue
        if op.type in COUNTED:
            count.add(op.type, op_flops(op))
        elif op.type in _CALLS:
            count.merge(_count_graph(_function_graph(graph, op.get_attr("f").name)))
        elif op.type in _IFS or op.type in _CASES:
            names = [op.get_attr("then_branch").name, op.get_attr("else_branch").name] if op.type in _IFS \
                else [f.name for f in op.get_attr("branches")]
            branches = [_count_graph(_function_graph(graph, name)) for name in names]
            count.merge(max(branches, key=lambda c: c.total))
        elif op.type in _WHILES:
            count.merge(_count_graph(_function_graph(graph, op.get_attr("cond").name)))
            count.merge(_count_graph(_function_graph(graph, op.get_attr("body").name)))
            count.loops.append(op.name)
    return count

