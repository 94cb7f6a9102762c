"""Transposes (and slices) around a J2S_BatchedMatMul fold into how it reads and writes its operands.

Attention moves its heads between [batch, seq, heads, dh] and [batch, heads, seq, dh] with Transposes
before and after the per-head products (Keras MultiHeadAttention, hand-written einsums, and flax's
context, which einsum gives as [b, h, q, d] and the model transposes back). J2S_BatchedMatMul reads
its operands through strides (a_axes, b_axes) and writes its output in any axis order, so a
Transpose that produces one of its operands is read through (the Transpose goes if nothing else reads
it) and a Transpose that is the only reader of its output becomes the order of its output axes
(out_axes). Transposes that only move axes of size 1 become Reshapes.

The query, key and value of a fused QKV projection (BERT, timm's ViT: `qkv.reshape(b, s, 3, h, dh)
.transpose(2, 0, 3, 1, 4)`, then `qkv[0]`, `qkv[1]`, `qkv[2]`) are a Transpose, three J2S_Slices of
one index of its first axis and three Reshapes that drop that axis: each operand is read back through
such Reshapes (of unit axes only), single-index slices and Transposes to the projection's output,
at a fixed index of the axis the slice picked (a_fixed, b_fixed), so none of the copies is made.
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


def small_batched_product(a_shape: tuple, b_shape: tuple, a_axes: list[int], b_axes: list[int],
                          a_fixed: dict | None = None, b_fixed: dict | None = None) -> bool:
    """Whether J2S_BatchedMatMul takes the product of A's axes (batch..., m, k) and B's (batch..., k, n):
    one row, one contracting and one column axis each (the other axes of size 1, or read at a fixed
    index: a_fixed, b_fixed map axis -> index), and small matrices (see MAX_SMALL_PRODUCT).
    Only batch axes may be the batch of a symbolic-batch model: each operand's first axis not read at a
    fixed index must be one of them (or of size 1, which a batch traced at two sizes above 1 never is)."""
    if len(a_axes) != len(b_axes) or len(a_axes) < 3:
        return False
    operands = ((a_shape, a_axes, a_fixed or {}), (b_shape, b_axes, b_fixed or {}))
    for shape, axes, fixed in operands:
        if any(shape[d] != 1 for d in range(len(shape)) if d not in axes and d not in fixed):
            return False
        if any(not isinstance(shape[d], int) for d in fixed):
            return False
        first = next((d for d in range(len(shape)) if d not in fixed), None)
        if a_axes[:-2] and first is not None and first not in axes[:-2] and shape[first] != 1:
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
        # operands: read the source of Transposes, single-index slices and unit-axis Reshapes
        for i, key, fixed_key in ((0, "a_axes", "a_fixed"), (1, "b_axes", "b_fixed")):
            fixed = dict(zip(node.attrs.get(fixed_key, [])[0::2], node.attrs.get(fixed_key, [])[1::2]))
            for source, axes, fixed in _views_back(producers, node.inputs[i], list(node.attrs[key]), fixed):
                views = [(node.inputs[0], list(node.attrs["a_axes"]), _fixed(node, "a_fixed")),
                         (node.inputs[1], list(node.attrs["b_axes"]), _fixed(node, "b_fixed"))]
                views[i] = (source, axes, fixed)
                if small_batched_product(views[0][0].shape, views[1][0].shape, views[0][1], views[1][1],
                                         views[0][2], views[1][2]):
                    node.inputs[i] = source
                    node.attrs[key] = axes
                    if fixed:
                        node.attrs[fixed_key] = [x for d in sorted(fixed) for x in (d, fixed[d])]
                    else:
                        node.attrs.pop(fixed_key, None)
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


def _fixed(node, key: str) -> dict:
    flat = list(node.attrs.get(key, []))
    return dict(zip(flat[0::2], flat[1::2]))


def _views_back(producers, value: Value, axes: list[int], fixed: dict):
    """The same operand read further back, nearest first, as (source, axes, fixed): through a Transpose
    (axes permuted), a J2S_Slice whose axes are whole or of one index (those axes read at that index),
    and a Reshape that only adds or drops axes of size 1 (the named axes must not be of size 1)."""
    while True:
        node = producers.get(id(value))
        if node is None:
            return
        if node.op == "Transpose":
            perm = list(node.attrs["perm"])
            axes, fixed = [perm[a] for a in axes], {perm[d]: i for d, i in fixed.items()}
        elif node.op == "J2S_Slice":
            starts, steps, sizes = (list(node.attrs[k]) for k in ("starts", "steps", "sizes"))
            if any(sizes[d] != -1 for d in axes):  # a named axis must be whole
                return
            picked = {d: starts[d] + fixed.get(d, 0) * steps[d] for d in range(len(sizes))
                      if sizes[d] != -1 or d in fixed}
            if any(sizes[d] not in (-1, 1) and d not in fixed for d in picked):
                return
            fixed = {d: i for d, i in picked.items() if node.inputs[0].shape[d] != 1}
        elif node.op == "Reshape":
            source, out = node.inputs[0].shape, node.outputs[0].shape
            kept_in = [d for d in range(len(source)) if source[d] != 1]
            kept_out = [d for d in range(len(out)) if out[d] != 1]
            if [source[d] for d in kept_in] != [out[d] for d in kept_out] or any(out[d] == 1 for d in axes):
                return
            to_in = dict(zip(kept_out, kept_in))
            axes = [to_in[a] for a in axes]
            fixed = {to_in[d]: i for d, i in fixed.items() if d in to_in}
        else:
            return
        value = node.inputs[0]
        yield value, axes, fixed


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
