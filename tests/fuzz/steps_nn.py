"""Steps of neural-network layers and what they are made of: dense layers and other dot_generals,
convolutions (plain, strided, dilated, grouped, transposed), pooling, reductions, sorting and
cumulative ops."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import linen as nn
from jax import lax

from .program import Val, Weight, kind

FLOAT, INT, BOOL = "float32", "int32", "bool"
# output widths of dense layers: small ones, and around J2S_Dense's panel of 32 columns
DENSE_WIDTHS = (1, 2, 3, 4, 5, 6, 8, 31, 32, 33, 64)


def replaced(shape, axis, size):
    return tuple(size if a == axis else d for a, d in enumerate(shape))


def removed(val: Val, axes) -> Val:
    """`val` without `axes` (none of them the batch)."""
    batch = None if val.batch is None else val.batch - sum(a < val.batch for a in axes)
    return val.with_shape(tuple(d for a, d in enumerate(val.shape) if a not in axes), batch)


# -- dense and dot_general -------------------------------------------------------------------------------

def _draw_dense(draw, val):
    if val.batch == val.rank - 1:
        return None
    width = draw.choice(DENSE_WIDTHS) if draw.boolean() else draw.choice((32, 64))  # the panel path: often
    return val.shape[-1], width, draw.boolean()


def _dense_weights(val, args):
    return [Weight((args[0], args[1]))] + ([Weight((args[1],))] if len(args) > 2 and args[2] else [])


@kind("dense", "dense", weights=_dense_weights, frequency=4)(_draw_dense, lambda val, args: val.with_shape(val.shape[:-1] + (args[1],)))
def _dense(x, w, args):
    """x @ W (+ b): J2S_Dense; from 5 rows on, a width that is a multiple of 32 takes the panel path."""
    y = x @ (w[0] / math.sqrt(args[0]))
    return y + w[1] if len(w) > 1 else y


def _draw_dense_axis(draw, val):
    axes = [a for a in val.free_axes() if a != val.rank - 1]
    return (draw.choice(axes), draw.choice(DENSE_WIDTHS[:8])) if axes else None


@kind("dense_axis", "dense", weights=lambda val, args: [Weight((val.shape[args[0]], args[1]))])(
    _draw_dense_axis, lambda val, args: removed(val, (args[0],)).with_shape(
        removed(val, (args[0],)).shape + (args[1],)))
def _dense_axis(x, w, args):
    """A dot_general contracting an axis other than the last."""
    return lax.dot_general(x, w[0] / math.sqrt(x.shape[args[0]]), (((args[0],), (0,)), ((), ())))


def _draw_dot_batched(draw, val):
    axes = [a for a in val.free_axes() if a != val.rank - 1]
    if not axes or val.batch == val.rank - 1:
        return None
    return draw.choice(axes), draw.choice(DENSE_WIDTHS[:8])


def _dot_batched_out(val, args):
    axis, n = args
    rest = removed(val, (axis, val.rank - 1))
    return rest.with_shape((val.shape[axis],) + rest.shape + (n,), rest.batch + 1)


@kind("dot_batched", "dense", weights=lambda val, args: [Weight((val.shape[args[0]], val.shape[-1], args[1]))])(
    _draw_dot_batched, _dot_batched_out)
def _dot_batched(x, w, args):
    """A dot_general with a batch dimension shared with the weight (one matrix per index of `axis`)."""
    last = x.ndim - 1
    return lax.dot_general(x, w[0] / math.sqrt(x.shape[-1]), (((last,), (1,)), ((args[0],), (0,))))


@kind("matmul_self", "dense")(
    lambda draw, val: () if val.rank >= 2 and val.batch < val.rank - 2 else None,
    lambda val, args: val.with_shape(val.shape[:-1] + (val.shape[-2],)))
def _matmul_self(x, w, args):
    """x @ x^T over the last two axes: a product of two computed values (batched Gemm)."""
    return x @ jnp.swapaxes(x, -1, -2) / math.sqrt(x.shape[-1])


# -- convolutions ----------------------------------------------------------------------------------------

_LAYOUTS = {("NHWC", 1): ("NWC", "WIO", "NWC"), ("NHWC", 2): ("NHWC", "HWIO", "NHWC"),
            ("NCHW", 1): ("NCW", "OIW", "NCW"), ("NCHW", 2): ("NCHW", "OIHW", "NCHW")}


def _spatial_axes(val: Val, layout: str) -> list[int]:
    return list(range(1, val.rank - 1)) if layout == "NHWC" else list(range(2, val.rank))


def _channel_axis(val: Val, layout: str) -> int:
    return val.rank - 1 if layout == "NHWC" else 1


def _conv_size(n, k, stride, padding, dilation=1):
    span = (k - 1) * dilation + 1
    if padding == "SAME":
        return -(-n // stride)
    if padding == "VALID":
        return -(-(n - span + 1) // stride)
    lo, hi = padding
    return (n + lo + hi - span) // stride + 1


def _draw_padding(draw, spatial):
    choice = draw.integer(0, 3)
    if choice < 2:
        return ("SAME", "VALID")[choice]
    return tuple((draw.integer(-1, 2), draw.integer(0, 2)) for _ in range(spatial))


def _padding_of(padding, i):
    return padding if isinstance(padding, str) else padding[i]


def _draw_conv(draw, val):
    if val.rank not in (3, 4) or val.batch != 0:
        return None
    layout = draw.choice(["NHWC", "NCHW"])
    spatial = val.rank - 2
    channels = val.shape[_channel_axis(val, layout)]
    groups = draw.choice([g for g in range(1, channels + 1) if channels % g == 0])
    out = groups * draw.integer(1, 3)
    kernel = tuple(draw.integer(1, 3) for _ in range(spatial))
    strides = tuple(draw.integer(1, 2) for _ in range(spatial))
    dilation = tuple(draw.integer(1, 2) for _ in range(spatial))
    return layout, kernel, out, strides, _draw_padding(draw, spatial), dilation, groups


def _conv_out(val, args):
    layout, kernel, out, strides, padding, dilation, groups = args
    shape = list(val.shape)
    for i, axis in enumerate(_spatial_axes(val, layout)):
        shape[axis] = _conv_size(shape[axis], kernel[i], strides[i], _padding_of(padding, i), dilation[i])
    shape[_channel_axis(val, layout)] = out
    return val.with_shape(shape)


def _conv_weights(val, args):
    layout, kernel, out, _, _, _, groups = args
    per_group = val.shape[_channel_axis(val, layout)] // groups
    return [Weight(kernel + (per_group, out) if layout == "NHWC" else (out, per_group) + kernel)]


@kind("conv", "conv", weights=_conv_weights)(_draw_conv, _conv_out)
def _conv(x, w, args):
    layout, kernel, out, strides, padding, dilation, groups = args
    numbers = _LAYOUTS[(layout, x.ndim - 2)]
    fan_in = math.prod(kernel) * w[0].shape[-2 if layout == "NHWC" else 1]
    return lax.conv_general_dilated(x, w[0] / math.sqrt(fan_in), strides, padding, rhs_dilation=dilation,
                                    dimension_numbers=numbers, feature_group_count=groups)


def _draw_conv_transpose(draw, val):
    if val.rank not in (3, 4) or val.batch != 0:
        return None
    spatial = val.rank - 2
    return (tuple(draw.integer(1, 3) for _ in range(spatial)), draw.integer(1, 4),
            tuple(draw.integer(1, 2) for _ in range(spatial)), draw.choice(["SAME", "VALID"]))


def _conv_transpose_out(val, args):
    kernel, out, strides, padding = args
    spatial = [n * s if padding == "SAME" else n * s + max(k - s, 0)
               for n, k, s in zip(val.shape[1:-1], kernel, strides)]
    return val.with_shape((val.shape[0], *spatial, out))


@kind("conv_transpose", "conv", weights=lambda val, args: [Weight(args[0] + (val.shape[-1], args[1]))])(
    _draw_conv_transpose, _conv_transpose_out)
def _conv_transpose(x, w, args):
    kernel, out, strides, padding = args
    numbers = _LAYOUTS[("NHWC", x.ndim - 2)]
    return lax.conv_transpose(x, w[0] / math.sqrt(math.prod(kernel) * x.shape[-1]), strides, padding,
                              dimension_numbers=numbers)


# -- pooling ---------------------------------------------------------------------------------------------

POOL = {"max": (-jnp.inf, lax.max), "min": (jnp.inf, lax.min), "sum": (0.0, lax.add), "avg": (0.0, lax.add)}


def _draw_pool(draw, val):
    axes = val.free_axes()
    if not axes:
        return None
    window = tuple(1 if a == val.batch else draw.integer(1, min(3, val.shape[a])) for a in range(val.rank))
    strides = tuple(1 if a == val.batch else draw.integer(1, 2) for a in range(val.rank))
    if draw.boolean():
        padding = draw.choice(["SAME", "VALID"])
    else:
        padding = tuple((0, 0) if a == val.batch else (draw.integer(0, 1), draw.integer(0, 1))
                        for a in range(val.rank))
    return draw.choice(sorted(POOL)), window, strides, padding


def _pool_out(val, args):
    _, window, strides, padding = args
    return val.with_shape(tuple(_conv_size(n, k, s, _padding_of(padding, i))
                                for i, (n, k, s) in enumerate(zip(val.shape, window, strides))))


@kind("pool", "pooling")(_draw_pool, _pool_out)
def _pool(x, w, args):
    """lax.reduce_window over any axes but the batch."""
    mode, window, strides, padding = args
    init, op = POOL[mode]
    y = lax.reduce_window(x, init, op, window, strides, padding)
    return y / math.prod(window) if mode == "avg" else y


def _draw_flax_pool(draw, val):
    if val.rank < 3 or val.batch != 0:
        return None
    spatial = val.shape[1:-1]
    window = tuple(draw.integer(1, min(3, n)) for n in spatial)
    strides = tuple(draw.integer(1, 2) for _ in spatial)
    return draw.choice(["max", "avg", "avg_exclude_pad"]), window, strides, draw.choice(["SAME", "VALID"])


def _flax_pool_out(val, args):
    _, window, strides, padding = args
    spatial = [_conv_size(n, k, s, padding) for n, k, s in zip(val.shape[1:-1], window, strides)]
    return val.with_shape((val.shape[0], *spatial, val.shape[-1]))


@kind("flax_pool", "pooling")(_draw_flax_pool, _flax_pool_out)
def _flax_pool(x, w, args):
    """Flax's max_pool / avg_pool (channels last), avg_pool also without counting the padding."""
    mode, window, strides, padding = args
    if mode == "max":
        return nn.max_pool(x, window, strides, padding)
    return nn.avg_pool(x, window, strides, padding, count_include_pad=mode == "avg")


