"""Replace what jax.nn.softmax traces to, over the last axis, by one J2S_Softmax node.

jax.nn.softmax(x, axis=-1) (also flax's and Keras' softmax on the JAX backend, which call it) lowers
to five loops over memory:

    m = J2S_Reduce(max, last axis)(x)     the row maxima
    m = Max(-inf, m)                      (the `initial=-inf` of jnp.max; may be absent)
    d = Sub(x, Reshape(m))                broadcast along the last axis
    e = Exp(d)
    s = J2S_Reduce(sum, last axis)(e)
    y = Div(e, Reshape(s))                or Mul(e, Reciprocal(Reshape(s)))

where Reshapes may sit between any two of the row statistics, and x may reach the Sub through
Reshapes that keep its last axis (nnx attention's size-1 axis moves). J2S_Softmax (csrc/owned/
softmax.hpp) does each row in one visit with vector code and the same formula (max subtracted, exp,
sum, divide), so JAX's numbers stay: a row of all -inf gives NaN, a NaN makes its row NaN.

Fused only when every intermediate (m, d, e, s and the Reshapes of m and s) is read by the pattern
alone and is no graph output, the softmax axis is the last one (contiguous rows) and of a static
size, and everything is float32. Anything else (a softmax over another axis, a where= mask) is left
as it is.

Runs before fuse_elementwise, which would otherwise merge the Sub and Exp into one J2S_Elementwise
whose expression this pass cannot read.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value
from ..ops.expressions import ExpressionBuilder, exp_expression


def exp_attribute() -> str:
    """exp(x0) as J2S_Softmax's `exp` attribute: the vectorisable exp J2S_Elementwise uses."""
    builder = ExpressionBuilder()
    return builder.render(exp_expression(builder, [builder.input(0)]))


def fuse_softmax(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    replaced: dict[int, Node] = {}  # id(the pattern's last node) -> its J2S_Softmax
    removed: set[int] = set()
    for node in graph.nodes:
        match = _match(node, producers, consumers, graph_outputs)
        if match is None:
            continue
        x, intermediate = match
        if any(id(n) in removed for n in intermediate):
            continue
        removed.update(id(n) for n in intermediate)
        replaced[id(node)] = Node("J2S_Softmax", [x], [node.outputs[0]], {"exp": exp_attribute(), "dtype": "float32"},
                                  node.name, node.source)
    if not replaced:
        return graph
    graph.nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in removed or id(n) in replaced]
    return graph


def _match(div: Node, producers: dict[int, Node], consumers: dict[int, list[Node]],
           graph_outputs: set[int]) -> tuple[Value, list[Node]] | None:
    """(x, the nodes the softmax replaces, `div` included) if `div` ends a softmax of x over its last
    axis whose intermediates nothing else reads; else None."""
    inner: list[Node] = []  # the nodes whose outputs only the pattern may read

    def only_feeds(value: Value, readers: int) -> bool:
        return id(value) not in graph_outputs and len(consumers.get(id(value), [])) == readers

    def producer(value: Value, op: str | None = None) -> Node | None:
        node = producers.get(id(value))
        return node if node is not None and (op is None or node.op == op) else None

    def through_reshapes(value: Value) -> Value:
        """The value before the Reshapes that end in `value`, each read by the next alone (they join
        `inner`)."""
        while (node := producer(value, "Reshape")) is not None and only_feeds(value, 1):
            inner.append(node)
            value = node.inputs[0]
        return value

    if not _float32(div):
        return None
    if div.op == "Div":
        e, sum_b = div.inputs
    elif div.op == "Mul" and (reciprocal := producer(div.inputs[1], "Reciprocal")) is not None \
            and only_feeds(div.inputs[1], 1):
        e, sum_b = div.inputs[0], reciprocal.inputs[0]
        inner.append(reciprocal)
    else:
        return None
    exp = producer(e, "Exp")
    if exp is None or not only_feeds(e, 2) or e.rank == 0 or not _row_statistic_shape(sum_b, e):
        return None
    total = producer(through_reshapes(sum_b), "J2S_Reduce")
    if total is None or not _last_axis_reduction(total, "sum", e) or total.inputs[0] is not e \
            or not only_feeds(total.outputs[0], 1):
        return None
    d = exp.inputs[0]
    sub = producer(d, "Sub")
    if sub is None or not only_feeds(d, 1) or not _float32(sub):
        return None
    x, max_b = sub.inputs
    if x.shape != e.shape or not _row_statistic_shape(max_b, e):
        return None
    stat = through_reshapes(max_b)
    clamp = producer(stat, "Max")
    if clamp is not None:  # Max(-inf, m): changes nothing (the max of a row is never below -inf)
        constant, stat = clamp.inputs
        if not (constant.is_const and constant.size == 1 and np.all(np.asarray(constant.const) == -np.inf)) \
                or not only_feeds(clamp.outputs[0], 1):
            return None
        inner.append(clamp)
        stat = through_reshapes(stat)
    largest = producer(stat, "J2S_Reduce")
    if largest is None or not only_feeds(largest.outputs[0], 1):
        return None
    source = largest.inputs[0]
    if not _last_axis_reduction(largest, "max", source) or source.shape[-1:] != x.shape[-1:] \
            or source.size != x.size or _reshaped_source(x, producers) is not _reshaped_source(source, producers):
        return None
    return x, inner + [largest, total, exp, sub, div]


def _float32(node: Node) -> bool:
    return all(v.dtype == np.float32 for v in node.inputs + node.outputs)


def _row_statistic_shape(value: Value, rows: Value) -> bool:
    """Whether `value` holds one number per row of `rows`, broadcast along its last axis."""
    return value.shape == rows.shape[:-1] + (1,)


def _last_axis_reduction(node: Node, mode: str, x: Value) -> bool:
    """Whether `node` is a float32 J2S_Reduce `mode` of `x` over its last axis (and that axis alone)."""
    if node.attrs.get("mode") != mode or node.inputs[0].dtype != np.float32 or x.rank == 0:
        return False
    return [int(a) % x.rank for a in node.attrs.get("axes", [])] == [x.rank - 1] and x.shape[-1] > 0


def _reshaped_source(value: Value, producers: dict[int, Node]) -> Value:
    """`value` before the Reshapes that end in it (the same data in the same order)."""
    while (node := producers.get(id(value))) is not None and node.op == "Reshape":
        value = node.inputs[0]
    return value
