"""The one jaxpr walker, in the style of `jax.core.eval_jaxpr`: a read/write environment over vars.

An equation whose inputs are all constants (it depends only on params and literals) is evaluated
with JAX itself and becomes a constant; every other equation goes to its rule from the registry.

Zero-size arrays (`x[:, 0:0]`, `jnp.arange(0)`, a (batch, 0) piece of a split bias) hold no data, so
an equation whose every result is zero-size needs no computation: its results are empty constants
(SOFIE has no empty tensors at run time). Equations reading them then fold with JAX when all their
inputs are constants (a sum over an empty axis is a constant 0), and concatenation drops them; any
other rule that would read one is refused with the user's line (ZERO_SIZE_READERS).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import jax
import numpy as np
from jax.extend import core as jcore

from ..errors import LoweringError
from ..ir import Value
from .context import LoweringContext
from .registry import RULES
from .source import location_of
from .unsigned import as_jax_value, involves_unsigned, stored_dtype, unsigned_rule

# Primitives whose folded result can be much larger than their inputs: lowered by their rule even on
# constants, so that a broadcast scalar does not become a big weight (a pass drops such broadcasts
# where the reader broadcasts anyway, and folds the rest).
_NOT_FOLDED = {"broadcast_in_dim"}

# The rules that take zero-size (empty constant) operands next to non-constant ones: concatenate
# leaves them out. Every other rule is kept from seeing one (they are written for tensors SOFIE holds).
ZERO_SIZE_READERS = {"concatenate"}


def lower_sub_jaxpr(ctx: LoweringContext, jaxpr, args: Sequence[Value]) -> list[Value]:
    """Lower a Jaxpr or ClosedJaxpr on `args` (its consts, arrays the function closes over, become
    constants; large ones weights)."""
    if isinstance(jaxpr, jcore.ClosedJaxpr):
        consts = [ctx.closure_constant(c) for c in jaxpr.consts]
        return lower_jaxpr(ctx, jaxpr.jaxpr, consts, args)
    return lower_jaxpr(ctx, jaxpr, [], args)


def lower_jaxpr(ctx: LoweringContext, jaxpr: jcore.Jaxpr, consts: Sequence[Value],
                args: Sequence[Value]) -> list[Value]:
    env: dict[jcore.Var, Value] = {}

    def read(var) -> Value:
        if isinstance(var, jcore.Literal):
            return ctx.literal(var.val, var.aval.dtype)
        return env[var]

    def write(var, value: Value) -> None:
        if not isinstance(var, jcore.DropVar):
            env[var] = value

    for var, value in zip(jaxpr.constvars, consts):
        write(var, value)
    for var, value in zip(jaxpr.invars, args):
        write(var, value)

    for eqn in jaxpr.eqns:
        inputs = [read(v) for v in eqn.invars]
        name = eqn.primitive.name
        with ctx.builder.source(location_of(eqn, ctx.builder.current_source)):
            if eqn.outvars and all(_is_zero_size(v.aval) for v in eqn.outvars):
                outputs = [_empty_constant(ctx, v.aval) for v in eqn.outvars]
            elif all(v.is_const for v in inputs) and not (name in _NOT_FOLDED and name in RULES):
                outputs = _fold_once(ctx, eqn, inputs)
            else:
                outputs = _apply_rule(ctx, eqn, inputs)
        for var, value in zip(eqn.outvars, outputs):
            write(var, value)
    return [read(v) for v in jaxpr.outvars]


def _is_zero_size(aval) -> bool:
    shape = getattr(aval, "shape", None)
    return shape is not None and any(isinstance(d, (int, np.integer)) and d == 0 for d in shape)


def _empty_constant(ctx: LoweringContext, aval) -> Value:
    """The zero-size result of an equation: a constant with no data (see the module's docstring)."""
    value = ctx.builder.constant(np.zeros(aval.shape, np.dtype(aval.dtype)), "empty")
    ctx.zero_size_sources[id(value)] = ctx.builder.current_source
    return value


def _check_no_zero_size_inputs(ctx: LoweringContext, name: str, inputs: list[Value]) -> None:
    if name in ZERO_SIZE_READERS:
        return
    for value in inputs:
        if value.size == 0:
            raise ctx.error(f"'{name}' reads a zero-size array of shape {tuple(value.shape)} next to computed "
                            "values: zero-size tensors are not supported there (only where they drop out: in a "
                            "concatenation, or in a computation on constants alone)")


def _fold_once(ctx: LoweringContext, eqn: jcore.JaxprEqn, inputs: list[Value]) -> list[Value]:
    """_fold_with_jax, reusing the result when the same equation meets the same constants again. The
    entry keeps the equation itself: a jaxpr traced for one rule (lowering/traced_function.py) is freed
    after it is lowered, and a later equation at the same address (an iota of another shape, with no
    inputs to tell them apart) must not be taken for it."""
    key = (id(eqn), tuple(id(v) for v in inputs))
    seen = ctx.folded_equations.get(key)
    if seen is not None and seen[0] is eqn and all(a is b for a, b in zip(seen[1], inputs)):
        return seen[2]
    outputs = _fold_with_jax(ctx, eqn, inputs)
    ctx.folded_equations[key] = (eqn, list(inputs), outputs)
    return outputs


def _apply_rule(ctx: LoweringContext, eqn: jcore.JaxprEqn, inputs: list[Value]) -> list[Value]:
    name = eqn.primitive.name
    rule = RULES.get(name)
    if rule is None:  # the pre-scan reports these all at once; this is the safety net
        raise ctx.error(f"no lowering rule for primitive '{name}'")
    if involves_unsigned(eqn):  # uint32 values are held as int64 (unsigned.py)
        rule, inputs = unsigned_rule(ctx, eqn, inputs)
    _check_no_zero_size_inputs(ctx, name, inputs)
    result = rule(ctx, *inputs, **eqn.params)
    outputs = list(result) if isinstance(result, (list, tuple)) else [result]
    if len(outputs) != len(eqn.outvars):
        raise ctx.error(f"rule for '{name}' returned {len(outputs)} values for {len(eqn.outvars)} outputs")
    for var, value in zip(eqn.outvars, outputs):
        expected = (tuple(var.aval.shape), stored_dtype(var.aval.dtype))
        if (value.shape, np.dtype(value.dtype)) != expected:
            raise ctx.error(f"rule for '{name}' produced {np.dtype(value.dtype).name}{list(value.shape)} "
                            f"where JAX has {expected[1].name}{list(expected[0])}")
    return outputs


# folding these bakes one draw of random numbers into the model: almost always dropout or noise
# left in training mode, so the user is told
_RANDOM_PRIMITIVES = {"random_bits", "threefry2x32", "philox4x32", "rng_bit_generator", "random_gamma"}


def _draws_random_numbers(eqn: jcore.JaxprEqn) -> bool:
    if eqn.primitive.name in _RANDOM_PRIMITIVES:
        return True
    return any(_draws_random_numbers(inner) for sub in jcore.jaxprs_in_params(eqn.params) for inner in sub.eqns)


def _fold_with_jax(ctx: LoweringContext, eqn: jcore.JaxprEqn, inputs: list[Value]) -> list[Value]:
    """Evaluate one equation on constant inputs with JAX; results derived from a weight stay weights."""
    if _draws_random_numbers(eqn):
        warnings.warn(f"random numbers drawn with a fixed key are baked into the model as constants "
                      f"({eqn.primitive.name} at {ctx.builder.current_source or 'unknown location'}): is a "
                      "dropout or noise layer still in training mode? (nnx: module.eval(); linen: "
                      "deterministic=True; Keras: training=False)", RuntimeWarning, stacklevel=2)
    # what jax.core.eval_jaxpr does for one equation (older JAX returned (subfuns, params) here)
    bound = eqn.primitive.get_bind_params(eqn.params)
    subfuns, bind_params = bound if isinstance(bound, tuple) else ([], bound)
    try:
        results = eqn.primitive.bind(*subfuns, *(as_jax_value(v.const, var.aval) for v, var in zip(inputs, eqn.invars)),
                                     **bind_params)
    except Exception as exc:  # noqa: BLE001 - re-raised with the primitive and line
        raise LoweringError(f"evaluating '{eqn.primitive.name}' on constants failed: {exc}\n"
                            f"  at {ctx.builder.current_source}") from exc
    if not eqn.primitive.multiple_results:
        results = [results]
    return [ctx.constant_from(result if jax.dtypes.issubdtype(result.dtype, jax.dtypes.extended) else np.asarray(result),
                              inputs) for result in results]
