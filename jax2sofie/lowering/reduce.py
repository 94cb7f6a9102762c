"""Rules for reductions over axes: sums, products, extrema, logic, arg-extrema and the generic `reduce`.

Float sums over one run of axes go to J2S_Reduce (vector kernels over rows or columns), over scattered axes to
SOFIE's ReduceSum; everything SOFIE's Reduce cannot do (integer and bool element types,
products, and/or/xor, and max/min with NaN propagation) goes to the project-owned J2S_Reduce, and argmax/argmin
to J2S_ArgMax/J2S_ArgMin (SOFIE has none). SOFIE cannot reduce to a rank-0 tensor (docs/sofie_workarounds.md),
so a reduction to a scalar keeps its dims as size 1 and is relabelled by a Reshape.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext, dtype_attr
from .registry import register

# primitive -> (J2S_Reduce mode, SOFIE's Reduce op for float32 or None). Not SOFIE's ReduceMax/Min:
# they drop NaN (max of [nan, 1] is 1; lax.reduce_max gives nan).
_REDUCTIONS = {
    "reduce_sum": ("sum", "ReduceSum"),
    "reduce_max": ("max", None),
    "reduce_min": ("min", None),
    "reduce_prod": ("prod", None),
    "reduce_and": ("and", None),
    "reduce_or": ("or", None),
    "reduce_xor": ("xor", None),
}
_LOGIC = {"and", "or", "xor"}


def reduce_axes(ctx: LoweringContext, x: Value, axes, mode: str) -> Value:
    """`x` reduced over `axes` with `mode` (a J2S_Reduce mode), through SOFIE's Reduce where it can."""
    axes = sorted({int(a) % x.rank for a in axes})
    if not axes:
        return x
    if mode in _LOGIC and x.dtype != np.bool_:
        raise ctx.error(f"reduce_{mode} of {x.dtype} (a bitwise reduction of integers) is not supported; "
                        "only bool reductions (jnp.all/jnp.any) are")
    out_shape = tuple(n for i, n in enumerate(x.shape) if i not in axes)
    sofie_op = dict(_REDUCTIONS.values()).get(mode) if x.dtype == np.float32 else None
    if sofie_op is not None and axes == list(range(axes[0], axes[-1] + 1)):
        # over one run of axes (a layer norm's mean, a softmax's sum, a mean over points or pixels)
        # J2S_Reduce reads rows or columns in vectors; SOFIE's ReduceSum adds one element at a time
        # into memory
        sofie_op = None
    keepdims = int(not out_shape)  # rank 0 is written as keepdims + Reshape
    shape = (1,) * x.rank if keepdims else out_shape
    if sofie_op is not None:
        reduced = ctx.op(sofie_op, [x], shape, x.dtype, axes=axes, keepdims=keepdims)
    else:
        reduced = ctx.op("J2S_Reduce", [x], shape, x.dtype, hint=f"reduce_{mode}", mode=mode, axes=axes,
                         keepdims=keepdims, dtype=dtype_attr(x.dtype))
    return ctx.reshape(reduced, out_shape)


def _reduce_rule(primitive: str, mode: str, sofie_op: str | None):
    def rule(ctx: LoweringContext, x: Value, *, axes, **_params) -> Value:
        return reduce_axes(ctx, x, axes, mode)

    rule.__qualname__ = f"reduce_rule[{primitive}]"
    if sofie_op:
        rule.__doc__ = f"SOFIE {sofie_op} for float32 over scattered axes (over one run of axes the project-owned " \
                       f"J2S_Reduce, in vectors), else J2S_Reduce ({mode}); a scalar result via keepdims + Reshape"
    else:
        rule.__doc__ = f"Project-owned J2S_Reduce ({mode}" + (", bool only" if mode in _LOGIC else "") + \
                       "); a scalar result via keepdims + Reshape"
    return rule


for _primitive, (_mode, _op) in _REDUCTIONS.items():
    register(_primitive)(_reduce_rule(_primitive, _mode, _op))


def _arg_rule(op: str):
    def rule(ctx: LoweringContext, x: Value, *, axes, index_dtype, **_params) -> Value:
        (axis,) = axes
        axis = int(axis) % x.rank
        index_dtype = np.dtype(index_dtype)
        if x.dtype == np.bool_:
            x = ctx.cast(x, np.int32)
        out_shape = tuple(n for i, n in enumerate(x.shape) if i != axis)
        keepdims = int(not out_shape)
        shape = (1,) if keepdims else out_shape
        index = ctx.op(op, [x], shape, index_dtype, hint=op[4:].lower(), axis=axis, keepdims=keepdims,
                       index_dtype=dtype_attr(index_dtype), dtype=dtype_attr(x.dtype))
        return ctx.reshape(index, out_shape)

    rule.__qualname__ = f"arg_rule[{op}]"
    rule.__doc__ = f"Project-owned {op} (first index of ties, NaN counts as the extreme, like JAX)"
    return rule


