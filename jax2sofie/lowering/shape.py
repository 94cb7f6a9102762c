"""Rules for primitives that only move or replicate data: reshape, squeeze, broadcast, transpose, pad,
rev, tile, split, stack, unstack, iota (pad/rev/tile/split are project-owned ops: csrc/owned/pad.hpp,
reverse.hpp, tile.hpp, split.hpp)."""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext, dtype_attr
from .registry import register


@register("reshape")
def reshape(ctx: LoweringContext, x: Value, *, new_sizes, dimensions=None, **_params) -> Value:
    """SOFIE Reshape (Transpose first when `dimensions` is given)."""
    if dimensions is not None:  # lax.reshape's optional transpose-before-reshape
        x = ctx.transpose(x, dimensions)
    return ctx.reshape(x, new_sizes)


@register("squeeze")
def squeeze(ctx: LoweringContext, x: Value, *, dimensions, **_params) -> Value:
    """SOFIE Reshape."""
    drop = {d % x.rank for d in dimensions}
    return ctx.reshape(x, [n for i, n in enumerate(x.shape) if i not in drop])


@register("broadcast_in_dim")
def broadcast_in_dim(ctx: LoweringContext, x: Value, *dyn_shape: Value, shape, broadcast_dimensions,
                     **_params) -> Value:
    """Insert the new axes as size 1 (a relabelling reshape), then Expand to the target shape."""
    if dyn_shape:
        raise ctx.error("broadcast_in_dim with dynamic shape operands is not supported")
    ranked = [1] * len(shape)
    for src, dst in enumerate(broadcast_dimensions):
        ranked[dst] = x.shape[src]
    return ctx.expand(ctx.reshape(x, ranked), shape)


@register("transpose")
def transpose(ctx: LoweringContext, x: Value, *, permutation, **_params) -> Value:
    """SOFIE Transpose."""
    return ctx.transpose(x, permutation)


@register("pad")
def pad(ctx: LoweringContext, x: Value, padding_value: Value, *, padding_config, **_params) -> Value:
    """J2S_Pad: low/high padding (negative crops) and interior padding, the value read from its operand."""
    config = [tuple(int(n) for n in dim) for dim in padding_config]
    if x.rank == 0 or all(dim == (0, 0, 0) for dim in config):
        return x
    shape = []
    for n, (low, high, interior) in zip(x.shape, config):
        shape.append(low + high + n + max(n - 1, 0) * interior)
    return ctx.op("J2S_Pad", [x, padding_value], shape, x.dtype, hint="pad", dtype=dtype_attr(x.dtype),
                  low=[c[0] for c in config], high=[c[1] for c in config], interior=[c[2] for c in config])


@register("rev")
def rev(ctx: LoweringContext, x: Value, *, dimensions, **_params) -> Value:
    """J2S_Reverse over the given axes."""
    axes = sorted({int(d) % x.rank for d in dimensions}) if x.rank else []
    if not [a for a in axes if x.shape[a] > 1]:
        return x
    return ctx.op("J2S_Reverse", [x], x.shape, x.dtype, hint="rev", dtype=dtype_attr(x.dtype), axes=axes)


@register("tile")
def tile(ctx: LoweringContext, x: Value, *, reps, **_params) -> Value:
    """J2S_Tile (the input repeated along each axis)."""
    reps = [int(r) for r in reps]
    if len(reps) > x.rank:  # numpy tile prepends axes of size 1
        x = ctx.reshape(x, (1,) * (len(reps) - x.rank) + tuple(x.shape))
    reps = [1] * (x.rank - len(reps)) + reps
    if all(r == 1 for r in reps):
        return x
    shape = [n * r for n, r in zip(x.shape, reps)]
    return ctx.op("J2S_Tile", [x], shape, x.dtype, hint="tile", dtype=dtype_attr(x.dtype), reps=reps)


