"""Common-subexpression elimination: a node computing what an earlier node already computed (same
op, same inputs, same attributes) is dropped and its readers read the earlier result.

JAX traces repeat work that the user wrote once: `x.mean()` twice in a hand-written layer norm, the
same reshape of one activation for several heads, the same literal broadcast in several places.
Small literal constants count as the same input when their values are equal (each JAX literal is a
Value of its own); weights and larger constants only when they are the same Value.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value

# constants up to this many elements are compared by value
_BY_VALUE_ELEMENTS = 64


def _input_key(value: Value, substitute: dict[int, Value]):
    value = substitute.get(id(value), value)
    if value.is_const and not value.is_weight and value.size <= _BY_VALUE_ELEMENTS:
        data = np.ascontiguousarray(value.const)
        return ("const", str(data.dtype), tuple(value.shape), data.tobytes())
    return ("value", id(value))


def _node_key(node: Node, substitute: dict[int, Value]):
    outputs = tuple((tuple(v.shape), str(v.dtype)) for v in node.outputs)
    attrs = repr(sorted((k, repr(v)) for k, v in node.attrs.items()))
    return node.op, tuple(_input_key(v, substitute) for v in node.inputs), attrs, outputs


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    graph_outputs = {id(v) for v in graph.outputs}
    substitute: dict[int, Value] = {}
    seen: dict[tuple, Node] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        node.inputs = [substitute.get(id(v), v) for v in node.inputs]
        key = _node_key(node, substitute)
        earlier = seen.get(key)
        # an output of the graph keeps its own node: two outputs must not become one tensor
        if earlier is not None and not any(id(v) in graph_outputs for v in node.outputs):
            for mine, theirs in zip(node.outputs, earlier.outputs):
                substitute[id(mine)] = theirs
            continue
        seen.setdefault(key, node)
        kept.append(node)
    graph.nodes = kept
    return graph
