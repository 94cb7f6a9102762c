"""Constant folding on the IR: a node whose inputs are all constants becomes a constant.

JAX equations that depend only on params and literals are already folded by the walker, by
evaluating them with JAX itself. What is left for this pass are the SOFIE-level nodes that rules
and other passes create on constants (a transposed or reshaped weight, a cast literal, a stack of
constant conditions). FOLDERS is the one table of the numpy meaning of those operators; the
lowering helpers use it too, so a weight is folded the same way wherever it is folded.

Folding here is also a matter of correctness, not only of speed: SOFIE 0.1.0 folds a Concat over
constant inputs itself and reads the data as int64 whatever its type (and a Cast of bool constants
to int64), so a Concat of three bool constants read 48 bytes out of a 6-byte buffer. What SOFIE
would fold that way must be folded here; emit.refuse_sofie_int64_folding checks that it was.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir import Graph, Node, Value

Folder = Callable[[list[np.ndarray], dict, tuple, np.dtype], np.ndarray]

FOLDERS: dict[str, Folder] = {
    "Reshape": lambda xs, attrs, shape, dtype: xs[0].reshape(shape),
    "Transpose": lambda xs, attrs, shape, dtype: np.ascontiguousarray(np.transpose(xs[0], attrs["perm"])),
    "Expand": lambda xs, attrs, shape, dtype: np.broadcast_to(xs[0], shape).copy(),
    "Cast": lambda xs, attrs, shape, dtype: xs[0].astype(dtype),
    "Identity": lambda xs, attrs, shape, dtype: xs[0].copy(),
    "Concat": lambda xs, attrs, shape, dtype: np.concatenate(xs, axis=attrs["axis"]),
    # Where(condition, on_true, on_false), broadcasting like numpy
    "Where": lambda xs, attrs, shape, dtype: np.where(xs[0].astype(bool), xs[1], xs[2]),
}


def fold_node(node: Node) -> np.ndarray | None:
    """The value of a one-output node over constant inputs, or None if it cannot be folded."""
    folder = FOLDERS.get(node.op)
    if folder is None or len(node.outputs) != 1 or not all(v.is_const for v in node.inputs):
        return None
    out = node.outputs[0]
    data = folder([v.const for v in node.inputs], node.attrs, out.shape, out.dtype)
    return np.asarray(data, dtype=out.dtype).reshape(out.shape)


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
