"""Rules for reductions over axes."""
from __future__ import annotations

from ..ir import Value
from .context import LoweringContext
from .registry import register

_REDUCE_OPS = {"reduce_sum": "ReduceSum", "reduce_max": "ReduceMax", "reduce_min": "ReduceMin"}


def _reduce_rule(op: str):
    def rule(ctx: LoweringContext, x: Value, *, axes, **_params) -> Value:
        axes = sorted(int(a) % x.rank for a in axes)
        out_shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
        if not axes:
            return x
        if out_shape:
            return ctx.op(op, [x], out_shape, x.dtype, axes=axes, keepdims=0)
        # SOFIE cannot reduce to a rank-0 tensor (SOFIE_PITFALLS.md): keep the dims, then relabel
        kept = ctx.op(op, [x], (1,) * x.rank, x.dtype, axes=axes, keepdims=1)
        return ctx.reshape(kept, ())

    rule.__qualname__ = f"reduce_rule[{op}]"
    rule.__doc__ = f"SOFIE {op} (keepdims=1 + Reshape when reducing to a scalar)"
    return rule


for _primitive, _op in _REDUCE_OPS.items():
    register(_primitive)(_reduce_rule(_op))


# -- catalog cases -------------------------------------------------------------------------------------------
import jax.numpy as jnp  # noqa: E402

from .catalog import case, f32  # noqa: E402

case("reduce_sum_last", lambda p, x: jnp.sum(x, axis=-1), f32(4, 6))
case("reduce_sum_middle", lambda p, x: jnp.sum(x, axis=1), f32(2, 5, 3))
case("reduce_max_axis0", lambda p, x: jnp.max(x, axis=0), f32(5, 4))
case("reduce_min_two_axes", lambda p, x: jnp.min(x, axis=(0, 2)), f32(3, 4, 5))
case("reduce_sum_all_to_scalar", lambda p, x: jnp.sum(x), f32(3, 4))
case("reduce_max_all_rank1", lambda p, x: jnp.max(x) * x, f32(7))
case("mean_keepdims", lambda p, x: x - jnp.mean(x, axis=-1, keepdims=True), f32(3, 8))
