"""dot_general with any dimension numbers, lowered to SOFIE's Gemm (small batched products: J2S_BatchedMatMul).

Every contraction is brought to the form (batch..., M, K) x (batch..., K, N): transposes put batch, free
and contracting axes in that order (free on weights: they fold into the weight), reshapes merge the
free and the contracting axes (never the batch axes).
Without batch axes a plain 2-D Gemm is used and an operand already laid out as (K, M) or (N, K)
is read through Gemm's transA/transB instead of being transposed.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Value
from ..passes.product_transposes import small_batched_product
from .context import LoweringContext
from .registry import register


@register("dot_general")
def dot_general(ctx: LoweringContext, lhs: Value, rhs: Value, *, dimension_numbers, preferred_element_type=None,
                **_params) -> Value:
    """SOFIE Gemm (2-D, with transA/transB); small batched products (attention heads) as the project-owned
    J2S_BatchedMatMul reading its operands through strides; else batched Gemm after transposes/reshapes that
    fold on weights."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    lhs_contract, rhs_contract = list(lhs_contract), list(rhs_contract)
    lhs_batch, rhs_batch = list(lhs_batch), list(rhs_batch)
    # contracting pairs in the order of lhs's axes (the sum does not depend on their order), so that
    # lhs's trailing contracting axes are recognised as one K even when listed out of order
    pairs = sorted(zip(lhs_contract, rhs_contract))
    lhs_contract, rhs_contract = [a for a, _ in pairs], [b for _, b in pairs]
    if lhs.dtype != np.float32 or rhs.dtype != np.float32:
        # SOFIE's Gemm is sgemm only; an integer product through float32 would be silently inexact above 2**24
        raise ctx.error(f"dot_general is lowered for float32 only, got {lhs.dtype} x {rhs.dtype} "
                        "(cast the operands to float32 in the model if their products are small integers)")
    out_dtype = np.dtype(preferred_element_type or lhs.dtype)
    if out_dtype != np.float32:
        raise ctx.error(f"dot_general with preferred_element_type={out_dtype} is not supported")

    lhs_free = [d for d in range(lhs.rank) if d not in lhs_contract and d not in lhs_batch]
    rhs_free = [d for d in range(rhs.rank) if d not in rhs_contract and d not in rhs_batch]
    batch = [lhs.shape[d] for d in lhs_batch]
    m = math.prod(lhs.shape[d] for d in lhs_free)
    k = math.prod(lhs.shape[d] for d in lhs_contract)
    n = math.prod(rhs.shape[d] for d in rhs_free)
    out_shape = tuple(batch) + tuple(lhs.shape[d] for d in lhs_free) + tuple(rhs.shape[d] for d in rhs_free)

    n_free = len(lhs_free)
    if (not batch and n_free >= 2 and lhs_free == list(range(n_free))
            and lhs_contract == list(range(n_free, lhs.rank))):
        # (..., K) x (K, N): SOFIE's Gemm takes the leading axes of A as they are, so the batch axis is
        # never merged into a reshape (which SOFIE cannot do on a symbolic batch); several trailing
        # contracting axes of A are merged into K, several free axes of B into N
        free_shape = tuple(lhs.shape[d] for d in lhs_free)
        a = ctx.reshape(lhs, free_shape + (k,))
        b, trans_b = _as_matrix(ctx, rhs, rhs_contract, rhs_free, (k, n))
        product = ctx.op("Gemm", [a, b], free_shape + (n,), np.float32, hint="matmul", alpha=1.0, beta=0.0,
                         transA=0, transB=int(trans_b))
        return ctx.reshape(product, out_shape)

    if not batch:
        a, trans_a = _as_matrix(ctx, lhs, lhs_free, lhs_contract, (m, k))
        b, trans_b = _as_matrix(ctx, rhs, rhs_contract, rhs_free, (k, n))
        product = ctx.op("Gemm", [a, b], (m, n), np.float32, hint="matmul", alpha=1.0, beta=0.0,
                         transA=int(trans_a), transB=int(trans_b))
        return ctx.reshape(product, out_shape)

    product = _small_batched_product(ctx, lhs, rhs, lhs_batch, lhs_free, lhs_contract, rhs_batch, rhs_free,
                                     rhs_contract, out_shape)
    if product is not None:
        return product

    # batched: (batch..., M, K) x (batch..., K, N), the batch axes kept apart (not merged) for the
    # same reason; SOFIE's Gemm multiplies stacks of matrices of equal rank
    batch = tuple(batch)
    a = ctx.reshape(ctx.transpose(lhs, lhs_batch + lhs_free + lhs_contract), batch + (m, k))
    b = ctx.reshape(ctx.transpose(rhs, rhs_batch + rhs_contract + rhs_free), batch + (k, n))
    product = ctx.op("Gemm", [a, b], batch + (m, n), np.float32, hint="batched_matmul", alpha=1.0, beta=0.0,
                     transA=0, transB=0)
    return ctx.reshape(product, out_shape)


