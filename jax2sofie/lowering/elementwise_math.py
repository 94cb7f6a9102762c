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
from ..ops.expressions import (CTYPES, PRIMITIVES, ExpressionBuilder, Template, operand, reduce_precision_expression,
                               select_expression)
from .context import LoweringContext, dtype_attr
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
    # (uint32 values arrive here as int64: unsigned.py)
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
        others = "/".join(sorted(entry.dtypes - {"float32"}))
        return f"SOFIE {entry.sofie_op} (float32)" + (f"; J2S_Elementwise ({others})" if others else "")
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


# bitcast_convert_type between types of one width: (from, to) -> the C++ bit cast (elementwise.hpp's
# helpers); the same type is no cast at all
_BIT_CASTS = {("float32", "int32"): "j2s_bits", ("int32", "float32"): "j2s_float"}


@register("bitcast_convert_type")
def bitcast_convert_type(ctx: LoweringContext, x: Value, *, new_dtype, **_params) -> Value:
    """J2S_Elementwise bit cast between float32 and int32 (std::memcpy of each element)."""
    source, target = np.dtype(x.dtype).name, np.dtype(new_dtype).name
    if source == target:
        return x
    cast = _BIT_CASTS.get((source, target))
    if cast is None:
        raise ctx.error(f"bitcast_convert_type from {source} to {target} is not supported "
                        "(float32 <-> int32 only)")
    return elementwise(ctx, lambda b, args, dtype, params: f"{cast}({args[0]})", [x], np.dtype(target))


# float32's own widths: reducing to them (or more) changes nothing
_FLOAT32_EXPONENT_BITS, _FLOAT32_MANTISSA_BITS = 8, 23


@register("reduce_precision")
def reduce_precision(ctx: LoweringContext, x: Value, *, exponent_bits: int, mantissa_bits: int,
                     **_params) -> Value:
    """J2S_Elementwise rounding of float32 to fewer exponent/mantissa bits, bit for bit as XLA.

    bfloat16 is 8/7 bits, float16 5/10; float32's own 8/23 (or more) needs no node."""
    if x.dtype != np.float32:
        raise ctx.error(f"reduce_precision of {x.dtype} is not supported (float32 only)")
    if exponent_bits < 1 or mantissa_bits < 0:
        raise ctx.error(f"reduce_precision to {exponent_bits} exponent and {mantissa_bits} mantissa bits: "
                        "a float format needs an exponent bit at least")
    if exponent_bits >= _FLOAT32_EXPONENT_BITS and mantissa_bits >= _FLOAT32_MANTISSA_BITS:
        return x
    return elementwise(ctx, reduce_precision_expression, [x], np.float32,
                       {"exponent_bits": exponent_bits, "mantissa_bits": mantissa_bits})


# -- catalog cases (tests/test_catalog.py compiles and checks each) ---------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import boolean, case, f32, i32, positive  # noqa: E402

# the inverse functions (erf_inv, asin, acos, atanh) get values in (-0.95, 0.95) from their input,
# so that the walker does not fold them
def _unit(x):
    return 0.95 * jnp.tanh(x)


case("erf_erfc", lambda p, x: lax.erf(x) + 2.0 * lax.erfc(x), f32(3, 7))


def _erf_erfc_range(p, x):
    """erf, erfc and erf-GELU (vectorisable expressions of ops/expressions.py) over [-12, 12], where
    erfc runs down to its last subnormals, on tiny arguments, at +-0.0, +-inf and NaN."""
    spread = jnp.concatenate([x * 4.0, x * 1e-20, x * 0.0, -(x * 0.0), jnp.where(x > 1.0, jnp.inf, -jnp.inf),
                              jnp.where(x > 0.0, jnp.nan, x), jnp.clip(x * 4.0, -12.0, 12.0) + 8.0])
    return lax.erf(spread), lax.erfc(spread), jax.nn.gelu(spread, approximate=False)


case("erf_erfc_range", _erf_erfc_range, f32(4, 16))
# constants holding -0.0 (scalars picked by a select, and an array of them): 1 / x shows the sign
case("negative_zero_constants", lambda p, x: (1.0 / jnp.where(x > 0, 0.0, -0.0),
                                              1.0 / jnp.where(x > 9.0, x, jnp.array([0.0, -0.0, 0.0, -0.0, 2.0]))),
     f32(3, 5))
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
case("abs_int", lambda p, t: (jnp.abs(t - 4), jnp.abs(t * 0 + jnp.iinfo(jnp.int32).min)), i32(3, 5))
case("population_count_clz",
     lambda p, t: (lax.population_count(t * 123457 - 9), lax.clz(t * 123457 - 9), lax.clz(t - t),
                   lax.population_count(t - t - 1)), i32(4, 6))
