"""Rule for block-scaled matrix products: lax.scaled_dot as the product of the dequantised operands.

lax.scaled_dot(lhs, rhs, lhs_scale=, rhs_scale=) is dot_general(lhs * lhs_scale, rhs * rhs_scale), each
scale repeated over blocks ("subchannels") of the contracting axes. XLA on the CPU computes it by its
decomposition: operands and scales rounded to bfloat16, their product rounded to bfloat16, and the matrix
product of those accumulated in float32. The rule does the same roundings (float32 values rounded to
nearest even like lax.reduce_precision(x, 8, 7)), so it matches JAX; for float8 operands and e8m0 (power
of two) scales, the use it is made for, every one of them is exact. The generated code has float32
tensors only: operands and scales computed at run time must be float32; constant ones (float8_e4m3fn
weights, float8_e8m0fnu scales) are widened to float32 at conversion time, which is exact.
jax.nn.scaled_matmul is declared not supported (unsupported.py): JAX has no CPU implementation of it.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ..ir import Value
from .context import LoweringContext
from .registry import RULES, register


def _float32(ctx: LoweringContext, value: Value, what: str) -> Value:
    if value.dtype == np.float32:
        return value
    if value.is_const:  # float8 and e8m0 values are all float32 numbers: exact
        return ctx.constant_from(np.asarray(value.const).astype(np.float32), [value], what)
    raise ctx.error(f"scaled_dot with a {np.dtype(value.dtype).name} {what} computed at run time is not supported: "
                    "the generated code has float32 tensors only (a constant one, e.g. a float8 weight, is "
                    "widened at conversion time)")


def _dequantised(ctx: LoweringContext, x: Value, scale: Value, contracting: list[int], what: str) -> Value:
    """x * scale, each scale element repeated over its block of x's contracting axes."""
    if scale.rank != x.rank:
        raise ctx.error(f"scaled_dot: the {what} scale has rank {scale.rank}, its operand {x.rank}")
    split_x, split_scale = [], []
    for axis, (n, k) in enumerate(zip(x.shape, scale.shape)):
        if axis in contracting:
            if k == 0 or n % k:
                raise ctx.error(f"scaled_dot: the {what} scale's {k} blocks do not divide axis {axis} of size {n}")
            split_x += [k, n // k]
            split_scale += [k, 1]
        elif n != k:
            raise ctx.error(f"scaled_dot: the {what} scale has {k} elements on axis {axis}, its operand {n}")
        else:
            split_x.append(n)
            split_scale.append(n)
    product = ctx.binary("Mul", ctx.reshape(_bfloat16(ctx, x), split_x), ctx.reshape(_bfloat16(ctx, scale), split_scale))
    return _bfloat16(ctx, ctx.reshape(product, x.shape))


def _bfloat16(ctx: LoweringContext, x: Value) -> Value:
    """x rounded to the nearest bfloat16 (ties to even), as float32: at conversion time for a constant."""
    if x.is_const:
        return ctx.constant_from(np.asarray(x.const).astype(ml_dtypes.bfloat16).astype(np.float32), [x])
    return RULES["reduce_precision"](ctx, x, exponent_bits=8, mantissa_bits=7)


@register("scaled_dot")
def scaled_dot(ctx: LoweringContext, lhs: Value, rhs: Value, lhs_scale: Value, rhs_scale: Value, *,
               dimension_numbers, preferred_element_type=None, **_params) -> Value:
    """dot_general of the dequantised operands (each times its scale, repeated over the contracting blocks),
    rounded to bfloat16 as XLA's CPU decomposition; constant float8/e8m0 operands and scales are widened
    to float32 at conversion time."""
    if preferred_element_type is not None and np.dtype(preferred_element_type) != np.float32:
        raise ctx.error(f"scaled_dot with preferred_element_type={np.dtype(preferred_element_type).name} is not "
                        "supported (float32 only)")
    (lhs_contract, rhs_contract), _ = dimension_numbers
    lhs = _dequantised(ctx, _float32(ctx, lhs, "lhs"), _float32(ctx, lhs_scale, "lhs scale"), list(lhs_contract), "lhs")
    rhs = _dequantised(ctx, _float32(ctx, rhs, "rhs"), _float32(ctx, rhs_scale, "rhs scale"), list(rhs_contract), "rhs")
    return RULES["dot_general"](ctx, lhs, rhs, dimension_numbers=dimension_numbers, preferred_element_type=np.float32)


# -- catalog cases -------------------------------------------------------------------------------------------
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32, positive  # noqa: E402

_BLOCK = 16


def _quantised_dense(p, x):
    """Activations quantised per block of 16 to integers |q| <= 8 with a power-of-two scale each (as e8m0),
    times bfloat16 weights with power-of-two block scales: every bfloat16 rounding of XLA's decomposition is
    exact, so the result does not depend on which of them XLA's simplifier keeps (at batch 1 it drops some)."""
    blocks = x.reshape(x.shape[0], -1, _BLOCK)
    scale = jnp.exp2(jnp.ceil(jnp.log2(jnp.max(jnp.abs(blocks), axis=-1) / 8.0)))  # (batch, K / 16)
    q = jnp.round(blocks / scale[..., None]).reshape(x.shape)
    w = lax.reduce_precision(p["w"], exponent_bits=8, mantissa_bits=7)  # bfloat16 values
    w_scale = jnp.exp2(jnp.round(jnp.log2(p["w_scale"])))
    return lax.scaled_dot(q, w, lhs_scale=scale, rhs_scale=w_scale,
                          dimension_numbers=(((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)


case("scaled_dot_quantised_dense", _quantised_dense, f32(3, 64), params={"w": f32(64, 5), "w_scale": positive(4, 5)})
# float32 operands and scales: the bfloat16 roundings of XLA's decomposition change the result by ~1e-2
case("scaled_dot_batched_heads", lambda p, a, b, sa, sb: lax.scaled_dot(
    a, b, lhs_scale=sa, rhs_scale=sb, dimension_numbers=(((2,), (1,)), ((0,), (0,))), preferred_element_type=jnp.float32),
    f32(2, 4, 64), f32(2, 64, 3), positive(2, 4, 2), positive(2, 2, 3))


def _float8_weights(p, x):
    """float8_e4m3fn weights with float8_e8m0fnu block scales (constants, widened at conversion time) times
    bfloat16-valued activations with power-of-two scales computed at run time."""
    w = p["w"].astype(jnp.float8_e4m3fn)
    w_scale = jnp.exp2(jnp.round(jnp.log2(p["w_scale"]))).astype(jnp.float8_e8m0fnu)
    x = lax.reduce_precision(x, exponent_bits=8, mantissa_bits=7)
    x_scale = jnp.exp2(jnp.round(x[:, ::_BLOCK]))  # (batch, K / 16)
    return lax.scaled_dot(x, w, lhs_scale=x_scale, rhs_scale=w_scale,
                          dimension_numbers=(((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)


case("scaled_dot_float8_weights", _float8_weights, f32(3, 64), params={"w": f32(64, 5), "w_scale": positive(4, 5)})
