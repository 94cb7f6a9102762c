"""Transposes around a J2S_BatchedMatMul fold into how it reads and writes its operands.

Attention moves its heads between [batch, seq, heads, dh] and [batch, heads, seq, dh] with Transposes
before and after the per-head products (Keras MultiHeadAttention, hand-written einsums, and flax's
context, which einsum gives as [b, h, q, d] and the model transposes back). J2S_BatchedMatMul reads
its operands through strides (a_axes, b_axes) and writes its output in any axis order (perm), so a
Transpose that produces one of its operands is read through (the Transpose goes if nothing else reads
it) and a Transpose that is the only reader of its output becomes its perm.
"""
from __future__ import annotations

from ..ir import Graph

# J2S_BatchedMatMul (csrc/owned/batched_matmul.hpp) takes products of at most MAX_SMALL_PRODUCT
# multiply-adds per matrix: past that one sgemm per matrix amortises its call and packing, and its
# blocking beats the owned kernel's (a 16 x 16 x 16 attention head: 4,096; a 64-token head of 64: 262,144).
# A B whose columns are strided is copied per matrix into a block on the stack of at most
# MAX_PACKED_B elements (the kernel's limit).
MAX_SMALL_PRODUCT, MAX_PACKED_B = 64 * 64 * 64, 16384


def small_batched_product(a_shape: tuple, b_shape: tuple, a_axes: list[int], b_axes: list[int]) -> bool:
    """Whether J2S_BatchedMatMul takes the product of A's axes (batch..., m, k) and B's (batch..., k, n):
    one row, one contracting and one column axis each, and small matrices (see MAX_SMALL_PRODUCT).
    Only batch axes may be the batch of a symbolic-batch model (its axis 0 must be one of them)."""
    if len(a_axes) != len(a_shape) or len(b_axes) != len(b_shape) or len(a_axes) != len(b_axes) or len(a_axes) < 3:
        return False
    if a_axes[:-2] and (0 not in a_axes[:-2] or 0 not in b_axes[:-2]):
        return False
    m, k, n = a_shape[a_axes[-2]], a_shape[a_axes[-1]], b_shape[b_axes[-1]]
    if not all(isinstance(d, int) for d in (m, k, n)) or m * k * n > MAX_SMALL_PRODUCT:
        return False
    b_columns_contiguous = b_axes[-1] == len(b_shape) - 1
    return b_columns_contiguous or k * n <= MAX_PACKED_B


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
        # output: a Transpose that alone reads it becomes its perm
        out = node.outputs[0]
        readers = consumers.get(id(out), [])
        if len(readers) == 1 and readers[0].op == "Transpose" and id(out) not in graph_outputs:
            transpose = readers[0]
            current = list(node.attrs.get("perm") or range(out.rank))
            node.attrs["perm"] = [current[p] for p in transpose.attrs["perm"]]
            node.outputs = [transpose.outputs[0]]
            removed.add(id(transpose))
    graph.nodes = [node for node in graph.nodes if id(node) not in removed]
    return graph
