"""Elementwise steps: float maths, int32 arithmetic, comparisons and logic on bool, selects, and
constants the function computes from arrays it closes over."""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from .program import Val, Weight, kind

FLOAT, INT, BOOL = "float32", "int32", "bool"


def same(val: Val, args) -> Val:
    return val


def draw_pshape(draw, val: Val) -> tuple[int, ...]:
    """A weight shape that broadcasts against `val`: a random subset of its trailing axes kept, the
    others (and always the batch axis) 1."""
    kept = tuple(1 if a == val.batch or not draw.boolean() else d for a, d in enumerate(val.shape))
    return kept[draw.integer(0, val.rank):]


# -- float ---------------------------------------------------------------------------------------------

UNARY = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "abs": jnp.abs, "neg": jnp.negative, "relu": jax.nn.relu,
         "exp_clipped": lambda x: jnp.exp(jnp.minimum(x, 3.0)), "square": jnp.square, "gelu": jax.nn.gelu,
         "cube": lambda x: x ** 3, "log1p_abs": lambda x: jnp.log(1.0 + jnp.abs(x)),
         "sqrt_abs": lambda x: jnp.sqrt(jnp.abs(x) + 0.5), "rsqrt_sq": lambda x: lax.rsqrt(x * x + 1.0),
         "leaky_relu": lambda x: jnp.where(x > 0, x, 0.1 * x), "clip": lambda x: jnp.clip(x, -0.5, 0.5),
         "sin": jnp.sin, "cos": jnp.cos, "erf": jax.scipy.special.erf, "softplus": jax.nn.softplus,
         "silu": jax.nn.silu, "elu": jax.nn.elu, "log_sigmoid": jax.nn.log_sigmoid, "floor": jnp.floor,
         "sign": jnp.sign, "atan": jnp.arctan, "relu6": jax.nn.relu6, "hard_tanh": jax.nn.hard_tanh,
         "expm1_clipped": lambda x: jnp.expm1(jnp.minimum(x, 3.0)), "recip": lambda x: 1.0 / (1.0 + x * x)}
# binary ops with a weight; the weight is transformed first (folded at conversion) so every op is safe
BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "max": jnp.maximum, "min": jnp.minimum,
          "div": lambda x, p: x / (1.5 + p * p), "pow": lambda x, p: jnp.abs(x) ** (1.0 + 0.2 * jnp.tanh(p)),
          "where_gt": lambda x, p: jnp.where(x > p, x, p), "atan2": jnp.arctan2,
          "rem": lambda x, p: jnp.fmod(x, 1.0 + jnp.abs(p))}


@kind("unary", "elementwise")(lambda draw, val: (draw.choice(sorted(UNARY)),), same)
def _unary(x, w, args):
    return UNARY[args[0]](x)


@kind("binary", "elementwise", weights=lambda val, args: [Weight(args[1])])(
    lambda draw, val: (draw.choice(sorted(BINARY)), draw_pshape(draw, val)), same)
def _binary(x, w, args):
    return BINARY[args[0]](x, w[0])


# -- int32 ---------------------------------------------------------------------------------------------

INT_BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": lambda x, p: jnp.clip(x * p, -1000, 1000),
              "max": jnp.maximum, "min": jnp.minimum, "floordiv": jnp.floor_divide, "mod": jnp.remainder,
              "and": jnp.bitwise_and, "or": jnp.bitwise_or, "xor": jnp.bitwise_xor,
              "shift_right": lambda x, p: jnp.right_shift(x, jnp.abs(p))}
INT_UNARY = {"neg": jnp.negative, "abs": jnp.abs, "sign": jnp.sign, "invert": jnp.invert,
             "square": lambda x: jnp.clip(x * x, -1000, 1000), "clip": lambda x: jnp.clip(x, -3, 3),
             "shift_left": lambda x: jnp.clip(x, -100, 100) << 2}


def _int_weights(val, args):
    divides = args[0] in ("floordiv", "mod")
    return [Weight(args[1], INT, -5, 5, nonzero=divides)]


@kind("int_binary", "integer", (INT,), weights=_int_weights, frequency=2)(
    lambda draw, val: (draw.choice(sorted(INT_BINARY)), draw_pshape(draw, val)), same)
def _int_binary(x, w, args):
    return INT_BINARY[args[0]](x, w[0])


@kind("int_unary", "integer", (INT,), frequency=2)(lambda draw, val: (draw.choice(sorted(INT_UNARY)),), same)
def _int_unary(x, w, args):
    return INT_UNARY[args[0]](x)