register("argmax")(_arg_rule("J2S_ArgMax"))
register("argmin")(_arg_rule("J2S_ArgMin"))

# the body primitive of a generic `reduce` -> the J2S_Reduce mode; for bool operands the logic ones
_BODY_MODES = {"add": "sum", "mul": "prod", "max": "max", "min": "min", "and": "and", "or": "or", "xor": "xor"}
_BOOL_BODY_MODES = {"max": "or", "min": "and", "add": "or", "mul": "and"}


@register("reduce")
def reduce(ctx: LoweringContext, *operands_and_inits: Value, computation=None, jaxpr, dimensions,
           **_params) -> list[Value]:
    """Each operand reduced by the one binary op (add/mul/max/min/and/or/xor) its body applies to it,
    as the named reductions; a non-neutral init value is combined afterwards."""
    n = len(operands_and_inits) // 2
    operands, inits = operands_and_inits[:n], operands_and_inits[n:]
    body = jaxpr.jaxpr
    if body.constvars or len(body.outvars) != n:
        raise ctx.error("reduce with a body that has constants or an unusual arity is not supported")
    producers = {id(out): eqn for eqn in body.eqns for out in eqn.outvars}
    results = []
    for i, (x, init) in enumerate(zip(operands, inits)):
        eqn = producers.get(id(body.outvars[i]))
        pair = {id(body.invars[i]), id(body.invars[n + i])}
        if (eqn is None or eqn.primitive.name not in _BODY_MODES or len(eqn.invars) != 2
                or {id(v) for v in eqn.invars} != pair or len(body.eqns) != n):
            raise ctx.error("reduce is supported when its body is one add/mul/max/min/and/or/xor per operand, "
                            f"got: {body}")
        name = eqn.primitive.name
        mode = _BOOL_BODY_MODES.get(name, _BODY_MODES[name]) if x.dtype == np.bool_ else _BODY_MODES[name]
        reduced = reduce_axes(ctx, x, dimensions, mode)
        results.append(_combine_init(ctx, reduced, init, mode))
    return results


_NEUTRAL = {"sum": 0, "prod": 1, "and": True, "or": False, "xor": False}


def _combine_init(ctx: LoweringContext, reduced: Value, init: Value, mode: str) -> Value:
    """op(reduced, init), skipped when init is the op's neutral element (the usual case)."""
    if init.is_const:
        value = np.asarray(init.const)
        if mode in _NEUTRAL and np.all(value == _NEUTRAL[mode]):
            return reduced
        if mode in ("max", "min") and np.all(value == (-np.inf if mode == "max" else np.inf)):
            return reduced
        if mode in ("max", "min") and np.issubdtype(value.dtype, np.integer):
            info = np.iinfo(value.dtype)
            if np.all(value == (info.min if mode == "max" else info.max)):
                return reduced
    if mode in _LOGIC:
        raise ctx.error(f"reduce_{mode} with a non-neutral init value is not supported")
    op = {"sum": "Add", "prod": "Mul", "max": "Max", "min": "Min"}[mode]
    init = ctx.reshape(init, (1,) * reduced.rank) if reduced.rank else init
    return ctx.op(op, [reduced, init], reduced.shape, reduced.dtype, dtype=dtype_attr(reduced.dtype))


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import boolean, case, f32, i32, positive  # noqa: E402

case("reduce_sum_last", lambda p, x: jnp.sum(x, axis=-1), f32(4, 6))
case("reduce_sum_middle", lambda p, x: jnp.sum(x, axis=1), f32(2, 5, 3))
case("reduce_max_axis0", lambda p, x: jnp.max(x, axis=0), f32(5, 4))
case("reduce_min_two_axes", lambda p, x: jnp.min(x, axis=(0, 2)), f32(3, 4, 5))
case("reduce_sum_all_to_scalar", lambda p, x: jnp.sum(x), f32(3, 4))
case("reduce_max_all_rank1", lambda p, x: jnp.max(x) * x, f32(7))
case("reduce_max_min_nan", lambda p, x: (jnp.max(jnp.where(x > 1.0, jnp.nan, x), axis=1),
                                         jnp.min(jnp.where(x > 1.0, jnp.nan, x), axis=0)), f32(4, 6), batch=False)
case("mean_keepdims", lambda p, x: x - jnp.mean(x, axis=-1, keepdims=True), f32(3, 8))
case("reduce_prod", lambda p, x: (jnp.prod(x, axis=-1), jnp.prod(x, axis=(0, 2)), jnp.prod(x)),
     positive(3, 5, 1))
case("reduce_int32", lambda p, i: (jnp.max(i, axis=1), jnp.min(i, axis=-1), jnp.sum(i, axis=0), jnp.prod(i, axis=1),
                                   jnp.max(i)), i32(4, 3))