# -- reductions ------------------------------------------------------------------------------------------

REDUCE = {FLOAT: {"sum": jnp.sum, "max": jnp.max, "min": jnp.min, "mean": jnp.mean, "prod": jnp.prod,
                  "logsumexp": jax.nn.logsumexp},
          INT: {"sum": jnp.sum, "max": jnp.max, "min": jnp.min},
          BOOL: {"any": jnp.any, "all": jnp.all}}
_ALL_REDUCE = {name: fn for table in REDUCE.values() for name, fn in table.items()}


def _draw_reduce(draw, val):
    if val.rank < 2 or not val.free_axes():
        return None
    return draw.choice(sorted(REDUCE[val.dtype])), draw.choice(val.free_axes()), draw.boolean()


def _reduced(val, args):
    _, axis, keep = args
    axis %= val.rank
    if keep:
        return val.with_shape(replaced(val.shape, axis, 1), None if axis == val.batch else val.batch)
    if axis == val.batch:  # a legacy program reducing its batch: static only
        return val.with_shape(val.shape[:axis] + val.shape[axis + 1:], None)
    return removed(val, (axis,))


@kind("reduce", "reduce", (FLOAT, INT, BOOL))(_draw_reduce, _reduced)
def _reduce(x, w, args):
    op, axis, keep = args
    return _ALL_REDUCE[op](x, axis=axis, keepdims=keep)


