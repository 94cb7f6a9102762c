"""Fold numpy's negative-index wrap into the J2S_Gather that reads the wrapped indices.

`x[i]` and `jnp.take` trace to `select(i < 0, i + n, i)` before the gather, n the size of the indexed
axis: here an int32 Less, an Add and a J2S_Elementwise select, three loops over the indices (and a
Reshape that appends the index vector's dim of 1 to them). J2S_Gather does the same with its
`wrap_negative` flag, one compare per index where it reads it: the gather then reads `i` itself and
the three nodes go (eliminate_dead_code removes them when nothing else reads them). The gather's
clamp or fill of what stays out of bounds is unchanged, so the result is the same for every index.

Folded only when the constant added is, for every component of the index vector, the operand dim
that component indexes (what jnp writes); anything else is left as it is.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value
from ..ops.expressions import ExpressionBuilder, select_expression

# the expression of select_n(p, a, b) as the lowering writes it for inputs [p, a, b]
_SELECT = select_expression(ExpressionBuilder(), ["x0", "x1", "x2"], "bool")
_INDEX_DTYPES = (np.int32, np.int64)


def fold_gather_index_wrap(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    for gather in graph.nodes:
        if gather.op != "J2S_Gather" or gather.attrs.get("wrap_negative"):
            continue
        indices = gather.inputs[1]
        reshape = producers.get(id(indices))
        if reshape is not None and reshape.op == "Reshape":
            # the Reshape appending the index vector's dim: fold through it only when every reader of
            # its output is a gather that folds the same wrap (it is then rewired for all of them)
            readers = consumers.get(id(indices), [])
            if id(indices) in graph_outputs or not all(_wrap_constant_fits(r, indices) for r in readers):
                continue
            wrapped = reshape.inputs[0]
        else:
            reshape, readers, wrapped = None, [gather], indices
        raw = _unwrapped(wrapped, producers)
        if raw is None or not all(_wrap_matches(r, wrapped, indices, producers) for r in readers):
            continue
        if reshape is not None:
            reshape.inputs[0] = raw
        for reader in readers:
            if reshape is None:
                reader.inputs[1] = raw
            reader.attrs["wrap_negative"] = 1
    return graph


def _unwrapped(wrapped: Value, producers: dict[int, Node]) -> Value | None:
    """`i` when `wrapped` is select(i < 0, i + c, i) of an integer `i` and a constant `c`, else None."""
    select = producers.get(id(wrapped))
    if (select is None or select.op != "J2S_Elementwise" or select.attrs.get("expression") != _SELECT
            or len(select.inputs) != 3):
        return None
    negative, raw, added = select.inputs
    if raw.dtype not in _INDEX_DTYPES or tuple(raw.shape) != tuple(wrapped.shape):
        return None
    less, add = producers.get(id(negative)), producers.get(id(added))
    if less is None or less.op != "Less" or less.inputs[0] is not raw or not _is_zero(less.inputs[1]):
        return None
    if add is None or add.op != "Add" or raw not in add.inputs or add.outputs[0].dtype != raw.dtype:
        return None
    constant = add.inputs[1] if add.inputs[0] is raw else add.inputs[0]
    return raw if constant.is_const else None


def _wrap_constant(wrapped: Value, producers: dict[int, Node]) -> np.ndarray:
    """The constant `c` of select(i < 0, i + c, i), broadcast to the wrapped indices' shape."""
    add = producers[id(producers[id(wrapped)].inputs[2])]
    constant = add.inputs[1] if add.inputs[0] is producers[id(wrapped)].inputs[1] else add.inputs[0]
    return np.broadcast_to(np.asarray(constant.const), wrapped.shape)


def _wrap_constant_fits(reader: Node, indices: Value) -> bool:
    """Whether `reader` is a gather that reads `indices` as its indices (and nothing else of it)."""
    return reader.op == "J2S_Gather" and reader.inputs[1] is indices and reader.inputs[0] is not indices


def _wrap_matches(gather: Node, wrapped: Value, indices: Value, producers: dict[int, Node]) -> bool:
    """Whether the wrap's constant, reshaped as the gather's indices, is along the index vector the
    operand dim each component indexes."""
    operand = gather.inputs[0]
    start_index_map = [int(d) for d in gather.attrs["start_index_map"]]
    if not indices.shape or indices.shape[-1] != len(start_index_map):
        return False
    constant = _wrap_constant(wrapped, producers).reshape(indices.shape)
    dims = np.asarray([operand.shape[d] for d in start_index_map])
    return bool(np.array_equal(constant, np.broadcast_to(dims, indices.shape)))


def _is_zero(value: Value) -> bool:
    return value.is_const and bool(np.all(np.asarray(value.const) == 0))
