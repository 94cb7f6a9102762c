"""uint32 values, held exactly as int64: jnp.searchsorted's default method bisects with uint32 bounds.

The generated code has no unsigned tensors. A uint32 value of the jaxpr is an int64 tensor holding
the same number, always in [0, 2^32). Every operation keeps it there and exact:

- selecting and moving values (reshape, broadcast, slicing, gather, select_n, concatenate, ...),
  comparing them, max/min, and/or/xor: the same numbers give the same results, so the rules of the
  other dtypes are used as they are;
- arithmetic that can leave [0, 2^32) in uint32 (add, sub, mul, neg, not) wraps like uint32: the
  int64 result (a product in uint64, where signed overflow would be undefined) is masked with
  0xFFFFFFFF, which is the uint32 result modulo 2^32 exactly; div and rem of non-negative numbers
  truncate alike, with XLA's results for a zero divisor (all ones, and x);
- conversions to and from uint32 are written out (saturating from float32, as XLA does).

Any other primitive on uint32 values is refused with its name, as are uint32 model inputs and outputs
(the caller passes and receives int32/int64 instead). The walker (walker.py) sends every equation
that reads or writes a uint32 value here.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from jax.extend import core as jcore

from ..ir import Value
from .context import LoweringContext
from .elementwise_math import elementwise
from .registry import RULES

UNSIGNED = np.dtype(np.uint32)
STORED = np.dtype(np.int64)  # how a uint32 value is held in the generated code
_MASK = "std::int64_t(4294967295)"

# primitives whose results are values of their inputs or comparisons of them: the rules of the other
# dtypes compute them on the int64 numbers exactly as uint32 would
_SAME_ON_STORED = {
    "broadcast_in_dim", "reshape", "squeeze", "expand_dims", "transpose", "concatenate", "slice", "dynamic_slice",
    "dynamic_update_slice", "select_n", "rev", "pad", "copy", "copy_p", "stop_gradient", "optimization_barrier",
    "max", "min", "eq", "ne", "lt", "le", "gt", "ge", "lt_to", "le_to", "eq_to", "and", "or", "xor", "clamp",
    "sort", "argmax", "argmin", "reduce_max", "reduce_min",
    # the calls and loops lower their bodies through the walker, which brings each equation back here
    "jit", "custom_jvp_call", "custom_vjp_call", "remat2", "scan", "while", "cond",
}


def stored_dtype(dtype) -> np.dtype:
    """The dtype a value of JAX dtype `dtype` has in the graph."""
    dtype = np.dtype(dtype)
    return STORED if dtype == UNSIGNED else dtype


def involves_unsigned(eqn: jcore.JaxprEqn) -> bool:
    return any(_is_unsigned(v.aval) for v in (*eqn.invars, *eqn.outvars))


def _is_unsigned(aval) -> bool:
    dtype = getattr(aval, "dtype", None)
    try:
        return dtype is not None and np.dtype(dtype).kind == "u"
    except TypeError:  # extended dtypes (PRNG keys) are no numpy dtype
        return False


def as_jax_value(const, aval) -> np.ndarray:
    """A constant's data in its JAX dtype, for folding with JAX (a uint32 constant is held as int64)."""
    if not _is_unsigned(aval):
        return const  # (as it is: a PRNG key is no numpy array)
    array = np.asarray(const)
    return array if array.dtype == UNSIGNED else array.astype(UNSIGNED)


def unsigned_rule(ctx: LoweringContext, eqn: jcore.JaxprEqn, inputs: Sequence[Value]):
    """(rule, inputs) for an equation that reads or writes uint32 values, the inputs as they are stored."""
    name = eqn.primitive.name
    for var in (*eqn.invars, *eqn.outvars):
        dtype = getattr(var.aval, "dtype", None)
        if _is_unsigned(var.aval) and np.dtype(dtype) != UNSIGNED:
            raise ctx.error(f"'{name}' on {np.dtype(dtype).name} values is not supported (of the unsigned "
                            "integers only uint32 is, held as int64 in the generated code)")
    stored = [_stored(ctx, value, var) for value, var in zip(inputs, eqn.invars)]
    in_dtypes = [np.dtype(var.aval.dtype) for var in eqn.invars]
    if name in _OWN_RULES:
        own = _OWN_RULES[name]
        return (lambda c, *xs, **params: own(c, in_dtypes, *xs, **params)), stored
    if name in _SAME_ON_STORED and name in RULES:
        return RULES[name], stored
    raise ctx.error(f"'{name}' on uint32 values is not supported: the generated code holds uint32 as int64 and "
                    "computes only moves, comparisons, add/sub/mul/div/rem/neg/not, max/min, and/or/xor and "
                    "conversions on it exactly (cast to int32 before this operation)")