def _one_axis(x: Value, axes: list[int]) -> list[int] | None:
    """`axes` of `x` as one axis (the one not of size 1, or the first), or None if two are not of size 1."""
    wide = [d for d in axes if x.shape[d] != 1]
    if len(wide) > 1 or not axes:
        return None
    return wide or axes[:1]


def _small_batched_product(ctx: LoweringContext, lhs: Value, rhs: Value, lhs_batch, lhs_free, lhs_contract,
                           rhs_batch, rhs_free, rhs_contract, out_shape) -> Value | None:
    """The heads of attention: one project-owned loop over all the small products (J2S_BatchedMatMul),
    reading the operands where they lie (no Transpose to (batch..., M, K) first), not one sgemm per
    matrix; None where it does not apply (see small_batched_product)."""
    m, k, n = _one_axis(lhs, lhs_free), _one_axis(lhs, lhs_contract), _one_axis(rhs, rhs_free)
    k_rhs = [rhs_contract[lhs_contract.index(k[0])]] if k else None
    if m is None or k is None or n is None:
        return None
    a_axes, b_axes = lhs_batch + m + k, rhs_batch + k_rhs + n
    if not small_batched_product(lhs.shape, rhs.shape, a_axes, b_axes):
        return None
    nb = len(lhs_batch)
    # out_shape is (batch..., lhs free..., rhs free...): the chosen row and column axes, the rest unit
    out_axes = list(range(nb)) + [nb if d == m[0] else -1 for d in lhs_free] + [nb + 1 if d == n[0] else -1
                                                                               for d in rhs_free]
    return ctx.op("J2S_BatchedMatMul", [lhs, rhs], out_shape, np.float32, hint="batched_matmul",
                  a_axes=a_axes, b_axes=b_axes, out_axes=out_axes)


def _as_matrix(ctx: LoweringContext, x: Value, rows: list[int], cols: list[int], shape: tuple[int, int]):
    """`x` as a (rows x cols) matrix, and whether Gemm must read it transposed.

    Axes already in (cols, rows) order are passed untransposed with the transpose flag set, so an
    activation in (K, M) layout or a (N, K) weight costs no Transpose node.
    """
    if rows + cols == list(range(x.rank)) or x.is_const:
        return ctx.reshape(ctx.transpose(x, rows + cols), shape), False
    if cols + rows == list(range(x.rank)):
        return ctx.reshape(x, shape[::-1]), True
    return ctx.reshape(ctx.transpose(x, rows + cols), shape), False


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from .catalog import case, f32  # noqa: E402

case("matmul_weight", lambda p, x: x @ p["w"], f32(4, 16), params={"w": f32(16, 8)})
case("matmul_weight_transposed", lambda p, x: x @ p["w"].T, f32(3, 5), params={"w": f32(7, 5)})
case("matmul_two_inputs", lambda p, x, y: x @ y, f32(4, 6), f32(6, 3), batch=False)
case("matmul_lhs_transposed", lambda p, x, y: x.T @ y, f32(6, 4), f32(6, 3))
case("matmul_rhs_transposed_input", lambda p, x, y: x @ y.T, f32(4, 6), f32(3, 6), batch=False)
case("matvec", lambda p, x: p["w"] @ x, f32(5), params={"w": f32(3, 5)}, batch=False)
case("dot_vectors", lambda p, x, y: jnp.dot(x, y) * x, f32(6), f32(6))
case("matmul_rank3_activation", lambda p, x: x @ p["w"], f32(2, 3, 4), params={"w": f32(4, 5)})
case("batched_matmul", lambda p, x, y: jnp.einsum("bij,bjk->bik", x, y), f32(3, 4, 5), f32(3, 5, 2))
case("attention_scores", lambda p, q, k: jnp.einsum("bqhd,bkhd->bhqk", q, k), f32(2, 4, 3, 8), f32(2, 5, 3, 8))
case("einsum_two_contractions", lambda p, x: jnp.einsum("nij,ijk->nk", x, p["w"]), f32(2, 3, 4),
     params={"w": f32(3, 4, 5)})
