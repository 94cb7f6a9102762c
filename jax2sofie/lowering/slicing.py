"""Rules for slicing and joining: slice, concatenate, dynamic_slice, dynamic_update_slice.

Slices are the project's J2S_Slice / J2S_DynamicSlice / J2S_DynamicUpdateSlice (csrc/owned/slicing.hpp):
SOFIE's own Slice gets the size of strided slices wrong and its run-time start code does not always
compile. Start indices known at conversion time are clamped here, exactly as JAX clamps them
(into [0, dim - size]); start indices computed from the inputs are clamped the same way in the
generated code. An axis taken whole never carries its size or start into the node, so slicing the
other axes of a batch-sized tensor works with a dynamic batch.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext, dtype_attr
from .registry import register

_INDEX_TYPES = (np.dtype("int32"), np.dtype("int64"))


@register("slice")
def slice_rule(ctx: LoweringContext, x: Value, *, start_indices, limit_indices, strides=None, **_params) -> Value:
    """J2S_Slice (strided; whole axes stay symbolic); folded on constants."""
    return ctx.slice(x, start_indices, limit_indices, strides)


@register("concatenate")
def concatenate(ctx: LoweringContext, *xs: Value, dimension, **_params) -> Value:
    """SOFIE Concat (float32, int32, int64, bool); zero-size parts are left out.

    A zero-size part is an empty constant (walker.py): it adds nothing to the result, so a
    concatenation with something non-empty keeps its meaning without it."""
    parts = [x for x in xs if x.size > 0]
    return ctx.concat(parts, dimension)


def _clamped_start(index: Value, dim: int, size: int) -> int:
    return int(np.clip(int(np.asarray(index.const).reshape(())), 0, dim - size))


def _check_index(ctx: LoweringContext, index: Value, what: str) -> None:
    if np.dtype(index.dtype) not in _INDEX_TYPES or index.rank != 0:
        raise ctx.error(f"{what}: start indices must be int32/int64 scalars, got {index.dtype}{list(index.shape)}")


def _split_starts(ctx: LoweringContext, indices, sizes, shape, primitive: str):
    """Per axis, the start of a window of `sizes` in `shape`: constant starts clamped here as JAX
    clamps them; traced ones are left to the native op (start 0 here, their axis in dynamic_axes and
    the index in index_inputs). A window as large as its axis starts at 0 whatever the index."""
    starts, dynamic_axes, index_inputs = [], [], []
    for axis, (index, size, dim) in enumerate(zip(indices, sizes, shape)):
        _check_index(ctx, index, primitive)
        if size == dim:
            starts.append(0)
        elif index.is_const:
            starts.append(_clamped_start(index, dim, size))
        else:
            starts.append(0)
            dynamic_axes.append(axis)
            index_inputs.append(index)
    return starts, dynamic_axes, index_inputs


@register("dynamic_slice")
def dynamic_slice(ctx: LoweringContext, x: Value, *indices: Value, slice_sizes, **_params) -> Value:
    """Constant starts: clamped here, then J2S_Slice; traced starts: J2S_DynamicSlice (clamps at run time)."""
    if len(indices) != x.rank:
        raise ctx.error(f"dynamic_slice with {len(indices)} start indices for a rank-{x.rank} operand "
                        "(dynamic sizes are not supported)")
    sizes = [int(s) for s in slice_sizes]
    starts, dynamic_axes, index_inputs = _split_starts(ctx, indices, sizes, x.shape, "dynamic_slice")
    if not dynamic_axes:
        return ctx.slice(x, starts, [s + n for s, n in zip(starts, sizes)])
    whole = [n == dim and axis not in dynamic_axes for axis, (n, dim) in enumerate(zip(sizes, x.shape))]
    return ctx.op("J2S_DynamicSlice", [x, *index_inputs], tuple(sizes), x.dtype, hint="dynamic_slice",
                  dtype=dtype_attr(x.dtype), starts=starts, sizes=[-1 if w else n for w, n in zip(whole, sizes)],
                  dynamic_axes=dynamic_axes)


@register("dynamic_update_slice")
def dynamic_update_slice(ctx: LoweringContext, x: Value, update: Value, *indices: Value, **_params) -> Value:
    """J2S_DynamicUpdateSlice: constant starts clamped here, traced ones at run time (as JAX clamps)."""
    if len(indices) != x.rank or update.rank != x.rank:
        raise ctx.error(f"dynamic_update_slice of a rank-{x.rank} operand with a rank-{update.rank} update and "
                        f"{len(indices)} start indices")
    if update.dtype != x.dtype:
        raise ctx.error(f"dynamic_update_slice of {x.dtype} with a {update.dtype} update")
    if update.shape == x.shape:  # every start is clamped to 0: the update replaces the operand
        return update
    starts, dynamic_axes, index_inputs = _split_starts(ctx, indices, update.shape, x.shape,
                                                       "dynamic_update_slice")
    return ctx.op("J2S_DynamicUpdateSlice", [x, update, *index_inputs], x.shape, x.dtype, hint="update_slice",
                  dtype=dtype_attr(x.dtype), starts=starts, dynamic_axes=dynamic_axes)


# -- catalog cases -------------------------------------------------------------------------------------------
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import Spec, boolean, case, f32, i32  # noqa: E402


def _basic_slices(p, x):
    # negative, odd and size-1 slices of the non-batch axes, plus a stride that does not divide the axis
    return x[:, 1:4, -2:] * 2.0, x[:, ::2, 1::3], x[:, -1, :] + 1.0, lax.slice(x, (0, 1, 0), (x.shape[0], 2, 5),
                                                                                (1, 1, 2))


case("slice_non_batch_axes", _basic_slices, f32(3, 5, 7))
case("slice_batch_axis", lambda p, x: x[1:3] + x[-2:] * x[::2][:2], f32(5, 4), batch=False)
case("slice_int_and_bool", lambda p, t, m: (t[:, 1:3] * 2, m[:, ::2]), i32(2, 5), boolean(2, 5))
case("slice_rank1_strided", lambda p, x: x[1:8:3] - x[::4][:3], f32(9), batch=False)
case("slice_weight_folded", lambda p, x: x @ p["w"][:, 2:5], f32(2, 6), params={"w": f32(6, 8)})

case("concatenate_last_axis", lambda p, x, y: jnp.concatenate([x, y, x * 2.0], axis=-1), f32(2, 3), f32(2, 5))
case("concatenate_middle_axis", lambda p, x, y: jnp.concatenate([x, y], axis=1), f32(2, 1, 4), f32(2, 3, 4))
case("concatenate_with_weight", lambda p, x: jnp.concatenate([x, jnp.broadcast_to(p["w"], x.shape[:1] + (3,))],
                                                             axis=1), f32(4, 2), params={"w": f32(3)})
case("concatenate_axis0", lambda p, x, y: jnp.concatenate([x, y], axis=0) + 1.0, f32(2, 3), f32(1, 3), batch=False)
case("concatenate_int_bool", lambda p, t, m: (jnp.concatenate([t, t + 1], axis=1),
                                              jnp.concatenate([m, ~m], axis=1)), i32(3, 2), boolean(3, 2))
# zero-size parts (empty slices, a (batch, 0) piece, jnp.zeros((n, 0))) drop out of a concatenation
case("concatenate_drops_zero_size_parts",
     lambda p, x: (jnp.concatenate([x[:, 0:0], x * 2.0, x[:, 2:2], jnp.zeros((x.shape[0], 0))], axis=1),
                   jnp.concatenate([jnp.arange(0, dtype=jnp.int32), jnp.arange(3, dtype=jnp.int32)]) + x.shape[1]),
     f32(3, 4))
# x @ w with w of shape (4, 0) is empty, and its sum over the empty axis a constant 0
case("zero_size_product_folds", lambda p, x: (x @ p["w"]).sum(-1) + x[:, 0], f32(3, 4), params={"w": f32(4, 0)})


def _dynamic_slice_constant_starts(p, x):
    inside = lax.dynamic_slice(x, (0, 1, 2), (x.shape[0], 2, 3))
    clamped_high = lax.dynamic_slice(x, (0, 4, 9), (x.shape[0], 2, 2))  # starts clamped to 3 and 4
    from_end = lax.dynamic_slice_in_dim(x, -3, 2, axis=2)  # a negative start counts from the end
    return inside, clamped_high, from_end


case("dynamic_slice_constant_starts", _dynamic_slice_constant_starts, f32(2, 5, 6))


def _dynamic_slice_traced_starts(p, x, i):
    # the start is computed from the input; i ranges over 0..7, so some starts are clamped at run time
    k = i[0] - 2
    return (lax.dynamic_slice_in_dim(x, k, 3, axis=1), lax.dynamic_slice(x, (0, i[1], k), (x.shape[0], 1, 2)),
            lax.dynamic_index_in_dim(x, i[1], axis=2, keepdims=False))


case("dynamic_slice_traced_starts", _dynamic_slice_traced_starts, f32(2, 4, 5), Spec((2,), "int32", "int"),
     batch=False)
case("dynamic_slice_traced_batched", lambda p, x, i: lax.dynamic_slice_in_dim(x, i[0, 0] - 3, 2, axis=1) * 2.0,
     f32(3, 5), i32(1, 1), batch=False)


def _dynamic_update_slice(p, x, u, i):
    constant = lax.dynamic_update_slice(x, u, (0, 1, 2))
    clamped = lax.dynamic_update_slice(x, u * 2.0, (0, 7, -4))  # clamped to (0, 2, 0)
    traced = lax.dynamic_update_slice(x, u - 1.0, (0, i[0] - 3, i[1]))
    return constant, clamped, traced


case("dynamic_update_slice", _dynamic_update_slice, f32(2, 4, 6), f32(2, 2, 3), Spec((2,), "int32", "int"),
     batch=False)
case("dynamic_update_index", lambda p, x, v: lax.dynamic_update_index_in_dim(x, v[:, 0], 2, axis=1) * 1.5,
     f32(3, 5), f32(3, 1))
case("dynamic_update_slice_int", lambda p, t, i: lax.dynamic_update_slice(t, t[:1, :2] * 0 - 1, (i[0], i[1])),
     i32(3, 4), Spec((2,), "int32", "int"), batch=False)