def _draw_reduce_axes(draw, val):
    if len(val.free_axes()) < 2 or val.rank < 3:
        return None
    first = draw.choice(val.free_axes())
    second = draw.choice([a for a in val.free_axes() if a != first])
    return draw.choice(sorted(REDUCE[val.dtype])), tuple(sorted((first, second))), draw.boolean()


def _reduced_axes(val, args):
    _, axes, keep = args
    if keep:
        return val.with_shape(tuple(1 if a in axes else d for a, d in enumerate(val.shape)))
    return removed(val, axes)


@kind("reduce_axes", "reduce", (FLOAT, INT, BOOL))(_draw_reduce_axes, _reduced_axes)
def _reduce_axes(x, w, args):
    op, axes, keep = args
    return _ALL_REDUCE[op](x, axis=axes, keepdims=keep)


NORMALISE = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax,
             "layer_norm": lambda x, axis: (x - x.mean(axis, keepdims=True))
             * lax.rsqrt(x.var(axis, keepdims=True) + 1e-3)}


def _draw_softmax(draw, val):
    return (draw.choice(val.free_axes()),) if val.free_axes() else None


@kind("softmax", "reduce")(_draw_softmax, lambda val, args: val)
def _softmax(x, w, args):
    return jax.nn.softmax(x, axis=args[0] if args else -1)  # legacy programs: ("softmax",), the last axis


