"""Rules for elementwise primitives: arithmetic, transcendental functions, comparisons, select, casts."""
from __future__ import annotations

import numpy as np

from ..ir import Value
from ..ir.operators import lowered_primitives
from ..ops.expressions import FASTER_ALONE
from .context import LoweringContext
from .elementwise_math import bitwise_not, elementwise, select_cases, table_op
from .registry import register

# JAX primitive -> SOFIE operator of the same meaning (the `primitives` of the operator table)
_UNARY_OPS = lowered_primitives("unary")


# SOFIE's Neg and Abs are float-only; on integers (jnp.negative, jnp.abs of an int32 array) they are one
# J2S_Elementwise loop (wrapping like XLA is not needed: INT_MIN has no int32 negation in either)
_INTEGER_FORMS = {"Neg": lambda b, args, dtype, params: f"(-{args[0]})",
                  "Abs": lambda b, args, dtype, params: (lambda x: f"({x} < 0 ? -{x} : {x})")(b.share(args[0]))}


def _unary_rule(op: str):
    def rule(ctx: LoweringContext, x: Value, **_params) -> Value:
        if op in _INTEGER_FORMS and np.dtype(x.dtype).name in ("int32", "int64"):
            return elementwise(ctx, _INTEGER_FORMS[op], [x], x.dtype)
        if x.dtype != np.float32:
            raise ctx.error(f"'{op}' is lowered for float32 only, got {x.dtype}")
        return ctx.unary(op, x)

    rule.__qualname__ = f"unary_rule[{op}]"
    rule.__doc__ = f"SOFIE {op}" + (f" (then the vectorisable J2S_Elementwise {op.lower()} of fuse_elementwise)"
                                    if op in FASTER_ALONE else "") + (
        "; J2S_Elementwise on int32/int64" if op in _INTEGER_FORMS else "")
    return rule


for _primitive, _op in _UNARY_OPS.items():
    register(_primitive)(_unary_rule(_op))


# add_any: the sum of two tangents or cotangents, left by jax.jvp, jax.linearize and jax.grad
_BINARY_OPS = lowered_primitives("arithmetic")


def _binary_rule(op: str):
    def rule(ctx: LoweringContext, a: Value, b: Value, **_params) -> Value:
        return ctx.binary(op, a, b)

    rule.__qualname__ = f"binary_rule[{op}]"
    rule.__doc__ = f"SOFIE {op} (broadcasting)"
    return rule


for _primitive, _op in _BINARY_OPS.items():
    register(_primitive)(_binary_rule(_op))


@register("rsqrt")
def rsqrt(ctx: LoweringContext, x: Value, **_params) -> Value:
    """SOFIE Reciprocal(Sqrt(x))."""
    return ctx.unary("Reciprocal", ctx.unary("Sqrt", x))


@register("square")
def square(ctx: LoweringContext, x: Value, **_params) -> Value:
    """SOFIE Mul(x, x)."""
    return ctx.binary("Mul", x, x)


@register("integer_pow")
def integer_pow(ctx: LoweringContext, x: Value, *, y: int, **_params) -> Value:
    """x**y by repeated squaring (a few Mul nodes beat std::pow); 1/x**|y| for negative y."""
    if y == 0:
        return ctx.expand(ctx.reshape(ctx.literal(1, x.dtype), (1,) * x.rank), x.shape)
    result, power, n = None, x, abs(y)
    while n:
        if n & 1:
            result = power if result is None else ctx.binary("Mul", result, power)
        n >>= 1
        if n:
            power = ctx.binary("Mul", power, power)
    return ctx.unary("Reciprocal", result) if y < 0 else result


_COMPARISONS = lowered_primitives("comparison")


def _comparison_rule(primitive: str, op: str):
    def rule(ctx: LoweringContext, a: Value, b: Value, **_params) -> Value:
        if a.dtype == np.bool_:  # SOFIE's comparisons take numbers only
            return table_op(ctx, primitive, a, b)
        return ctx.binary(op, a, b, dtype=np.bool_)

    rule.__qualname__ = f"comparison_rule[{op}]"
    rule.__doc__ = f"SOFIE {op} (bool output); J2S_Elementwise on booleans"
    return rule


for _primitive, _op in _COMPARISONS.items():
    register(_primitive)(_comparison_rule(_primitive, _op))


@register("ne")
def not_equal(ctx: LoweringContext, a: Value, b: Value, **_params) -> Value:
    """J2S_Elementwise a != b (one loop; SOFIE would need Not(Equal(a, b)), and has no Equal on bool)."""
    return table_op(ctx, "ne", a, b)


@register("not")
def logical_not(ctx: LoweringContext, x: Value, **_params) -> Value:
    """SOFIE Not on booleans; ~x on integers (J2S_Elementwise)."""
    if x.dtype != np.bool_:
        return bitwise_not(ctx, x)
    return ctx.unary("Not", x)


@register("select_n")
def select_n(ctx: LoweringContext, which: Value, *cases: Value, **_params) -> Value:
    """SOFIE Where(p, b, a) for two float32 cases and a bool p; else J2S_Elementwise (any cases/dtypes).

    select_n(p, a, b) picks b where p is true. SOFIE's Where rejects integer tensors, so more cases,
    an integer selector or integer/bool values go to J2S_Elementwise."""
    if len(cases) == 1:
        return cases[0]
    shape = tuple(np.broadcast_shapes(which.shape, *(c.shape for c in cases)))
    if which.is_const and np.size(which.const) and np.all(which.const == np.asarray(which.const).flat[0]):
        # a constant selector (jnp.var's `where(dof > 0, var, nan)`) picks one case: no Where, and no
        # constant of the other case, which may have the batch size in its shape
        chosen = cases[int(np.asarray(which.const).flat[0])]
        if tuple(chosen.shape) == shape:
            return chosen
    if len(cases) != 2 or which.dtype != np.bool_ or cases[0].dtype != np.float32:
        return select_cases(ctx, which, cases)
    false_case, true_case = cases
    return ctx.op("Where", [which, true_case, false_case], shape, true_case.dtype,
                  dtype=np.dtype(true_case.dtype).name)