def _mulhi_wide(p, x, y, t):
    """lax.mulhi on int32 values spread over +-2e9 (x * 5e8 truncated, |x| clipped to 4), and against
    the extremes of int32 (whose product needs all 64 bits)."""
    a = (jnp.clip(x, -4.0, 4.0) * 5e8).astype(jnp.int32)
    b = (jnp.clip(y, -4.0, 4.0) * 5e8).astype(jnp.int32)
    return (lax.mulhi(a, b), lax.mulhi(a, jnp.int32(jnp.iinfo(jnp.int32).min)),
            lax.mulhi(t - 4, jnp.int32(jnp.iinfo(jnp.int32).max)))


case("mulhi_int32", _mulhi_wide, f32(3, 5), f32(3, 5), i32(3, 5))
case("bitcast_float_int",
     lambda p, x: (lax.bitcast_convert_type(x, jnp.int32),
                   lax.bitcast_convert_type(lax.bitcast_convert_type(x, jnp.int32) + 1, jnp.float32)),
     f32(3, 4))
# t * 1000003 moves through the mantissa of 1.0f (bits 1065353216): floats in [1, 2)
case("bitcast_int_float", lambda p, t: lax.bitcast_convert_type(t * 1000003 + 1065353216, jnp.float32), i32(2, 7))


def _reduced_precisions(p, x):
    return (lax.reduce_precision(x, 8, 7),  # bfloat16
            lax.reduce_precision(x * 1e5, 5, 10),  # float16, overflowing to inf
            lax.reduce_precision(x * 1e-6, 5, 10),  # float16, underflowing to (signed) zero
            lax.reduce_precision(jnp.sqrt(x), 5, 10),  # NaN stays NaN
            lax.reduce_precision(x * 20.0, 4, 3),  # float8 e4m3 widths
            lax.reduce_precision(x, 8, 0),  # no mantissa bit left
            lax.reduce_precision(x, 8, 23) * 2.0)  # float32 itself: no node


case("reduce_precision", _reduced_precisions, f32(4, 8), rtol=0.0, atol=0.0,
     notes="bit for bit: each result is a rounded bit pattern computed like XLA, from inputs computed alike")
# total-order comparisons: searchsorted compares its (canonicalised) values with lt_to (side="left")
# and le_to (side="right")
def _searchsorted(p, v):
    edges = jnp.sort(p["edges"])  # folded: the bin edges are a param
    return (jnp.searchsorted(edges, v, method="compare_all"),
            jnp.searchsorted(edges, jnp.where(v > 1.0, jnp.nan, v), side="right", method="compare_all"),
            jnp.digitize(jnp.round(v), jnp.arange(-2.0, 3.0), method="compare_all"))


case("searchsorted_lt_to_le_to", _searchsorted, f32(3, 5), params={"edges": f32(6)})
case("searchsorted_int", lambda p, a, t: jnp.searchsorted(jnp.sort(a), t, side="right", method="compare_all"),
     i32(5), i32(4, 3), batch=False)


def _total_order_edges(p, x, y, t):
    # values where the total order differs from < and ==: -0.0 < +0.0, NaN of either sign at the ends
    # (a NaN negated at run time: the sign of a NaN constant is not kept in the generated code)
    def nan_where(condition, v):
        return jnp.where(condition, jnp.nan, v)

    special = jnp.stack([x, x * 0.0, -(x * 0.0), nan_where(x > 0.8, x), -nan_where(x < -0.8, x),
                         jnp.where(x > 1.2, jnp.inf, x), jnp.where(x < -1.2, -jnp.inf, x)])
    other = jnp.stack([y, y * 0.0, -(y * 0.0), -nan_where(y > 0.8, y), nan_where(y < -0.8, y),
                       jnp.where(y > 1.2, -jnp.inf, y), -(y * 0.0)])
    return (lax.lt_to_p.bind(special, other), lax.le_to_p.bind(special, other), lax.eq_to_p.bind(special, other),
            lax.eq_to_p.bind(special, special), lax.lt_to_p.bind(t, t[::-1]), lax.eq_to_p.bind(t, t[::-1]),
            lax.eq_to_p.bind(t > 3, t[::-1] > 3))


case("total_order_comparisons", _total_order_edges, f32(4, 6), f32(4, 6), i32(4, 6), batch=False)