def _stored(ctx: LoweringContext, value: Value, var) -> Value:
    if not _is_unsigned(var.aval) or np.dtype(value.dtype) == STORED:
        return value
    if value.is_const:  # a literal, param or folded constant in its JAX dtype
        return ctx.constant_from(np.asarray(value.const).astype(STORED), [value], "unsigned")
    raise ctx.error(f"a uint32 model input is not supported ({value.name}): pass it as int32 or int64")


def _wrapping(expression: Callable[[Sequence[str]], str]):
    """A rule computing `expression` on the int64 numbers, masked to 32 bits (uint32 wrapping)."""
    def rule(ctx: LoweringContext, in_dtypes, *xs: Value, **_params) -> Value:
        return elementwise(ctx, lambda b, args, dtype, params: f"(({expression(args)}) & {_MASK})", xs, STORED)
    return rule


def _nonzero_constant(y: Value) -> bool:
    return y.is_const and bool(np.all(np.asarray(y.const) != 0))


def _div(ctx: LoweringContext, in_dtypes, x: Value, y: Value, **_params) -> Value:
    # XLA: x / 0 is all ones for unsigned integers (jnp's // by a constant: no test needed)
    def template(b, args, dtype, params):
        if _nonzero_constant(y):
            return f"({args[0]} / {args[1]})"
        d = b.share(args[1])
        return f"({d} == 0 ? {_MASK} : {args[0]} / {d})"
    return elementwise(ctx, template, [x, y], STORED)


def _rem(ctx: LoweringContext, in_dtypes, x: Value, y: Value, **_params) -> Value:
    def template(b, args, dtype, params):  # XLA: x % 0 is x
        if _nonzero_constant(y):
            return f"({args[0]} % {args[1]})"
        n, d = b.share(args[0]), b.share(args[1])
        return f"({d} == 0 ? {n} : {n} % {d})"
    return elementwise(ctx, template, [x, y], STORED)


def _convert(ctx: LoweringContext, in_dtypes, x: Value, *, new_dtype, **_params) -> Value:
    source, target = in_dtypes[0], np.dtype(new_dtype)
    if source == UNSIGNED:
        if target == UNSIGNED or target == STORED:
            return x
        if target == np.int32:  # numbers from 2^31 on wrap to negative int32, as in XLA
            return elementwise(ctx, lambda b, args, dtype, params: (
                lambda v: f"static_cast<std::int32_t>({v} >= std::int64_t(2147483648) ? {v} - "
                          f"std::int64_t(4294967296) : {v})")(b.share(args[0])), [x], np.int32)
        if target in (np.float32, np.bool_):
            return ctx.cast(x, target)
    elif target == UNSIGNED:
        if source in (np.int32, np.int64):  # the low 32 bits (two's complement), as in XLA
            return elementwise(ctx, lambda b, args, dtype, params: f"(static_cast<std::int64_t>({args[0]}) & {_MASK})",
                               [x], STORED)
        if source == np.bool_:
            return ctx.cast(x, STORED)
        if source == np.float32:  # XLA saturates: NaN and negative numbers give 0, 2^32 and more all ones
            return elementwise(ctx, lambda b, args, dtype, params: (
                lambda v: f"(!({v} > 0.0f) ? std::int64_t(0) : ({v} >= 4294967296.0f ? {_MASK} : "
                          f"static_cast<std::int64_t>({v})))")(b.share(args[0])), [x], STORED)
    raise ctx.error(f"convert_element_type from {source.name} to {target.name} is not supported")


def _gather(ctx: LoweringContext, in_dtypes, operand: Value, indices: Value, *, fill_value=None, **params) -> Value:
    # the fill of an out-of-bounds window is uint32's largest number (JAX), not int64's smallest
    if in_dtypes[0] == UNSIGNED and fill_value is None:
        fill_value = np.iinfo(np.uint32).max
    return RULES["gather"](ctx, operand, indices, fill_value=fill_value, **params)


_OWN_RULES = {
    "add": _wrapping(lambda a: f"{a[0]} + {a[1]}"),
    "add_any": _wrapping(lambda a: f"{a[0]} + {a[1]}"),
    "sub": _wrapping(lambda a: f"{a[0]} - {a[1]}"),
    # in uint64: the product of two numbers below 2^32 overflows int64; its low 32 bits are uint32's product
    "mul": _wrapping(lambda a: f"static_cast<std::int64_t>((static_cast<std::uint64_t>({a[0]}) * "
                               f"static_cast<std::uint64_t>({a[1]})) & 4294967295ull)"),
    "neg": _wrapping(lambda a: f"-{a[0]}"),
    "not": _wrapping(lambda a: f"~{a[0]}"),
    "div": _div,
    "rem": _rem,
    "convert_element_type": _convert,
    "gather": _gather,
}


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32, i32  # noqa: E402