@register("convert_element_type")
def convert_element_type(ctx: LoweringContext, x: Value, *, new_dtype, **_params) -> Value:
    """SOFIE Cast (none when the dtype is unchanged)."""
    return ctx.cast(x, new_dtype)


@register("stop_gradient", "copy", "optimization_barrier", "device_put", "sharding_constraint")
def identity(ctx: LoweringContext, *xs: Value, **_params):
    """No-ops at inference time (gradients, placement, layout hints): the value itself, no node."""
    return list(xs)


# -- catalog cases (tests/test_catalog.py compiles and checks each) ---------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import boolean, case, f32, i32, positive  # noqa: E402

case("add", lambda p, x, y: x + y, f32(3, 5), f32(3, 5))
case("neg_abs_int32", lambda p, x: -(x - 4) + jnp.abs(x - 4) * 3, i32(3, 5))
case("add_scalar_literal", lambda p, x: 2.5 + x, f32(4, 1))
case("sub", lambda p, x, y: x - y, f32(2, 3, 4), f32(2, 3, 4))
case("mul_broadcast_row", lambda p, x, y: x * y[None, :], f32(6, 5), f32(5), batch=False)
case("div", lambda p, x, y: x / y, f32(4, 7), positive(4, 7))
case("max_min", lambda p, x, y: jnp.maximum(x, y) - jnp.minimum(x, 0.25), f32(3, 4), f32(3, 4))
case("relu_as_max", lambda p, x: jnp.maximum(x, 0.0), f32(1, 9))
case("pow", lambda p, x, y: x ** y, positive(5, 3), f32(5, 3))
case("integer_pow", lambda p, x: x ** 2 + x ** 3 - x ** -2 + x ** 5, positive(2, 6))
case("integer_pow_zero", lambda p, x: lax.integer_pow(x, 0) + x, f32(2, 3))
case("square", lambda p, x: lax.square(x), f32(3, 3))
case("neg_abs", lambda p, x: -jnp.abs(x), f32(8))
case("exp_log", lambda p, x, y: jnp.exp(x) + jnp.log(y), f32(4, 4), positive(4, 4))
case("tanh_logistic", lambda p, x: jnp.tanh(x) * jax.nn.sigmoid(x), f32(2, 10))
case("sqrt_rsqrt", lambda p, x: jnp.sqrt(x) + lax.rsqrt(x), positive(3, 5))
case("comparisons", lambda p, x, y: jnp.where(x < y, x, 0.0) + jnp.where(x >= y, y, 1.0)
     + jnp.where(x > 0.5, 1.0, 0.0) + jnp.where(x <= -0.5, 2.0, 0.0), f32(4, 6), f32(4, 6))
case("eq_ne", lambda p, x, y: jnp.where(x == y, 1.0, 0.0) + jnp.where(x != 0, x, -1.0), f32(3, 3), f32(3, 3))
case("comparison_output_bool", lambda p, x: x > 0.0, f32(2, 5))
case("select_nan_constant", lambda p, x: jnp.where(x > 1.0, jnp.nan, x), f32(3, 4))
case("select_n_mask", lambda p, x, m: jnp.where(m, x, -x), f32(3, 4), boolean(3, 4))
case("not_mask", lambda p, x, m: jnp.where(~m, x, 0.0), f32(5), boolean(5))
case("convert_int_to_float", lambda p, x, t: x * t.astype(jnp.float32), f32(2, 4), i32(2, 4))
case("convert_bool_to_float", lambda p, x: (x > 0).astype(jnp.float32), f32(3, 3))
case("stop_gradient", lambda p, x: lax.stop_gradient(x) * 2.0, f32(2, 2))
case("int_arithmetic", lambda p, t, u: (t + u) * u - t, i32(3, 4), i32(3, 4))
case("add_any_from_jvp", lambda p, x: jax.jvp(lambda y: y * jnp.sin(y), (x,), (x,))[1], f32(3, 4))
case("add_any_from_grad", lambda p, x: jax.grad(lambda y: jnp.sum(y * jnp.sin(y)))(x), f32(2, 5))
case("add_any_from_linearize", lambda p, x, t: jax.linearize(lambda y: y * jnp.exp(y), x)[1](t), f32(4, 3),
     f32(4, 3))


def _placement_annotations(p, x):
    device = jax.devices()[0]
    sharding = jax.sharding.SingleDeviceSharding(device)
    return (jax.device_put(x, device) * 2.0, lax.with_sharding_constraint(x, sharding),
            lax.optimization_barrier(x), jnp.copy(x))


case("placement_annotations_outputs_alias_input", _placement_annotations, f32(3))
# outputs that are inputs or constants, of each dtype: each is copied by an Identity node
case("output_is_int_input", lambda p, x, t: (t, x * 2.0), f32(2, 3), i32(2, 3))
case("output_is_int_input_twice", lambda p, t: (t, t), i32(4, 2))
case("output_is_bool_input", lambda p, m: m, boolean(3, 4))
case("output_is_int_constant", lambda p, x: (jnp.arange(5), x + 1.0), f32(2, 3))
case("output_is_bool_constant", lambda p, x: jnp.array([True, False, True]), f32(2))
case("output_is_float_constant", lambda p, x: jnp.linspace(0.0, 1.0, 4), f32(2))
case("output_is_int_param", lambda p, x: (p["table"], x), f32(3), params={"table": i32(2, 3)})
