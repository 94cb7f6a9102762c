"""Rules for scans along an axis (cumsum & co.), sorting and top_k.

The cumulative primitives go to the project-owned J2S_Cumulative (SOFIE's CumSum covers only sums),
`sort` to J2S_Sort (SOFIE has no sort; its operands are permuted together, which is how jnp.argsort
sorts an iota next to the keys), `top_k` and `approx_top_k` to the project-owned J2S_TopK (int32
indices as JAX's, a sorted buffer of the best k per row: csrc/owned/topk.hpp).
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext, dtype_attr
from .registry import register

_CUMULATIVE = {"cumsum": "sum", "cumprod": "prod", "cummax": "max", "cummin": "min", "cumlogsumexp": "logsumexp"}


def _cumulative_rule(primitive: str, mode: str):
    def rule(ctx: LoweringContext, x: Value, *, axis, reverse=False, **_params) -> Value:
        if x.dtype == np.bool_:
            raise ctx.error(f"{primitive} of a bool array is not supported (cast it to int32 first)")
        if mode == "logsumexp" and x.dtype != np.float32:
            raise ctx.error(f"cumlogsumexp of {x.dtype} is not supported (float32 only)")
        return ctx.op("J2S_Cumulative", [x], x.shape, x.dtype, hint=primitive, mode=mode, axis=int(axis) % x.rank,
                      reverse=int(bool(reverse)), dtype=dtype_attr(x.dtype))

    rule.__qualname__ = f"cumulative_rule[{primitive}]"
    rule.__doc__ = f"Project-owned J2S_Cumulative ({mode}, forwards or reverse)"
    return rule


for _primitive, _mode in _CUMULATIVE.items():
    register(_primitive)(_cumulative_rule(_primitive, _mode))


@register("sort")
def sort(ctx: LoweringContext, *operands: Value, dimension, is_stable=True, num_keys=1, **_params) -> list[Value]:
    """Project-owned J2S_Sort (stable, ascending, NaN last; all operands permuted by the keys); an
    int32 iota operand (jnp.argsort's) is not passed, its output is the sorted position itself."""
    shape = operands[0].shape
    if any(x.shape != shape for x in operands):
        raise ctx.error("sort of operands with different shapes")
    axis = int(dimension) % len(shape)
    # the iota of argsort is a batch-sized constant: as an input it would be a weight that depends on
    # the batch (no dynamic batch), so J2S_Sort writes the positions instead
    iota = [j for j, x in enumerate(operands) if j >= num_keys and _is_iota(x, axis)]
    inputs = [x for j, x in enumerate(operands) if j not in iota]
    return ctx.builder.op_multi("J2S_Sort", inputs, [(x.shape, x.dtype) for x in operands], hint="sort",
                                axis=axis, num_keys=int(num_keys), iota_outputs=iota,
                                dtype=dtype_attr(operands[0].dtype))


def _is_iota(x: Value, axis: int) -> bool:
    """Whether `x` is the int32 constant 0, 1, ... along `axis` (the same on every other axis)."""
    if not x.is_const or x.dtype != np.int32:
        return False
    positions = np.arange(x.shape[axis], dtype=np.int32).reshape([-1 if d == axis else 1 for d in range(x.rank)])
    return bool(np.array_equal(np.asarray(x.const), np.broadcast_to(positions, x.shape)))


@register("top_k")
def top_k(ctx: LoweringContext, x: Value, *k_operand: Value, k=None, axis=-1, **_params) -> list[Value]:
    """J2S_TopK (largest, sorted; ties: lower index first; floats in lax's total order: NaN above inf,
    -NaN below -inf, -0.0 below 0.0)."""
    if k_operand or k is None:
        raise ctx.error("top_k with a traced k is not supported")
    return _top_k(ctx, x, int(k), axis, True)


def _top_k(ctx: LoweringContext, x: Value, k: int, axis: int, largest: bool) -> list[Value]:
    axis = int(axis) % x.rank
    if x.dtype not in (np.float32, np.int32, np.int64):
        raise ctx.error(f"top_k of {x.dtype} is not supported")
    if not 1 <= k <= x.shape[axis]:
        raise ctx.error(f"top_k with k = {k} over an axis of length {x.shape[axis]} (1 <= k <= length)")
    shape = tuple(k if i == axis else n for i, n in enumerate(x.shape))
    return ctx.builder.op_multi("J2S_TopK", [x], [(shape, x.dtype), (shape, np.int32)], hint="top_k", k=k,
                                axis=axis, largest=int(largest), dtype=dtype_attr(x.dtype))


@register("approx_top_k")
def approx_top_k(ctx: LoweringContext, x: Value, *, k, reduction_dimension=-1, is_max_k=True,
                 aggregate_to_topk=True, **_params) -> list[Value]:
    """J2S_TopK, exact (what JAX computes on CPU); approx_min_k as the smallest k. NaN and the order of
    -0.0 and 0.0 as lax.top_k (JAX's own CPU result for them changes with k; NaN makes its order undefined)."""
    if not aggregate_to_topk:
        raise ctx.error("approx_top_k with aggregate_to_topk=False (a backend-dependent output size) "
                        "is not supported")
    return _top_k(ctx, x, int(k), int(reduction_dimension), bool(is_max_k))


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32, i32, positive  # noqa: E402

case("cumsum_cumprod", lambda p, x: (jnp.cumsum(x, axis=1), lax.cumsum(x, axis=2, reverse=True),
                                     jnp.cumprod(x, axis=-1), lax.cumprod(x, axis=0, reverse=True)),
     positive(3, 5, 2), batch=False)
case("cumsum_batch", lambda p, x: jnp.cumsum(x, axis=-1) + lax.cumsum(x, axis=0, reverse=True), f32(3, 7))
case("cummax_cummin", lambda p, x: (lax.cummax(x, axis=1), lax.cummin(x, axis=1, reverse=True),
                                    lax.cummax(x, axis=0, reverse=True), lax.cummin(x, axis=1)), f32(4, 5))
case("cumlogsumexp", lambda p, x: (lax.cumlogsumexp(x, axis=1), lax.cumlogsumexp(x * 30.0, axis=0, reverse=True)),
     f32(3, 6))
case("cumsum_int32", lambda p, i: (jnp.cumsum(i, axis=1), lax.cummax(i, axis=0, reverse=True)), i32(4, 3))
case("sort_values", lambda p, x: (jnp.sort(x, axis=-1), jnp.sort(x, axis=0), -jnp.sort(-x, axis=1),
                                  jnp.sort(x, axis=1)), f32(5, 1, 7), batch=False)
case("sort_batch", lambda p, x: jnp.sort(x, axis=-1), f32(3, 9))
# ties (small integers repeat) must keep the first index first, as jnp.argsort's stable sort does
case("argsort", lambda p, x, i: (jnp.argsort(x, axis=-1), jnp.argsort(i.astype(jnp.float32), axis=1),
                                 jnp.argsort(i, axis=0)), f32(4, 6), i32(4, 6))
case("sort_nan_last", lambda p, x: jnp.sort(jnp.where(x > 1.0, jnp.nan, x), axis=-1), f32(4, 6), batch=False)
case("sort_int32_keys", lambda p, i, x: lax.sort((i, x), dimension=1, num_keys=1), i32(3, 8), f32(3, 8))
case("sort_two_keys", lambda p, i, j: lax.sort((i, j, i * 10 + jnp.arange(8)), dimension=1, num_keys=2),
     i32(3, 8), i32(3, 8))
case("top_k", lambda p, x: lax.top_k(x, 3), f32(4, 7))
case("top_k_ties_all", lambda p, i, x: lax.top_k(i.astype(jnp.float32), 5) + lax.top_k(x, 1), i32(3, 5, 5), f32(3, 4))
case("top_k_int32", lambda p, i: lax.top_k(i, 2), i32(5, 6))
case("approx_max_min_k", lambda p, x: (lax.approx_max_k(x, 2), lax.approx_min_k(x, 3)), f32(3, 8))


def _special_values(x):
    """Rows with ties, -0.0 next to 0.0, +-inf, NaN and (negated) -NaN: lax.top_k orders them by the
    total order -NaN < -inf < ... < -0.0 < 0.0 < ... < inf < NaN, ties by the lower index."""
    v = jnp.where(x > 1.2, jnp.nan, jnp.round(x * 0.7))
    v = jnp.where(x < -1.4, -jnp.inf, v)
    return jnp.where(jnp.abs(x - 0.5) < 0.1, jnp.inf, v)


case("top_k_special_values", lambda p, x: lax.top_k(_special_values(x), 6) + lax.top_k(-_special_values(x), 6),
     f32(4, 3, 12))
case("top_k_k_equals_n", lambda p, x: lax.top_k(jnp.round(x), 9), f32(3, 9))
# rows longer than 32 with k <= 32: the sorted-buffer path of J2S_TopK (shorter rows are ranked by counting)
case("top_k_long_rows", lambda p, x, i: lax.top_k(_special_values(x), 7) + lax.top_k(i, 3), f32(3, 45), i32(3, 40))
# k > 32: the selection path of J2S_TopK
case("top_k_large_k", lambda p, x: lax.top_k(_special_values(x), 40) + lax.top_k(jnp.round(x * 3), 50), f32(2, 50))
case("top_k_int32_leading_dims", lambda p, i: lax.top_k(i * 1000003, 4) + lax.top_k(-i, 1), i32(2, 3, 4, 7))
# a k-nearest-neighbour graph (as the edgeconv benchmark): top_k's indices gather the neighbours
case("top_k_neighbours", lambda p, x: jax.vmap(lambda q, i: q[i])(
    x, lax.top_k(-jnp.sum((x[:, :, None] - x[:, None, :]) ** 2, axis=-1), 4)[1]), f32(3, 10, 2))
case("argsort_descending", lambda p, x: (jnp.argsort(x, axis=-1, descending=True), jnp.sort(x, axis=1, descending=True)),
     f32(3, 7))
