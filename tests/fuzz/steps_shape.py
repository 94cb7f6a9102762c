"""Steps that move values around: reshapes, transposes, broadcasts, concatenation and splits, slices,
pads, and indexing (gather, scatter, dynamic slices). They apply to every dtype."""
from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from .program import Val, Weight, kind

ALL = ("float32", "int32", "bool")


def other(x):
    """A second value of x's shape and dtype, computed from x."""
    if x.dtype == jnp.bool_:
        return ~x
    return -x * 2 if x.dtype == jnp.int32 else jnp.tanh(x) - 0.5


def moved_batch(batch: int, perm) -> int:
    return list(perm).index(batch)


# -- reshapes ------------------------------------------------------------------------------------------

def _draw_merge(draw, val):
    return (draw.integer(0, val.rank - 2),) if val.rank >= 2 else None


def _merged(val, args):
    a = args[0]
    shape = val.shape[:a] + (val.shape[a] * val.shape[a + 1],) + val.shape[a + 2:]
    batch = val.batch if val.batch is None or val.batch <= a else (a if val.batch == a + 1 else val.batch - 1)
    return val.with_shape(shape, batch)


@kind("merge", "shape", ALL)(_draw_merge, _merged)
def _merge(x, w, args):
    a = args[0]
    return x.reshape(x.shape[:a] + (-1,) + x.shape[a + 2:])


def _draw_split(draw, val):  # reshape the last axis into two
    if val.rank >= 4 or val.batch == val.rank - 1:
        return None
    factors = [f for f in range(2, val.shape[-1]) if val.shape[-1] % f == 0]
    return (draw.choice(factors),) if factors else None


