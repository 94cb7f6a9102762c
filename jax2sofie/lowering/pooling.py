"""Window reductions (pooling): reduce_window_max/min/sum and reduce_window with a max/min/add body.

All lower to jax2sofie's own J2S_Pool (csrc/owned/pool.hpp), which reduces a window over ANY axes of
a tensor of any rank, in the layout the jaxpr has (NHWC for Flax): SOFIE's Pool needs an NC<spatial>
input and cannot window over the batch or channel axis. The layout pass moves transposes through
J2S_Pool by permuting its attributes. Flax's avg_pool is reduce_window_sum followed by a division
by a constant (the window size, or the count of non-padded positions with count_include_pad=False,
which the walker folds from the traced reduce_window_sum over ones), so it needs nothing more here.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext
from .registry import register

_IDENTITY = {"max": -np.inf, "min": np.inf, "sum": 0.0}


def _pool(ctx: LoweringContext, x: Value, mode: str, init: float, window_dimensions, window_strides, padding,
          base_dilation, window_dilation) -> Value:
    if x.dtype != np.float32:
        raise ctx.error(f"window reduction ({mode}) is lowered for float32 only, got {x.dtype}")
    if any(int(d) != 1 for d in base_dilation):
        raise ctx.error(f"window reduction with base_dilation={tuple(base_dilation)} is not supported "
                        "(it appears in gradients, not in inference)")
    if x.rank == 0:
        raise ctx.error("window reduction of a rank-0 value is not supported")
    pads = [int(lo) for lo, _ in padding] + [int(hi) for _, hi in padding]
    out_shape = []
    for i in range(x.rank):
        span = x.shape[i] + pads[i] + pads[x.rank + i] - ((window_dimensions[i] - 1) * window_dilation[i] + 1)
        out_shape.append(span // window_strides[i] + 1)
    if min(out_shape) <= 0:
        raise ctx.error(f"window reduction with an empty output {out_shape} is not supported")
    return ctx.op("J2S_Pool", [x], out_shape, np.float32, hint=f"{mode}_pool", dtype="float32",
                  window=[int(w) for w in window_dimensions], strides=[int(s) for s in window_strides], pads=pads,
                  dilations=[int(d) for d in window_dilation], mode=mode, init=float(init))


def _monoid_rule(mode: str):
    def rule(ctx: LoweringContext, x: Value, *, window_dimensions, window_strides, padding, base_dilation,
             window_dilation, **_params) -> Value:
        return _pool(ctx, x, mode, _IDENTITY[mode], window_dimensions, window_strides, padding, base_dilation,
                     window_dilation)

    rule.__qualname__ = f"pool_rule[{mode}]"
    rule.__doc__ = f"J2S_Pool mode={mode} (any rank, windows over any axes, padding, strides, window dilation)"
    return rule


for _primitive, _mode in (("reduce_window_max", "max"), ("reduce_window_min", "min"), ("reduce_window_sum", "sum")):
    register(_primitive)(_monoid_rule(_mode))

_BODY_MODES = {"max": "max", "min": "min", "add": "sum"}


@register("reduce_window")
def reduce_window(ctx: LoweringContext, *args: Value, jaxpr, consts=(), window_dimensions, window_strides, padding,
                  base_dilation, window_dilation, **_params) -> list[Value]:
    """J2S_Pool when the body is a single max/min/add and the init value is a constant (any init value)."""
    if len(args) % 2:
        raise ctx.error("reduce_window with an odd number of operands and init values")
    operands, inits = args[: len(args) // 2], args[len(args) // 2:]
    body = getattr(jaxpr, "jaxpr", jaxpr)
    prims = [eqn.primitive.name for eqn in body.eqns]
    if len(operands) != 1 or consts or len(prims) != 1 or prims[0] not in _BODY_MODES:
        raise ctx.error(f"reduce_window over {len(operands)} operand(s) with body {prims} is not supported "
                        "(one operand and a single max, min or add)")
    init = inits[0]
    if not init.is_const:
        raise ctx.error("reduce_window with an init value computed from the inputs is not supported")
    return [_pool(ctx, operands[0], _BODY_MODES[prims[0]], float(np.asarray(init.const).ravel()[0]),
                  window_dimensions, window_strides, padding, base_dilation, window_dilation)]


# -- catalog cases -------------------------------------------------------------------------------------------
from jax import lax  # noqa: E402

from .catalog import case, f32  # noqa: E402


def _flax_pooling(p, x):
    import flax.linen as nn
    return (nn.max_pool(x, (2, 2), strides=(2, 2)),
            nn.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME"),
            nn.avg_pool(x, (3, 2), strides=(2, 1), padding="SAME", count_include_pad=False),
            lax.reduce_window(x, float("inf"), lax.min, (1, 2, 3, 1), (1, 1, 2, 1), ((0, 0), (1, 0), (0, 1), (0, 0))))


case("pool_flax_2d_odd", _flax_pooling, f32(2, 7, 9, 3))
case("pool_max_1d_padded", lambda p, x: lax.reduce_window(x, -float("inf"), lax.max, (1, 3, 1), (1, 2, 1),
                                                          ((0, 0), (1, 1), (0, 0))), f32(2, 9, 3))
case("pool_sum_3d", lambda p, x: lax.reduce_window(x, 0.0, lax.add, (1, 2, 2, 3, 1), (1, 1, 2, 2, 1), "VALID"),
     f32(1, 4, 5, 7, 2))
case("pool_sum_nchw_dilated", lambda p, x: lax.reduce_window(x, 0.0, lax.add, (1, 1, 2, 2), (1, 1, 1, 1), "SAME",
                                                             window_dilation=(1, 1, 2, 1)), f32(2, 3, 6, 5))
case("pool_over_channels_and_rank2", lambda p, x: lax.reduce_window(x, -float("inf"), lax.max, (1, 3), (1, 2),
                                                                    "SAME"), f32(4, 7))
case("reduce_window_generic_init", lambda p, x: (lax.reduce_window(x, 0.0, lax.max, (1, 2, 2), (1, 1, 1), "SAME"),
                                                 lax.reduce_window(x, 1.0, lax.add, (1, 3, 1), (1, 1, 1),
                                                                   ((0, 0), (1, 1), (0, 0)))), f32(2, 5, 4))
