"""A symbolic batch dimension, by lowering the model at two batch sizes and comparing the graphs.

The model is traced, lowered and optimised at batch sizes B1 and B2. The two graphs must have the
same structure (same operators, attributes and constants); every integer that differs between them
(an input or output dimension, an entry of a Reshape/Expand shape operand) depends on the batch, and
as it is linear in it, `n = a * batch + c` is solved from the two values. So `b * H` in a reshape works
without any lowering rule knowing about symbolic sizes.

What is emitted: inputs get SOFIE's `Dim("bs")` in place of the batch; a Reshape target entry `a*bs`
becomes -1 (SOFIE infers it); an Expand target entry that keeps the input's own batch-sized dimension
becomes 1 (ONNX broadcasting keeps the input's size there). SOFIE derives every other shape itself.
An Expand to a batch-dependent size along an axis where its input is not batch-sized, and a constant
operand of batch size (zeros of shape (batch, hidden) as an RNN's first state, a weight broadcast
over the batch), become J2S_BroadcastTo, whose target shape may hold the batch. Anything else that
depends on the batch is refused with an error that names the node.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ConversionError
from .ir import Graph, Node, Value

BATCH_PARAM = "bs"
# two batch sizes to lower at: distinct, > 1 (size 1 can change broadcasting decisions), small
TRACE_BATCHES = (5, 7)


@dataclass(frozen=True)
class Linear:
    """n = a * batch + c."""

    a: int
    c: int

    def text(self) -> str | int:
        if self.a == 0:
            return self.c
        term = BATCH_PARAM if self.a == 1 else f"{BATCH_PARAM}*{self.a}"
        return term if self.c == 0 else f"{term}+{self.c}" if self.c > 0 else f"{term}-{-self.c}"


def solve(n1: int, n2: int) -> Linear | None:
    """The linear function of the batch through (B1, n1) and (B2, n2), or None if not integral."""
    b1, b2 = TRACE_BATCHES
    a, rest = divmod(n2 - n1, b2 - b1)
    if rest:
        return None
    return Linear(a, n1 - a * b1)


def symbolic_shape(shape1, shape2) -> tuple:
    """Per dimension: an int, or the SOFIE expression of a batch-dependent dimension ("bs", "bs*16")."""
    dims = []
    for n1, n2 in zip(shape1, shape2):
        linear = solve(int(n1), int(n2))
        if linear is None:
            raise ConversionError(f"a dimension grows from {n1} to {n2} between batch sizes {TRACE_BATCHES}: "
                                  "not linear in the batch size")
        dims.append(linear.text())
    return tuple(dims)


def generalise(graph1: Graph, graph2: Graph) -> Graph:
    """Turn `graph1` (lowered at batch B1) into the graph with a symbolic batch, using `graph2` (at B2).

    Returns graph1, modified: batch-dependent input/output dims become strings, shape operands are
    rewritten as described in the module docstring.
    """
    _same_structure(graph1, graph2)
    for v1, v2 in zip(graph1.inputs, graph2.inputs):
        shape = symbolic_shape(v1.shape, v2.shape)
        if any(isinstance(d, str) and d != BATCH_PARAM for d in shape):
            raise ConversionError(f"input '{v1.name}' has shape {shape}: only a plain batch dimension can be "
                                  "symbolic")
        v1.shape = shape
    names = {v.name for n in graph1.nodes for v in n.inputs + n.outputs} | {v.name for v in graph1.inputs}
    broadcasts: dict[int, Value] = {}  # id(batch-sized constant) -> its J2S_BroadcastTo output
    nodes: list[Node] = []
    for node1, node2 in zip(graph1.nodes, graph2.nodes):
        if node1.op == "Expand" and node1.inputs[1].is_const and _expand_needs_batch(node1, node2):
            _as_batch_broadcast(node1, node2)
        for k, (c1, c2) in enumerate(zip(node1.inputs, node2.inputs)):
            # equal_nan: a NaN constant (jnp.where(m, jnp.nan, x)) is the same in both traces
            if not c1.is_const or np.array_equal(np.asarray(c1.const), np.asarray(c2.const), equal_nan=True):
                continue
            if c1.shape != c2.shape:  # a constant of batch size: made at run time from its batch-free part
                if id(c1) not in broadcasts:
                    fill = _broadcast_constant(c1, c2, names, node1)
                    nodes.append(fill)
                    broadcasts[id(c1)] = fill.outputs[0]
                node1.inputs[k] = broadcasts[id(c1)]
            else:
                _rewrite_shape_operand(node1, node2, k)
        nodes.append(node1)
    graph1.nodes = nodes
    for v1, v2 in zip(graph1.outputs, graph2.outputs):
        v1.shape = symbolic_shape(v1.shape, v2.shape)
    return graph1


def _batch_attrs(shape1, shape2, where: str) -> dict:
    """The J2S_BroadcastTo attributes of a target shape seen at the two batch sizes."""
    dims = [solve(int(n1), int(n2)) for n1, n2 in zip(shape1, shape2)]
    if any(d is None for d in dims):
        raise ConversionError(f"{where}: a dimension is not linear in the batch size")
    return {"scale": [d.a for d in dims], "offset": [d.c for d in dims], "param": BATCH_PARAM}


def _broadcast_constant(c1: Value, c2: Value, names: set[str], reader: Node) -> Node:
    """A J2S_BroadcastTo node that makes the batch-sized constant c1 (c2 at the other batch size) from
    its values along the batch-dependent axes, which must repeat (zeros of shape (batch, hidden), a
    weight broadcast over the batch)."""
    where = reader.where()
    if c1.rank != c2.rank:
        raise ConversionError(f"{where}: a constant operand changes rank with the batch size")
    varying = tuple(a for a, (n1, n2) in enumerate(zip(c1.shape, c2.shape)) if n1 != n2)
    first = tuple(slice(0, 1) if a in varying else slice(None) for a in range(c1.rank))
    small = np.ascontiguousarray(np.asarray(c1.const)[first])
    for c in (c1, c2):
        if not np.array_equal(np.broadcast_to(small, c.shape), np.asarray(c.const), equal_nan=True):
            raise ConversionError(f"{where}: a constant operand of batch size whose values differ along the batch "
                                  "is not supported with a dynamic batch; convert with a fixed batch size")

    def fresh(base: str) -> str:
        name, k = base, 0
        while name in names:
            k += 1
            name = f"{base}_{k}"
        names.add(name)
        return name

    source = Value(fresh(f"{c1.name}_row"), small.shape, small.dtype, const=small, is_weight=c1.is_weight,
                   origin=c1.origin)
    out = Value(fresh(f"{c1.name}_batch"), c1.shape, c1.dtype)
    return Node("J2S_BroadcastTo", [source], [out], {"dtype": np.dtype(c1.dtype).name,
                                                     **_batch_attrs(c1.shape, c2.shape, where)},
                fresh(f"{c1.name}_broadcast"), reader.source)


def _expand_needs_batch(node1: Node, node2: Node) -> bool:
    """An Expand to a batch-dependent size along an axis where its input is not batch-sized: SOFIE's
    Expand cannot say that (its target is a constant of numbers)."""
    x1, x2 = node1.inputs[0], node2.inputs[0]
    out1, out2 = node1.outputs[0].shape, node2.outputs[0].shape
    return any(o1 != o2 and (i1, i2) != (o1, o2) for i1, i2, o1, o2 in zip(x1.shape, x2.shape, out1, out2))


def _as_batch_broadcast(node1: Node, node2: Node) -> None:
    where = node1.where()
    if node1.inputs[0].rank != node1.outputs[0].rank:
        raise ConversionError(f"{where}: an Expand that adds axes cannot depend on the batch size")
    node1.op = "J2S_BroadcastTo"
    node1.attrs = {"dtype": node1.attrs.get("dtype", np.dtype(node1.inputs[0].dtype).name),
                   **_batch_attrs(node1.outputs[0].shape, node2.outputs[0].shape, where)}
    node1.inputs = node1.inputs[:1]


def _rewrite_shape_operand(node1: Node, node2: Node, k: int) -> None:
    c1, c2 = node1.inputs[k], node2.inputs[k]
    where = node1.where()
    if k != 1 or node1.op not in ("Reshape", "Expand") or c1.shape != c2.shape:
        raise ConversionError(f"{where}: a constant operand depends on the batch size; this is not supported "
                              "with a dynamic batch")
    entries = []
    for position, (n1, n2) in enumerate(zip(c1.const.tolist(), c2.const.tolist())):
        if n1 == n2:
            entries.append(n1)
            continue
        linear = solve(n1, n2)
        if node1.op == "Reshape" and linear == Linear(1, 0):
            entries.append(-1)
        elif node1.op == "Reshape" and linear is not None:
            # SOFIE's Reshape cannot infer -1 when it merges a symbolic size with others
            raise ConversionError(f"{where}: target dimension {position} is {linear.text()}: a reshape that "
                                  "merges the batch with other axes is not supported with a dynamic batch yet; "
                                  "convert with a fixed batch size")
        elif node1.op == "Expand" and node1.inputs[0].shape[position] == n1 \
                and node2.inputs[0].shape[position] == n2:
            entries.append(1)  # the input already has this size: broadcasting keeps it
        else:
            raise ConversionError(f"{where}: target dimension {position} is {linear.text() if linear else '?'}, "
                                  "which cannot be expressed with a dynamic batch")
    if entries.count(-1) > 1:
        raise ConversionError(f"{where}: more than one reshaped dimension depends on the batch size")
    c1.const = np.asarray(entries, dtype=c1.const.dtype)


def _same_structure(graph1: Graph, graph2: Graph) -> None:
    def fail(what: str) -> None:
        raise ConversionError(f"the model's structure depends on the batch size ({what}); convert it with a "
                              "fixed batch size instead")

    if len(graph1.nodes) != len(graph2.nodes) or len(graph1.inputs) != len(graph2.inputs) \
            or len(graph1.outputs) != len(graph2.outputs):
        fail(f"{len(graph1.nodes)} vs {len(graph2.nodes)} operators")
    for node1, node2 in zip(graph1.nodes, graph2.nodes):
        if node1.op != node2.op or node1.attrs != node2.attrs or len(node1.inputs) != len(node2.inputs):
            fail(f"node '{node1.name}' ({node1.op}) differs")
        for c1, c2 in zip(node1.inputs, node2.inputs):
            if c1.is_const != c2.is_const or c1.name != c2.name:
                fail(f"inputs of node '{node1.name}' ({node1.op}) differ")
