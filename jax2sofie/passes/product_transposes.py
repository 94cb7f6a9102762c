"""Transposes around a J2S_BatchedMatMul fold into how it reads and writes its operands.

Attention moves its heads between [batch, seq, heads, dh] and [batch, heads, seq, dh] with Transposes
before and after the per-head products (Keras MultiHeadAttention, hand-written einsums, and flax's
context, which einsum gives as [b, h, q, d] and the model transposes back). J2S_BatchedMatMul reads
its operands through strides (a_axes, b_axes) and writes its output in any axis order, so a
Transpose that produces one of its operands is read through (the Transpose goes if nothing else reads
it) and a Transpose that is the only reader of its output becomes the order of its output axes
(out_axes). Transposes that only move axes of size 1 become Reshapes.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Value

# J2S_BatchedMatMul (csrc/owned/batched_matmul.hpp) takes products of at most MAX_SMALL_PRODUCT
# multiply-adds per matrix: past that one sgemm per matrix amortises its call and packing, and its
# blocking beats the owned kernel's (a 16 x 16 x 16 attention head: 4,096; a 64-token head of 64: 262,144).
# A B whose columns are strided (or an A whose rows are, where the kernel computes Y^T = B^T A^T) is
# copied per matrix into a block on the stack of at most MAX_PACKED_B elements (the kernel's limit).
MAX_SMALL_PRODUCT, MAX_PACKED_B = 64 * 64 * 64, 16384


def small_batched_product(a_shape: tuple, b_shape: tuple, a_axes: list[int], b_axes: list[int]) -> bool:
    """Whether J2S_BatchedMatMul takes the product of A's axes (batch..., m, k) and B's (batch..., k, n):
    one row, one contracting and one column axis each (the other axes of size 1), and small matrices
    (see MAX_SMALL_PRODUCT).
    Only batch axes may be the batch of a symbolic-batch model: each operand's axis 0 must be one of them
    (or of size 1, which a batch traced at two sizes above 1 never is)."""
    if len(a_axes) != len(b_axes) or len(a_axes) < 3:
        return False
    for shape, axes in ((a_shape, a_axes), (b_shape, b_axes)):
        if any(shape[d] != 1 for d in range(len(shape)) if d not in axes):
            return False
    if a_axes[:-2] and any(0 not in axes[:-2] and shape[0] != 1 for shape, axes in ((a_shape, a_axes), (b_shape, b_axes))):
        return False
    if a_shape[a_axes[-1]] != b_shape[b_axes[-2]]:
        return False
    m, k, n = a_shape[a_axes[-2]], a_shape[a_axes[-1]], b_shape[b_axes[-1]]
    if not all(isinstance(d, int) for d in (m, k, n)) or m * k * n > MAX_SMALL_PRODUCT:
        return False
    # the kernel may copy B, or A as the B of Y^T = B^T A^T: either fits the stack
    return k * max(m, n) <= MAX_PACKED_B


def fold_product_transposes(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    removed: set[int] = set()
    for node in graph.nodes:
        if node.op != "J2S_BatchedMatMul":
            continue
        # operands: read the Transpose's input at the permuted axes
        for i, key in ((0, "a_axes"), (1, "b_axes")):
            transpose = producers.get(id(node.inputs[i]))
            if transpose is None or transpose.op != "Transpose":
                continue
            source, perm = transpose.inputs[0], list(transpose.attrs["perm"])
            axes = [perm[a] for a in node.attrs[key]]
            a_shape, b_shape = node.inputs[0].shape, node.inputs[1].shape
            a_axes, b_axes = list(node.attrs["a_axes"]), list(node.attrs["b_axes"])
            if i == 0:
                a_shape, a_axes = source.shape, axes
            else:
                b_shape, b_axes = source.shape, axes
            if not small_batched_product(a_shape, b_shape, a_axes, b_axes):
                continue
            node.inputs[i] = source
            node.attrs[key] = axes
        # output: a Transpose that alone reads it becomes the order of its axes
        out = node.outputs[0]
        readers = consumers.get(id(out), [])
        if len(readers) == 1 and readers[0].op == "Transpose" and id(out) not in graph_outputs:
            transpose = readers[0]
            node.attrs["out_axes"] = [node.attrs["out_axes"][p] for p in transpose.attrs["perm"]]
            node.outputs = [transpose.outputs[0]]
            removed.add(id(transpose))
    graph.nodes = [node for node in graph.nodes if id(node) not in removed]
    _unit_axis_transposes_to_reshapes(graph)
    return graph


def _unit_axis_transposes_to_reshapes(graph: Graph) -> None:
    """A Transpose that only moves axes of size 1 (nnx attention's softmax weights, [b, h, q, 1, k] ->
    [1, b, h, q, k] and back) keeps the elements in order: it becomes a Reshape, a view, not a copy."""
    taken = {v.name for node in graph.nodes for v in node.inputs + node.outputs} | {n.name for n in graph.nodes}
    for node in graph.nodes:
        if node.op != "Transpose" or node.inputs[0].is_const:
            continue
        x, perm = node.inputs[0], list(node.attrs["perm"])
        kept = [p for p in perm if x.shape[p] != 1]
        if kept != sorted(kept) or not all(isinstance(d, int) for d in node.outputs[0].shape):
            continue
        name, k = f"{node.outputs[0].name}_shape", 0
        while name in taken:
            k += 1
            name = f"{node.outputs[0].name}_shape_{k}"
        taken.add(name)
        shape = np.asarray(node.outputs[0].shape or (1,), dtype=np.int64)
        node.op, node.attrs = "Reshape", {}
        node.inputs = [x, Value(name, shape.shape, np.dtype(np.int64), const=shape)]