case("reduce_bool_any_all", lambda p, x: (jnp.any(x > 1.0, axis=-1), jnp.all(x > -1.5, axis=(0, 2)),
                                          jnp.any(x > 2.5), jnp.sum(x > 0, axis=1),
                                          lax.reduce_xor(x > 0, axes=(1,))), f32(3, 5, 2))
case("reduce_generic_body", lambda p, x: lax.reduce((x, x), (1.0, -jnp.inf),
                                                    lambda a, b: (a[0] + b[0], jnp.maximum(a[1], b[1])), (1,)),
     f32(4, 3))
case("argmax_argmin", lambda p, x: (jnp.argmax(x, axis=-1), jnp.argmin(x, axis=0), jnp.argmax(x[:, 0, :], axis=1),
                                    jnp.argmin(x.reshape(-1))), f32(3, 1, 7), batch=False)
case("argmax_batch", lambda p, x: jnp.argmax(x, axis=1) + jnp.argmin(x, axis=-1), f32(2, 5))
# ties (small integers repeat) and NaN: JAX gives the first index of a tie and of a NaN
case("argmax_ties_nan", lambda p, i, x: (jnp.argmax(i.astype(jnp.float32)), jnp.argmin(i.astype(jnp.float32), axis=1),
                                         jnp.argmax(jnp.where(x > 1.0, jnp.nan, x), axis=1),
                                         jnp.argmin(jnp.where(x > 1.0, jnp.nan, x), axis=0)), i32(6, 5), f32(6, 5),
     batch=False)
case("argmax_int32", lambda p, i: jnp.argmax(i, axis=-1), i32(3, 9))
case("softmax_family", lambda p, x: (jax.nn.softmax(x, axis=-1), jax.nn.log_softmax(x, axis=1),
                                     jax.nn.softmax(x, axis=0)), f32(3, 6))
# static only: jnp.var's where(N - ddof > 0, var, nan) broadcasts the nan literal to the output shape,
# which is folded into a batch-sized constant (not yet supported with a dynamic batch)
case("var_std", lambda p, x: (jnp.var(x, axis=-1), jnp.std(x, axis=(1, 2)), jnp.var(x, axis=1, ddof=1)),
     f32(3, 5, 4), batch=False)
case("logsumexp", lambda p, x: (jax.nn.logsumexp(x, axis=-1), jax.nn.logsumexp(x * 40.0, axis=(0, 2))), f32(3, 4, 5),
     batch=False)
case("logsumexp_batch", lambda p, x: jax.nn.logsumexp(x, axis=-1, keepdims=True) - x, f32(4, 6))
# J2S_Reduce's vector kernels (csrc/owned/reduce_vector.hpp): columns (a run of middle or leading axes
# with kept values after it; 36 is no multiple of any vector width, 8 x 32 is an edge convolution's
# max over neighbours) and rows of 8 to 100 values, 19 rows per example (blocks of rows and the rows
# after them)
case("reduce_columns", lambda p, x: (jnp.max(x, axis=1), jnp.min(x, axis=1), jnp.sum(x, axis=1),
                                     jnp.max(x.reshape(x.shape[0], 2, 4, 36), axis=(1, 2)), jnp.min(x, axis=0)),
     f32(3, 8, 36))
case("reduce_over_neighbours", lambda p, x: jnp.mean(jnp.max(x, axis=2), axis=1), f32(3, 5, 8, 32))
case("reduce_short_rows", lambda p, x: [jnp.max(x[..., :n], axis=-1) for n in (8, 16, 32, 64)] +
     [jnp.min(x[..., :13], axis=-1), jnp.sum(x[..., :50], axis=-1), jnp.max(x, axis=-1)], f32(3, 19, 100))


def _nan_and_signed_zeros(x):
    """NaN where x > 2.2, else -|x|, or a zero of x's sign where |x| < 0.4: maxima of +0.0 and -0.0.
    (XLA's CPU reductions rank -0.0 below +0.0 and propagate NaN at this size, not at every size.)"""
    return jnp.where(x > 2.2, jnp.nan, jnp.where(jnp.abs(x) < 0.4, x * 0.0, -jnp.abs(x)))


# 1 / (a zero) tells -0.0 (-inf) from +0.0 (inf) in the comparison
case("reduce_nan_signed_zero", lambda p, x: [1.0 / r for r in (
    jnp.max(_nan_and_signed_zeros(x), axis=-1), jnp.min(-_nan_and_signed_zeros(x), axis=-1),
    jnp.max(_nan_and_signed_zeros(x[:, :, :8]), axis=-1), jnp.max(_nan_and_signed_zeros(x), axis=1),
    jnp.min(-_nan_and_signed_zeros(x[:, :, :36]), axis=1))], f32(1, 19, 100), batch=False)