@kind("split", "shape", ALL)(_draw_split,
                             lambda val, args: val.with_shape(val.shape[:-1] + (args[0], val.shape[-1] // args[0])))
def _split(x, w, args):
    return x.reshape(x.shape[:-1] + (args[0], x.shape[-1] // args[0]))


@kind("flatten", "shape", ALL)(lambda draw, val: () if val.rank >= 3 and val.batch == 0 else None,
                               lambda val, args: val.with_shape((val.shape[0], val.size // val.shape[0])))
def _flatten(x, w, args):
    return x.reshape(x.shape[0], -1)


def _draw_transpose(draw, val):
    if val.rank < 2:
        return None
    while True:  # an identity transpose is no operation at all: draw again
        left, perm = list(range(val.rank)), []
        while left:
            perm.append(left.pop(draw.integer(0, len(left) - 1)))
        if perm != sorted(perm):
            return (tuple(perm),)


@kind("transpose", "shape", ALL)(
    _draw_transpose,
    lambda val, args: val.with_shape(tuple(val.shape[a] for a in args[0]),
                                     None if val.batch is None else moved_batch(val.batch, args[0])))
def _transpose(x, w, args):
    return jnp.transpose(x, args[0])


def _draw_broadcast(draw, val):  # a new leading axis
    return (draw.integer(1, 3),) if val.rank < 4 else None


@kind("broadcast", "shape", ALL)(
    _draw_broadcast,
    lambda val, args: val.with_shape((args[0],) + val.shape, None if val.batch is None else val.batch + 1))
def _broadcast(x, w, args):
    return jnp.broadcast_to(x, (args[0],) + x.shape)


def _draw_broadcast_axis(draw, val):  # an axis of size 1 broadcast to k
    ones = [a for a in val.free_axes() if val.shape[a] == 1]
    return (draw.choice(ones), draw.integer(2, 4)) if ones else None


@kind("broadcast_axis", "shape", ALL)(
    _draw_broadcast_axis,
    lambda val, args: val.with_shape(val.shape[:args[0]] + (args[1],) + val.shape[args[0] + 1:]))
def _broadcast_axis(x, w, args):
    return jnp.broadcast_to(x, x.shape[:args[0]] + (args[1],) + x.shape[args[0] + 1:])


def _draw_squeeze(draw, val):
    ones = [a for a in val.free_axes() if val.shape[a] == 1]
    return (draw.choice(ones),) if ones and val.rank >= 2 else None


def _squeezed(val, args):
    a = args[0]
    batch = None if val.batch == a else (val.batch if val.batch is None or val.batch < a else val.batch - 1)
    return val.with_shape(val.shape[:a] + val.shape[a + 1:], batch)


@kind("squeeze", "shape", ALL)(_draw_squeeze, _squeezed)
def _squeeze(x, w, args):
    return jnp.squeeze(x, axis=args[0])


@kind("expand", "shape", ALL)(
    lambda draw, val: (draw.integer(0, val.rank),) if val.rank < 4 else None,
    lambda val, args: val.with_shape(val.shape[:args[0]] + (1,) + val.shape[args[0]:],
                                     val.batch if val.batch is None or val.batch < args[0] else val.batch + 1))
def _expand(x, w, args):
    return jnp.expand_dims(x, args[0])


# -- concatenate, split, stack ---------------------------------------------------------------------------

def _draw_concat(draw, val):
    """Along any axis with a value computed from x (the batch too: the result has twice the batch), or
    along another with a constant."""
    with_constant = val.rank >= 1 and bool(val.free_axes()) and draw.boolean()
    axis = draw.choice(val.free_axes() if with_constant else list(range(val.rank)))
    return axis, draw.integer(1, 3) if with_constant else 0


def _concat_weights(val, args):
    axis, width = args
    if not width:
        return []
    return [Weight(tuple(1 if a == val.batch else (width if a == axis else d) for a, d in enumerate(val.shape)),
                   val.dtype, -3, 3)]


@kind("concat", "shape", ALL, weights=_concat_weights)(
    _draw_concat,
    lambda val, args: val.with_shape(tuple((d + (args[1] or d)) if a == args[0] else d
                                           for a, d in enumerate(val.shape))))
def _concat(x, w, args):
    axis, width = args
    if width:
        constant = jnp.broadcast_to(w[0], x.shape[:axis] + (width,) + x.shape[axis + 1:])
        return jnp.concatenate([x, constant], axis)
    return jnp.concatenate([x, other(x)], axis)


def _draw_rotate(draw, val):
    axes = [a for a in val.free_axes() if val.shape[a] >= 2]
    if not axes:
        return None
    axis = draw.choice(axes)
    cuts = sorted({draw.integer(1, val.shape[axis] - 1) for _ in range(draw.integer(1, 2))})
    return axis, tuple(cuts)


@kind("split_concat", "shape", ALL)(_draw_rotate, lambda val, args: val)
def _split_concat(x, w, args):
    """jnp.split into pieces, joined again in reverse order."""
    pieces = jnp.split(x, list(args[1]), axis=args[0])
    return jnp.concatenate(pieces[::-1], axis=args[0])


def _draw_split_pick(draw, val):
    cut = _draw_rotate(draw, val)
    return None if cut is None else cut + (draw.integer(0, len(cut[1])),)


def _picked(val, args):
    axis, cuts, piece = args
    bounds = [0, *cuts, val.shape[axis]]
    return val.with_shape(tuple(bounds[piece + 1] - bounds[piece] if a == axis else d for a, d in enumerate(val.shape)))


@kind("split_pick", "shape", ALL)(_draw_split_pick, _picked)
def _split_pick(x, w, args):
    return jnp.split(x, list(args[1]), axis=args[0])[args[2]]


@kind("stack", "shape", ALL)(
    lambda draw, val: (draw.integer(0, val.rank),) if val.rank < 4 else None,
    lambda val, args: val.with_shape(val.shape[:args[0]] + (2,) + val.shape[args[0]:],
                                     val.batch if val.batch is None or val.batch < args[0] else val.batch + 1))
def _stack(x, w, args):
    return jnp.stack([x, other(x)], axis=args[0])


# -- slices, flips, pads, tiles --------------------------------------------------------------------------

def _draw_slice(draw, val):
    axes = [a for a in val.free_axes() if val.shape[a] >= 2]
    if not axes:
        return None
    axis = draw.choice(axes)
    n = val.shape[axis]
    start = draw.integer(0, n - 1)
    return axis, start, draw.integer(start + 1, n), draw.integer(1, 2)


@kind("slice", "shape", ALL)(
    _draw_slice,
    lambda val, args: val.with_shape(tuple(len(range(args[1], args[2], args[3])) if a == args[0] else d
                                           for a, d in enumerate(val.shape))))
def _slice(x, w, args):
    axis, start, stop, step = args
    return lax.slice_in_dim(x, start, stop, step, axis)


@kind("flip", "shape", ALL)(lambda draw, val: (draw.choice(val.free_axes()),) if val.free_axes() else None,
                            lambda val, args: val)
def _flip(x, w, args):
    return jnp.flip(x, args[0])


def _draw_pad(draw, val):
    if not val.free_axes() or val.dtype == "bool":
        return None
    axis = draw.choice(val.free_axes())
    n = val.shape[axis]
    return axis, draw.integer(-(n - 1) // 2, 2), draw.integer(0, 2), draw.integer(0, 1)


@kind("pad", "shape", ("float32", "int32"))(
    _draw_pad,
    lambda val, args: val.with_shape(tuple(d + args[1] + args[2] + args[3] * (d - 1) if a == args[0] else d
                                           for a, d in enumerate(val.shape))))
def _pad(x, w, args):
    """lax.pad: negative low padding crops; interior padding spreads the values."""
    axis, lo, hi, interior = args
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (lo, hi, interior)
    return lax.pad(x, jnp.array(1, x.dtype), config)


@kind("tile", "shape", ALL)(
    lambda draw, val: (draw.choice(val.free_axes()), draw.integer(2, 3)) if val.free_axes() else None,
    lambda val, args: val.with_shape(tuple(d * args[1] if a == args[0] else d for a, d in enumerate(val.shape))))
def _tile(x, w, args):
    reps = [1] * x.ndim
    reps[args[0]] = args[1]
    return jnp.tile(x, reps)


# -- indexing ------------------------------------------------------------------------------------------

def _draw_take(draw, val):
    if not val.free_axes():
        return None
    axis = draw.choice(val.free_axes())
    n = val.shape[axis]
    pick = lambda: draw.integer(-n, n - 1)  # noqa: E731 - negative indices count from the end
    if draw.boolean():
        return axis, tuple(pick() for _ in range(draw.integer(1, 4)))
    columns = draw.integer(1, 3)
    return axis, tuple(tuple(pick() for _ in range(columns)) for _ in range(draw.integer(1, 2)))


def _taken(val, args):
    axis, index = args
    index_shape = (len(index), len(index[0])) if isinstance(index[0], tuple) else (len(index),)
    batch = val.batch if val.batch is None or val.batch < axis else val.batch + len(index_shape) - 1
    return val.with_shape(val.shape[:axis] + index_shape + val.shape[axis + 1:], batch)


@kind("take", "indexing", ALL)(_draw_take, _taken)
def _take(x, w, args):
    """A gather with constant indices (a 1-D or 2-D index array)."""
    return jnp.take(x, jnp.array(args[1], jnp.int32), axis=args[0])


@kind("take_along", "indexing", ("float32", "int32"))(
    lambda draw, val: (draw.choice(val.free_axes()),) if val.free_axes() else None,
    lambda val, args: val.with_shape(tuple(1 if a == args[0] else d for a, d in enumerate(val.shape))))
def _take_along(x, w, args):
    """A gather whose indices are computed from the data (each row's maximum)."""
    return jnp.take_along_axis(x, jnp.argmax(x, axis=args[0], keepdims=True), axis=args[0])


SCATTER = ("set", "add", "mul", "max", "min")


def _draw_scatter(draw, val):
    if not val.free_axes() or val.dtype == "bool":
        return None
    axis = draw.choice(val.free_axes())
    n = val.shape[axis]
    mode = draw.choice(SCATTER)
    count = draw.integer(1, n)
    if mode == "set":  # distinct targets: the order of colliding writes is unspecified
        targets = sorted({draw.integer(0, n) for _ in range(count)})  # n: out of bounds, dropped
    else:
        targets = [draw.integer(-n, n) for _ in range(count)]
    sources = [draw.integer(0, n - 1) for _ in targets]
    return axis, mode, tuple(targets), tuple(sources)


@kind("scatter", "indexing", ("float32", "int32"))(_draw_scatter, lambda val, args: val)
def _scatter(x, w, args):
    """x.at[..., targets].<mode>(x[..., sources] transformed): a scatter with constant indices."""
    axis, mode, targets, sources = args
    updates = other(jnp.take(x, jnp.array(sources, jnp.int32), axis=axis))
    where = (slice(None),) * axis + (jnp.array(targets, jnp.int32),)
    return getattr(x.at[where], mode)(updates)


def _draw_dynamic_slice(draw, val):
    if not val.free_axes():
        return None
    axis = draw.choice(val.free_axes())
    n = val.shape[axis]
    return axis, draw.integer(1, n), draw.integer(-1, n), draw.boolean()


def _start(x, args):
    """The start index: a constant (clamped into range, as JAX does) or computed from the data."""
    start, traced = args[2], args[3]
    if not traced:
        return start
    positives = jnp.sum(x > 0) if x.dtype != jnp.bool_ else jnp.sum(x)
    return (positives % 5 - 1 + start).astype(jnp.int32)


@kind("dynamic_slice", "indexing", ALL)(
    _draw_dynamic_slice,
    lambda val, args: val.with_shape(tuple(args[1] if a == args[0] else d for a, d in enumerate(val.shape))))
def _dynamic_slice(x, w, args):
    return lax.dynamic_slice_in_dim(x, _start(x, args), args[1], axis=args[0])


@kind("dynamic_update", "indexing", ALL)(_draw_dynamic_slice, lambda val, args: val)
def _dynamic_update(x, w, args):
    update = lax.slice_in_dim(other(x), 0, args[1], axis=args[0])
    return lax.dynamic_update_slice_in_dim(x, update, _start(x, args), axis=args[0])