@kind("normalise", "reduce")(lambda draw, val: (draw.choice(sorted(NORMALISE)), *_draw_softmax(draw, val))
                             if val.free_axes() else None, lambda val, args: val)
def _normalise(x, w, args):
    return NORMALISE[args[0]](x, axis=args[1])


# -- sorting ---------------------------------------------------------------------------------------------

def _draw_sort(draw, val):
    return (draw.choice(val.free_axes()), draw.boolean()) if val.free_axes() else None


@kind("sort", "sorting", (FLOAT, INT))(_draw_sort, lambda val, args: val)
def _sort(x, w, args):
    return jnp.sort(x, axis=args[0], descending=args[1])


@kind("argsort", "sorting", (FLOAT, INT))(_draw_sort, lambda val, args: val.with_shape(val.shape, dtype=INT))
def _argsort(x, w, args):
    return jnp.argsort(x, axis=args[0], descending=args[1], stable=True)


@kind("top_k", "sorting", (FLOAT, INT))(
    lambda draw, val: (draw.integer(1, val.shape[-1]), draw.boolean()) if val.batch != val.rank - 1 else None,
    lambda val, args: val.with_shape(val.shape[:-1] + (args[0],), dtype=INT if args[1] else val.dtype))
def _top_k(x, w, args):
    values, indices = lax.top_k(x, args[0])
    return indices if args[1] else values


def _draw_argmax(draw, val):
    return (draw.choice(["argmax", "argmin"]), draw.choice(val.free_axes()), draw.boolean()) \
        if val.free_axes() else None


def _argmaxed(val, args):
    _, axis, keep = args
    after = val.with_shape(replaced(val.shape, axis, 1)) if keep else removed(val, (axis,))
    return after.with_shape(after.shape, dtype=INT)


@kind("argmax", "sorting", (FLOAT, INT))(_draw_argmax, _argmaxed)
def _argmax(x, w, args):
    op, axis, keep = args
    return getattr(jnp, op)(x, axis=axis, keepdims=keep)


# -- cumulative ------------------------------------------------------------------------------------------

CUMULATIVE = {FLOAT: {"sum": lax.cumsum, "max": lax.cummax, "min": lax.cummin, "prod": lax.cumprod,
                      "logsumexp": lax.cumlogsumexp},
              INT: {"sum": lax.cumsum, "max": lax.cummax, "min": lax.cummin}}


def _draw_cumulative(draw, val):
    if not val.free_axes():
        return None
    return draw.choice(sorted(CUMULATIVE[val.dtype])), draw.choice(val.free_axes()), draw.boolean()


@kind("cumulative", "cumulative", (FLOAT, INT))(_draw_cumulative, lambda val, args: val)
def _cumulative(x, w, args):
    op, axis, reverse = args
    return CUMULATIVE[str(x.dtype)][op](x, axis=axis, reverse=reverse)


# -- kept for the regression examples of earlier versions --------------------------------------------------

@kind("reshape", "shape", (FLOAT, INT, BOOL))(lambda draw, val: None,
                                               lambda val, args: Val(tuple(args[0]), val.dtype, None))
def _reshape(x, w, args):
    return x.reshape(args[0])
