"""Constant folding on the IR: a node whose inputs are all constants becomes a constant.

JAX equations that depend only on params and literals are already folded by the walker, by
evaluating them with JAX itself. What is left for this pass are the SOFIE-level nodes that rules
and other passes create on constants (a transposed or reshaped weight, a cast literal, a stack of
constant conditions). FOLDERS (ops/folding.py) is the one table of the numpy meaning of those
operators; the lowering helpers use it too, so a weight is folded the same way wherever it is folded.

Folding here is also a matter of correctness, not only of speed: SOFIE 0.1.0 folds a Concat over
constant inputs itself and reads the data as int64 whatever its type (and a Cast of bool constants
to int64), so a Concat of three bool constants read 48 bytes out of a 6-byte buffer. What SOFIE
would fold that way must be folded here; emit.refuse_sofie_int64_folding checks that it was.
"""
from __future__ import annotations

from ..ir import Graph, Node, Value
from ..ops.folding import fold_node


def fold_constants(graph: Graph) -> Graph:
    # one walk in execution order: a folded value is substituted into the readers that follow it
    substitute: dict[int, Value] = {}
    kept: list[Node] = []
    for node in graph.nodes:
        node.inputs = [substitute.get(id(v), v) for v in node.inputs]
        data = fold_node(node)
        if data is None:
            kept.append(node)
            continue
        out = node.outputs[0]
        weights = [v for v in node.inputs if v.is_weight]
        substitute[id(out)] = Value(out.name, out.shape, out.dtype, const=data, is_weight=bool(weights),
                                    origin=weights[0].origin if weights else None)
    graph.nodes = kept
    graph.outputs = [substitute.get(id(v), v) for v in graph.outputs]
    return graph
