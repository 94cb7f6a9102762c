"""Rules for elementwise math, integer bitwise ops and logic that SOFIE lacks or gets wrong.

Each lowers to SOFIE's own operator where it has one that is right (Erf, Sin, Floor, ...), else to the
project-owned J2S_Elementwise: one loop over a C++ expression from the table in expressions.py, with
numpy broadcasting done in the loop's index arithmetic (SOFIE's integer bitwise ops ignore
broadcasting, its Where rejects integers: docs/sofie_workarounds.md).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..ir import Value
from .context import LoweringContext, dtype_attr
from .expressions import CTYPES, PRIMITIVES, ExpressionBuilder, Template, operand, select_expression
from .registry import register


def elementwise(ctx: LoweringContext, template: Template, inputs: Sequence[Value], out_dtype: Any,
                params: dict | None = None) -> Value:
    """One J2S_Elementwise node computing `template` over `inputs` (broadcast like numpy).

    Scalar constants are written into the expression as literals instead of being read from a
    tensor; an input used twice is read once.
    """
    builder = ExpressionBuilder()
    tensors: list[Value] = []
    inline_scalars = any(not v.is_const for v in inputs)  # the node needs one tensor input at least
    args = [operand(builder, tensors, value, inline_scalars) for value in inputs]
    dtype = np.dtype(inputs[0].dtype).name  # the templates dispatch on the first argument's type
    expression = builder.render(template(builder, args, dtype, params or {}))
    shape = tuple(np.broadcast_shapes(*(v.shape for v in inputs)))
    return ctx.op("J2S_Elementwise", tensors, shape, out_dtype, expression=expression,
                  to=dtype_attr(out_dtype))


def _check_dtypes(ctx: LoweringContext, primitive: str, inputs: Sequence[Value], allowed) -> str:
    dtype = np.dtype(inputs[0].dtype).name
    if dtype not in allowed:
        raise ctx.error(f"'{primitive}' on {dtype} is not supported (supported: {', '.join(sorted(allowed))})")
    return dtype


def _table_rule(primitive: str):
    entry = PRIMITIVES[primitive]

    def rule(ctx: LoweringContext, *inputs: Value, **params) -> Value:
        dtype = _check_dtypes(ctx, primitive, inputs, entry.dtypes)
        if entry.sofie_op is not None and dtype == "float32":
            return ctx.unary(entry.sofie_op, inputs[0])
        out_dtype = np.bool_ if entry.bool_out else inputs[0].dtype
        return elementwise(ctx, entry.template, inputs, out_dtype, params)

    rule.__qualname__ = f"table_rule[{primitive}]"
    rule.__doc__ = describe(primitive)
    return rule


def describe(primitive: str) -> str:
    """One line for the coverage page: the operator, and the expression where it is short."""
    entry = PRIMITIVES[primitive]
    kinds = "/".join(sorted(entry.dtypes))
    if entry.sofie_op is not None:
        return f"SOFIE {entry.sofie_op} (float32)"
    dtype = next(d for d in ("float32", "bool", "int32", "int64") if d in entry.dtypes)
    builder = ExpressionBuilder()
    args = [builder.input(i) for i in range(entry.arity)]
    expression = builder.render(entry.template(builder, args, dtype, {}))
    shown = f" `{expression}` for {dtype}" if len(expression) <= 60 else ""
    return f"J2S_Elementwise{shown} ({kinds})"


# `not`, the comparisons and `select_n` keep rules of their own (elementwise.py): SOFIE's Not,
# comparisons and Where are right for booleans / numbers / float32, and only their other forms come here
_RULES_IN_ELEMENTWISE = {"not", "eq", "ne", "lt", "le", "gt", "ge"}
for _primitive in PRIMITIVES:
    if _primitive not in _RULES_IN_ELEMENTWISE:
        register(_primitive)(_table_rule(_primitive))


def table_op(ctx: LoweringContext, primitive: str, *inputs: Value) -> Value:
    """The J2S_Elementwise node of a primitive of the expression table (for rules elsewhere)."""
    entry = PRIMITIVES[primitive]
    _check_dtypes(ctx, primitive, inputs, entry.dtypes)
    return elementwise(ctx, entry.template, inputs, np.bool_ if entry.bool_out else inputs[0].dtype)


def bitwise_not(ctx: LoweringContext, x: Value) -> Value:
    """~x on integers (J2S_Elementwise)."""
    return table_op(ctx, "not", x)


def select_cases(ctx: LoweringContext, which: Value, cases: Sequence[Value]) -> Value:
    """select_n over any number of cases of any supported dtype, with a bool or integer selector."""
    selector = np.dtype(which.dtype).name
    if selector not in ("bool", "int32", "int64"):
        raise ctx.error(f"select_n with a {selector} selector is not supported")
    _check_dtypes(ctx, "select_n", cases, CTYPES)
    return elementwise(ctx, lambda b, args, dtype, params: select_expression(b, args, selector),
                       [which, *cases], cases[0].dtype)


# -- catalog cases (tests/test_catalog.py compiles and checks each) ---------------------------------------
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import boolean, case, f32, i32, positive  # noqa: E402

# the inverse functions (erf_inv, asin, acos, atanh) get values in (-0.95, 0.95) from their input,
# so that the walker does not fold them
def _unit(x):
    return 0.95 * jnp.tanh(x)


case("erf_erfc", lambda p, x: lax.erf(x) + 2.0 * lax.erfc(x), f32(3, 7))
case("erf_inv", lambda p, x: lax.erf_inv(_unit(x)), f32(4, 9))
case("log1p_expm1", lambda p, x, y: jnp.log1p(y) - jnp.expm1(x), f32(5, 3), positive(5, 3))
case("exp2_cbrt", lambda p, x: jnp.exp2(x) + jnp.cbrt(x), f32(2, 11))
case("sign_float", lambda p, x: jnp.sign(x) * 3.0 + jnp.sign(x - x), f32(4, 5))
case("sign_int", lambda p, t: jnp.sign(t - 4), i32(3, 5))
case("floor_ceil", lambda p, x: jnp.floor(3.0 * x) + 10.0 * jnp.ceil(3.0 * x), f32(6, 4))
case("round_both_methods",
     lambda p, x: (lax.round(4.0 * x, lax.RoundingMethod.AWAY_FROM_ZERO),
                   lax.round(4.0 * x, lax.RoundingMethod.TO_NEAREST_EVEN), jnp.round(x + 0.5), jnp.round(x, 2)),
     f32(3, 8))
case("rem_float", lambda p, x, y: lax.rem(4.0 * x, y) + jnp.fmod(x, 0.3), f32(4, 6), positive(4, 6))
case("rem_int_broadcast", lambda p, t, u: lax.rem(t - 3, u[None, :] + 1) + lax.rem(t, 3), i32(5, 4), i32(4),
     batch=False)
case("trig", lambda p, x: (jnp.sin(x), jnp.cos(x), jnp.tan(x), jnp.arctan(x)), f32(3, 6))
case("inverse_trig", lambda p, x: jnp.arcsin(_unit(x)) + 2.0 * jnp.arccos(_unit(x)) + 3.0 * jnp.arctanh(_unit(x)),
     f32(2, 7))
case("atan2_broadcast", lambda p, y, x: jnp.arctan2(y, x[:, None]), f32(4, 5), f32(4))
case("hyperbolic", lambda p, x, y: (jnp.sinh(x), jnp.cosh(x), jnp.arcsinh(x), jnp.arccosh(y + 1.0)),
     f32(3, 4), positive(3, 4))
case("clamp_scalar_bounds", lambda p, x: lax.clamp(-0.5, x, 0.75) + jnp.clip(x, -1.0, None), f32(5, 5))
case("clamp_tensor_bounds", lambda p, lo, x: lax.clamp(lo, x, lo + 1.0), f32(3, 4), f32(3, 4))
case("clip_three_way_broadcast", lambda p, x, lo, hi: jnp.clip(x, lo[None, :, None] - 1.0, hi[:, None, None, :]),
     f32(2, 1, 4, 3), f32(4), f32(2, 3), batch=False)
case("clamp_int", lambda p, t: jnp.clip(t, 2, 5), i32(4, 6))
case("is_finite", lambda p, x, y: jnp.where(jnp.isfinite(jnp.log(x) / y), x, 0.0),
     f32(3, 5), f32(3, 5))
case("nextafter", lambda p, x, y: jnp.nextafter(x, y) - x, f32(4, 4), f32(4, 4), atol=1e-12,
     notes="the differences are one float32 ulp, far below the default absolute tolerance")
case("logic_bool", lambda p, a, b, x: jnp.where((a & b) | (~a ^ b[None, :]), x, -x),
     boolean(3, 5), boolean(5), f32(3, 5), batch=False)
case("logic_bool_output", lambda p, a, b: (a & b, a | b, a ^ b, ~a), boolean(4, 3), boolean(4, 3))
case("bitwise_int_broadcast", lambda p, t, u: (t & u[:, None]) + (t | 1) - (t ^ u[:, None]) + ~t,
     i32(4, 6), i32(4))
case("shifts", lambda p, t, s: (lax.shift_left(t, s), lax.shift_right_logical(t - 4, s),
                                lax.shift_right_arithmetic(t - 4, s), lax.shift_left(t, s + 30)),
     i32(3, 5), i32(3, 5))
case("select_n_three_cases", lambda p, w, x, y: lax.select_n(w % 3, x, y, x * y), i32(4, 5), f32(4, 5), f32(4, 5))
case("select_n_int_values", lambda p, m, t, u: jnp.where(m, t, u + 1), boolean(3, 4), i32(3, 4), i32(3, 4))
case("select_n_bool_values_broadcast_mask",
     lambda p, m, a, t, k: (jnp.where(m, a, ~a), jnp.where(k, t, 7)),
     boolean(3, 4), boolean(3, 4), i32(3, 4), boolean(3, 1))
case("select_n_int_selector_broadcast",
     lambda p, w, x: lax.select_n(jnp.broadcast_to(w[:, None] % 2, x.shape), x, -x), i32(4), f32(4, 3))