@register("split")
def split(ctx: LoweringContext, x: Value, *, sizes, axis, **_params) -> list[Value]:
    """J2S_Split into pieces of the given sizes (one output each)."""
    axis = int(axis) % x.rank
    sizes = [int(s) for s in sizes]
    if len(sizes) == 1:
        return [x]
    shapes = [tuple(s if d == axis else n for d, n in enumerate(x.shape)) for s in sizes]
    return ctx.builder.op_multi("J2S_Split", [x], [(shape, x.dtype) for shape in shapes], "split",
                                dtype=dtype_attr(x.dtype), axis=axis, sizes=sizes)


@register("unstack")
def unstack(ctx: LoweringContext, x: Value, *, axis, **_params) -> list[Value]:
    """J2S_Split into pieces of size 1, each reshaped to drop the axis."""
    axis = int(axis) % x.rank
    pieces = split(ctx, x, sizes=[1] * x.shape[axis], axis=axis)
    return [ctx.reshape(piece, x.shape[:axis] + x.shape[axis + 1:]) for piece in pieces]


@register("stack")
def stack(ctx: LoweringContext, *xs: Value, axis, **_params) -> Value:
    """Each input reshaped to hold the new axis, then SOFIE Concat along it."""
    axis = int(axis) % (xs[0].rank + 1)
    shape = xs[0].shape[:axis] + (1,) + xs[0].shape[axis:]
    parts = [ctx.reshape(x, shape) for x in xs]
    if len(parts) == 1:
        return parts[0]
    out_shape = shape[:axis] + (len(parts),) + shape[axis + 1:]
    return ctx.op("Concat", parts, out_shape, xs[0].dtype, hint="stack", dtype=dtype_attr(xs[0].dtype), axis=axis)


@register("iota")
def iota(ctx: LoweringContext, *dyn_shape: Value, dtype, shape, dimension, **_params) -> Value:
    """A constant (iota has no operands, so the walker folds it before any rule is needed)."""
    if dyn_shape:
        raise ctx.error("iota with a dynamic shape is not supported")
    ramp = np.arange(shape[dimension], dtype=dtype).reshape([-1 if d == dimension else 1 for d in range(len(shape))])
    return ctx.const(np.broadcast_to(ramp, shape).copy(), "iota")


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import boolean, case, f32, i32  # noqa: E402

case("reshape", lambda p, x: jnp.reshape(x, (6, 4)) * 2.0, f32(2, 3, 4), batch=False)
case("reshape_flatten", lambda p, x: x.reshape(x.shape[0], -1) + 1.0, f32(2, 3, 4, 5))
case("squeeze", lambda p, x: jnp.squeeze(x, axis=(1, -1)) + 1.0, f32(3, 1, 4, 1))
case("expand_dims", lambda p, x: jnp.expand_dims(x, (0, 2)) * 3.0, f32(3, 4))
case("broadcast_in_dim", lambda p, x: jnp.broadcast_to(x[:, None, :], (4, 3, 5)) + 0.0, f32(4, 5), batch=False)
case("broadcast_scalar_input", lambda p, x, s: x + jnp.broadcast_to(s, (2, 3)), f32(2, 3), f32(), batch=False)
case("transpose", lambda p, x: jnp.transpose(x, (2, 0, 1)) - 1.0, f32(2, 3, 4))
case("transpose_2d", lambda p, x: x.T * 1.5, f32(3, 7))


def _per_token_dense(p, x):
    # a dense layer over the rows of (b*t, f), then the tokens regrouped per example: with a dynamic
    # batch the two reshapes merge the batch with t and split it off again (J2S_BatchReshape)
    b, t, f = x.shape
    h = jnp.tanh(x.reshape(b * t, f) @ p["w"] + p["b"])
    return h.reshape(b, t, -1).sum(axis=1)


def _merge_and_split_batch(p, x, t):
    b = x.shape[0]
    flat = (x * 2.0).reshape(-1)  # (b*20,): read only as an output, so a copy
    rows = (x + 1.0).reshape(b * 5, 2, 2)  # (b*5, 2, 2) of an intermediate read again below: an alias
    back = rows.reshape(b, 5, 4) - x  # split off again
    return flat, rows * 3.0, back, t.reshape(-1, 2) * 3  # int32 (b*2, 2) of a graph input: a copy