case("outer_product", lambda p, x, y: jnp.outer(x, y), f32(4), f32(3), batch=False)
# einsum patterns: several batch axes, batch axes not leading, several contracting axes, rank-1 operands
case("einsum_attention_bhqd", lambda p, q, k: jnp.einsum("bhqd,bhkd->bhqk", q, k), f32(2, 3, 4, 8), f32(2, 3, 5, 8))
case("einsum_two_batch_axes", lambda p, x, y: jnp.einsum("abij,abjk->abik", x, y), f32(2, 3, 4, 5), f32(2, 3, 5, 1))
case("einsum_heads_to_features", lambda p, x: jnp.einsum("bqhd,hdk->bqk", x, p["w"]), f32(2, 5, 3, 4),
     params={"w": f32(3, 4, 7)})
case("einsum_batch_contract_leading", lambda p, x, y: jnp.einsum("abc,abd->acd", x, y), f32(3, 4, 5), f32(3, 4, 2))
case("einsum_batch_not_leading", lambda p, x, y: jnp.einsum("ibj,jbk->bik", x, y), f32(3, 2, 4), f32(4, 2, 5),
     batch=False)
case("einsum_matvec_and_vector_tensor", lambda p, x, v: (jnp.einsum("ij,j->i", x, v), jnp.einsum("j,bjk->bk", v, p["t"]),
                                                       jnp.einsum("bjk,j->bk", p["t"], v)),
     f32(3, 4), f32(4), params={"t": f32(2, 4, 5)}, batch=False)
case("einsum_preferred_float32", lambda p, x: jnp.einsum("bi,io->bo", x, p["w"], preferred_element_type=jnp.float32),
     f32(3, 5), params={"w": f32(5, 2)})
# J2S_BatchedMatMul (small heads): the flax attention core (scores, softmax, context written back to
# [b, q, h, d], a Transpose folded into the product's output), heads moved by explicit transposes
# (Keras' layout, folded into the operands' strides), a width that is no multiple of any vector width,
# a constant operand, and products too large for it (one sgemm per matrix, as before)
case("attention_core_flax", lambda p, q, k, v: jnp.einsum(
    "bhqk,bkhd->bqhd", jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / 4.0, axis=-1), v),
    f32(2, 6, 3, 16), f32(2, 7, 3, 16), f32(2, 7, 3, 16))
case("attention_core_transposed_heads", lambda p, q, k, v: jnp.matmul(
    jax.nn.softmax(jnp.matmul(q.transpose(0, 2, 1, 3), k.transpose(0, 2, 3, 1)), axis=-1),
    v.transpose(0, 2, 1, 3)).transpose(0, 2, 1, 3), f32(3, 5, 2, 8), f32(3, 9, 2, 8), f32(3, 9, 2, 8))
case("batched_matmul_odd_widths", lambda p, x, y: jnp.einsum("bij,bjk->bik", x, y), f32(2, 7, 3), f32(2, 3, 37))
case("batched_matmul_constant_rhs", lambda p, x: jnp.einsum("bhij,hjk->bhik", x, p["w"]), f32(2, 3, 5, 4),
     params={"w": f32(3, 4, 6)})
case("batched_matmul_large_heads", lambda p, q, k: jnp.einsum("bqd,bkd->bqk", q, k), f32(2, 80, 64), f32(2, 80, 64))
case("batched_matmul_strided_rhs_too_wide", lambda p, q, k: jnp.einsum("bqd,bkd->bqk", q, k), f32(2, 1, 128),
     f32(2, 160, 128))
# a unit axis among the free axes (nnx attention's [b, q, h, 1, d]), and a Transpose that only moves
# unit axes (a Reshape after fold_product_transposes)
case("attention_core_unit_group_axis", lambda p, q, k, v: jnp.einsum(
    "bhgqk,bkhd->bqhgd", jax.nn.softmax(jnp.einsum("bqhgd,bkhd->bhgqk", q, k), axis=-1), v),
    f32(2, 5, 3, 1, 8), f32(2, 7, 3, 8), f32(2, 7, 3, 8))
# a fused QKV projection split by BERT's reshape/transpose/index (the Transpose and the three slices
# fold into the products, which read the projection's output at a fixed index of its axis of 3)
def _fused_qkv_attention(p, x):
    b, s, _ = x.shape
    qkv = (x @ p["w"]).reshape(b, s, 3, 2, 8).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    return (jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / 4.0, axis=-1) @ v).transpose(0, 2, 1, 3).reshape(b, s, 16)


case("attention_fused_qkv", _fused_qkv_attention, f32(2, 6, 16), params={"w": f32(16, 48)})
case("transpose_of_unit_axes", lambda p, x: jnp.exp(x.transpose(2, 0, 1, 3)) + x.transpose(2, 0, 1, 3),
     f32(2, 3, 1, 4))