def _edges_and_specials(p, v):
    """Bin edges (a param) and values with ties on the edges, NaN, infinities and -0.0 (total order)."""
    edges = jnp.sort(p["edges"]).at[3].set(0.0)  # a 0.0 edge: -0.0 sorts before it, as in jnp.searchsorted
    special = jnp.stack([jnp.nan, -jnp.inf, jnp.inf, -0.0, 0.0]).astype(jnp.float32)
    v = jnp.concatenate([v[:, :4], edges[None, :4] + v[:, :1] * 0.0, special[None, :] + v[:, :1] * 0.0], axis=1)
    return edges, v


def _searchsorted_default(p, v):
    edges, v = _edges_and_specials(p, v)
    return jnp.searchsorted(edges, v), jnp.searchsorted(edges, v, side="right")


def _digitize_default(p, v):
    edges, v = _edges_and_specials(p, v)
    return (jnp.digitize(v, edges), jnp.digitize(v, edges, right=True),
            jnp.digitize(v, edges[::-1]), jnp.digitize(v, edges[::-1], right=True))  # decreasing bins too


# jnp.searchsorted's default method ('scan'): a bisection with uint32 bounds, unrolled (log2 steps)
case("searchsorted_default_method", _searchsorted_default, f32(3, 6), params={"edges": f32(9)})
case("digitize_default_method", _digitize_default, f32(4, 6), params={"edges": f32(9)})
# a sorted row per example (a spline flow's knots): the bisection gathers from a batch-sized array
case("searchsorted_batched_knots", lambda p, knots, v: (
    jax.vmap(jnp.searchsorted)(jnp.sort(knots, axis=1), v),
    jax.vmap(lambda k, x: jnp.searchsorted(k, x, side="right"))(jnp.sort(knots, axis=1), v)), f32(3, 33), f32(3, 5))
case("searchsorted_int32_default", lambda p, t: (jnp.searchsorted(jnp.sort(p["a"]), t, side="right"),
                                                 jnp.digitize(t, jnp.sort(p["a"]))), i32(4, 3), params={"a": i32(7)})


def _uint32_arithmetic(p, t, x):
    u = (t - 3).astype(jnp.uint32) * jnp.uint32(715827883)  # negative int32: the low 32 bits; the product wraps
    big = (x * 3e9).astype(jnp.uint32)  # float32 -> uint32 saturates (negative and NaN: 0)
    zero = (t * 0).astype(jnp.uint32)
    return ((u * u).astype(jnp.int32), (u + big).astype(jnp.int32), (u - big).astype(jnp.int32),
            lax.div(u, big), lax.rem(u, big), lax.div(u, zero), lax.rem(u, zero),
            (-u).astype(jnp.int32), (~u).astype(jnp.float32), jnp.maximum(u, big).astype(jnp.float32),
            u // jnp.uint32(7), u % jnp.uint32(7), u > big, big.astype(jnp.float32))


def _as_int(fn):
    """Results that stay uint32 are returned as int32 bit patterns (the generated code has no uint32 outputs)."""
    def wrapped(*args):
        return [r.astype(jnp.int32) if r.dtype == jnp.uint32 else r for r in fn(*args)]
    return wrapped


case("uint32_wraps_exactly", _as_int(_uint32_arithmetic), i32(3, 4), f32(3, 4), rtol=0.0, atol=0.0,
     notes="exact: every uint32 result modulo 2^32, converted to float32 by the same rounding")
case("uint32_gather_fill", lambda p, t, i: lax.gather(
    (t - 3).astype(jnp.uint32) * jnp.uint32(715827883), i[:, :, None] - 2, lax.GatherDimensionNumbers(
        offset_dims=(), collapsed_slice_dims=(1,), start_index_map=(1,), operand_batching_dims=(0,),
        start_indices_batching_dims=(0,)), (1, 1), mode="fill").astype(jnp.float32), i32(3, 5), i32(3, 4),
     rtol=0.0, atol=0.0, notes="an out-of-bounds index gives uint32's largest number, as in JAX")


def _while_uint32_carry(p, x):
    bound = (jnp.abs(x[0, 0]) * 0 + 5).astype(jnp.uint32)  # traced: a loop of the generated code

    def body(state):
        i, y, h = state
        return i + jnp.uint32(1), y * 0.5 + 1.0, h * jnp.uint32(2654435761) + i  # h wraps

    i, y, h = lax.while_loop(lambda s: s[0] < bound, body, (jnp.uint32(0), x, jnp.uint32(7)))
    return y, i.astype(jnp.int32), h.astype(jnp.int32)


case("while_uint32_carry", _while_uint32_carry, f32(3, 4), batch=False)