case("reshape_merge_batch_dense", _per_token_dense, f32(3, 5, 4), params={"w": f32(4, 6), "b": f32(6)})
case("reshape_merge_batch_and_back", _merge_and_split_batch, f32(3, 5, 4), i32(3, 4))
case("reshape_with_dimensions", lambda p, x: lax.reshape(x, (3, 2), dimensions=(1, 0)) + 0.5, f32(2, 3), batch=False)


def _pads(p, x):
    # jnp.pad (constant), negative low/high (crops) with interior padding, all from the operand's dtype
    return (jnp.pad(x, ((0, 0), (1, 2), (2, 0))), lax.pad(x, -1.5, ((0, 0, 0), (-1, 2, 1), (1, -1, 2))),
            lax.pad(x, 0.0, ((0, 0, 0), (-2, -1, 0), (0, 0, 0))))


case("pad_constant_negative_interior", _pads, f32(2, 4, 3))
case("pad_value_from_input", lambda p, x, v: lax.pad(x, v, ((1, 1, 1), (0, -1, 0))), f32(3, 4), f32(), batch=False)
case("pad_int_bool_size1", lambda p, t, m, u: (jnp.pad(t, ((0, 0), (2, 1)), constant_values=-7),
                                                jnp.pad(m, ((0, 0), (1, 0))), lax.pad(u, 5, ((0, 0, 0), (1, 1, 3)))),
     i32(3, 4), boolean(3, 4), i32(3, 1))
case("rev", lambda p, x, t: (x[:, ::-1], jnp.flip(x, axis=(0, -1)) * 2.0, jnp.flip(t, -1), jnp.flip(x[None], 0) + 1.0),
     f32(3, 5), i32(3, 2))
case("iota_folds", lambda p, x: x + jnp.arange(5, dtype=jnp.float32)
     + jax.nn.one_hot(jnp.array([4, 0]), 5)[:, None, :].sum(0), f32(3, 5))
case("split", lambda p, x: jnp.split(x, [1, 3], axis=1) + jnp.split(x, 2, axis=-1) + jnp.array_split(x, 3, axis=1),
     f32(3, 4))
case("split_int_first_axis", lambda p, t: jnp.split(t, [2], axis=0), i32(5, 2), batch=False)
case("tile", lambda p, x, m: (jnp.tile(x, (1, 3)), jnp.tile(x, (2, 1, 2)), jnp.tile(m, (1, 2))),
     f32(2, 3), boolean(2, 1))
case("repeat", lambda p, x: (jnp.repeat(x, 2, axis=1), jnp.repeat(x, 3, axis=-1) + 1.0), f32(3, 2))
case("stack", lambda p, x, y: (jnp.stack([x, y]), jnp.stack([x, y, x], axis=-1), jnp.stack([x], axis=1)),
     f32(3, 4), f32(3, 4))
case("stack_int", lambda p, t: jnp.stack([t, t * 2], axis=1), i32(4, 2))
# stacks of constants that the walker does not fold (a broadcast literal is lowered, not folded):
# the Concat must be folded by passes.constant_folding, since SOFIE would fold it reading every
# dtype as int64 (a bool stack read past its buffer and gave [3, 2] here instead of [1, 4])
case("select_over_constant_conditions",
     lambda p, t: t * jnp.select([jnp.array([True, False]), jnp.array([False, True])],
                                 [jnp.array([1, 2]), jnp.array([3, 4])], default=jnp.array([0, 0])),
     i32(3, 2))
case("select_float_over_constant_conditions",
     lambda p, x: x + jnp.select([jnp.array([True, False, False, True]), jnp.array([False, True, False, True]),
                                  jnp.array([False, False, False, True])],
                                 [jnp.full(4, 0.25), jnp.arange(4.0), jnp.array([7.0, 8.0, 9.0, 10.0])], default=-1.5),
     f32(3, 4))
case("stack_of_constants_axis1", lambda p, x: x * jnp.stack([jnp.ones(3), jnp.arange(3.0)], axis=1), f32(5, 3, 2))
case("unstack", lambda p, x, y: [u * 2.0 for u in jnp.unstack(x, axis=1)] + list(jnp.unstack(y, axis=-1)),
     f32(2, 3), f32(2, 1))