@kind("to_int", "integer", (FLOAT, BOOL))(lambda draw, val: (draw.choice([1, 2, 4]),),
                                          lambda val, args: val.with_shape(val.shape, dtype=INT))
def _to_int(x, w, args):
    if x.dtype == jnp.bool_:
        return x.astype(jnp.int32) * args[0]
    return jnp.floor(x * args[0]).astype(jnp.int32)


@kind("to_float", "integer", (INT, BOOL))(lambda draw, val: (draw.choice([0.5, 1.0]),),
                                          lambda val, args: val.with_shape(val.shape, dtype=FLOAT))
def _to_float(x, w, args):
    return x.astype(jnp.float32) * args[0]


# -- bool ----------------------------------------------------------------------------------------------

COMPARE = {"gt": jnp.greater, "ge": jnp.greater_equal, "lt": jnp.less, "le": jnp.less_equal, "eq": jnp.equal,
           "ne": jnp.not_equal}
LOGIC = {"and": jnp.logical_and, "or": jnp.logical_or, "xor": jnp.logical_xor,
         "and_not": lambda x, p: x & ~p}


@kind("compare", "bool", (FLOAT, INT), weights=lambda val, args: [Weight(args[1], val.dtype, -3, 3)])(
    lambda draw, val: (draw.choice(sorted(COMPARE)), draw_pshape(draw, val)),
    lambda val, args: val.with_shape(val.shape, dtype=BOOL))
def _compare(x, w, args):
    return COMPARE[args[0]](x, w[0])


@kind("logic", "bool", (BOOL,), weights=lambda val, args: [Weight(args[1], BOOL)])(
    lambda draw, val: (draw.choice(sorted(LOGIC)), draw_pshape(draw, val)), same)
def _logic(x, w, args):
    return LOGIC[args[0]](x, w[0])


@kind("not", "bool", (BOOL,))(lambda draw, val: (), same)
def _not(x, w, args):
    return ~x


# -- selects -------------------------------------------------------------------------------------------

@kind("where", "select", (FLOAT, INT), weights=lambda val, args: [Weight(args[0], val.dtype, -3, 3)] * 2)(
    lambda draw, val: (draw_pshape(draw, val),), same)
def _where(x, w, args):
    return jnp.where(x > w[0], x, w[1])


@kind("where_bool", "select", (BOOL,), weights=lambda val, args: [Weight(args[0]), Weight(args[1])])(
    lambda draw, val: (draw_pshape(draw, val), draw_pshape(draw, val)),
    lambda val, args: val.with_shape(val.shape, dtype=FLOAT))
def _where_bool(x, w, args):
    return jnp.broadcast_to(jnp.where(x, w[0], w[1]), x.shape)


@kind("select_n", "select", (FLOAT, INT))(lambda draw, val: (draw.integer(2, 4),), same)
def _select_n(x, w, args):
    index = jnp.floor(x).astype(jnp.int32) if x.dtype == jnp.float32 else x
    cases = [x * (k + 1) - k if x.dtype == jnp.float32 else jnp.clip(x, -50, 50) * (k + 1) - k
             for k in range(args[0])]
    return lax.select_n(jnp.clip(index, 0, args[0] - 1), *cases)


def _select_const_weights(val, args):
    return [Weight(args[1], BOOL) for _ in range(args[0])]


@kind("select_const", "select", (FLOAT, INT), weights=_select_const_weights)(
    lambda draw, val: (draw.integer(1, 3), draw_pshape(draw, val)), same)
def _select_const(x, w, args):
    """jnp.select over constant conditions: a Concat of constants that SOFIE would fold wrongly."""
    return jnp.select(list(w), [x + k + 1 for k in range(args[0])], x)


# -- constants -----------------------------------------------------------------------------------------

@kind("const_expr", "constants", (FLOAT, INT), weights=lambda val, args: [Weight(args[0], val.dtype, -3, 3)] * 2)(
    lambda draw, val: (draw_pshape(draw, val),), same)
def _const_expr(x, w, args):
    """A constant computed from two weights (folded at conversion), then added."""
    return x + (w[0] * w[1] - jnp.abs(w[0]))


@kind("iota", "constants", (FLOAT, INT))(
    lambda draw, val: (val.rank - 1,) if val.batch != val.rank - 1 else None, same)
def _iota(x, w, args):
    ramp = jnp.arange(x.shape[args[0]], dtype=x.dtype)
    return x + ramp.reshape((-1,) + (1,) * (x.ndim - 1 - args[0]))
