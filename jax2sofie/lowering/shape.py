"""Rules for primitives that only move or replicate data: reshape, squeeze, broadcast, transpose."""
from __future__ import annotations

from ..ir import Value
from .context import LoweringContext
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


# -- catalog cases -------------------------------------------------------------------------------------------
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32  # noqa: E402

case("reshape", lambda p, x: jnp.reshape(x, (6, 4)) * 2.0, f32(2, 3, 4), batch=False)
case("reshape_flatten", lambda p, x: x.reshape(x.shape[0], -1) + 1.0, f32(2, 3, 4, 5))
case("squeeze", lambda p, x: jnp.squeeze(x, axis=(1, -1)) + 1.0, f32(3, 1, 4, 1))
case("expand_dims", lambda p, x: jnp.expand_dims(x, (0, 2)) * 3.0, f32(3, 4))
case("broadcast_in_dim", lambda p, x: jnp.broadcast_to(x[:, None, :], (4, 3, 5)) + 0.0, f32(4, 5), batch=False)
case("broadcast_scalar_input", lambda p, x, s: x + jnp.broadcast_to(s, (2, 3)), f32(2, 3), f32(), batch=False)
case("transpose", lambda p, x: jnp.transpose(x, (2, 0, 1)) - 1.0, f32(2, 3, 4))
case("transpose_2d", lambda p, x: x.T * 1.5, f32(3, 7))
case("reshape_with_dimensions", lambda p, x: lax.reshape(x, (3, 2), dimensions=(1, 0)) + 0.5, f32(2, 3), batch=False)
