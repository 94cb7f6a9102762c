"""Control flow: fori_loop, while_loop, scan and cond around small elementwise bodies."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .program import kind
from .steps_elementwise import INT_UNARY, UNARY

FLOAT, INT = "float32", "int32"


def _body(name: str):
    """An elementwise function of the value's dtype, by name (UNARY for float32, INT_UNARY for int32)."""
    return lambda v: UNARY[name](v) if v.dtype == jnp.float32 else INT_UNARY[name](v)


def _draw_body(draw, val) -> str:
    return draw.choice(sorted(UNARY if val.dtype == FLOAT else INT_UNARY))


def _mix(v, i):
    """Something of the loop counter, so that every iteration differs."""
    return v * 0.5 + jnp.asarray(i, jnp.float32) * 0.25 if v.dtype == jnp.float32 else jnp.clip(v + i, -100, 100)


@kind("fori_loop", "control_flow", (FLOAT, INT))(
    lambda draw, val: (draw.integer(1, 3), _draw_body(draw, val)), lambda val, args: val)
def _fori_loop(x, w, args):
    n, name = args
    return lax.fori_loop(0, n, lambda i, v: _mix(_body(name)(v), i), x)


@kind("while_loop", "control_flow", (FLOAT, INT))(
    lambda draw, val: (draw.integer(1, 3), _draw_body(draw, val)), lambda val, args: val)
def _while_loop(x, w, args):
    """A while loop over a counter with static bounds (unrolled at conversion)."""
    n, name = args
    _, y = lax.while_loop(lambda s: s[0] < n, lambda s: (s[0] + 1, _mix(_body(name)(s[1]), s[0])), (0, x))
    return y


def _draw_scan(draw, val):
    return (draw.choice(val.free_axes()), draw.boolean(), _draw_body(draw, val)) if val.free_axes() else None


@kind("scan", "control_flow", (FLOAT, INT))(_draw_scan, lambda val, args: val)
def _scan(x, w, args):
    """A scan over a non-batch axis whose carry (batch-sized, starting at zeros) accumulates the rows."""
    axis, reverse, name = args
    rows = jnp.moveaxis(x, axis, 0)

    def step(carry, row):
        carry = _body(name)(carry + row)
        return carry, carry * 2 if x.dtype == jnp.int32 else carry - row
    _, ys = lax.scan(step, jnp.zeros_like(rows[0]), rows, reverse=reverse)
    return jnp.moveaxis(ys, 0, axis)


@kind("cond", "control_flow", (FLOAT, INT))(
    lambda draw, val: (draw.choice(["data", "true", "false"]), _draw_body(draw, val), _draw_body(draw, val)),
    lambda val, args: val)
def _cond(x, w, args):
    """lax.cond on a predicate computed from the data, or on a constant one (the branch is then inlined)."""
    predicate, first, second = args
    if predicate == "data":
        # from the data only: a predicate of x.size would be a constant of the batch size
        pred = jnp.max(x) > (0.5 if x.dtype == jnp.float32 else 3)
    else:
        pred = jnp.array(predicate == "true")
    return lax.cond(pred, _body(first), _body(second), x)
