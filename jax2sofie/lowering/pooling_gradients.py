"""The gradients of max/min pooling: select_and_gather_add (what jax.jvp of a max pool traces) and
select_and_scatter_add (what jax.grad of a max pool traces).

Both choose one element per window of `operand`: the first in window order that `select_prim` (ge for
a max, le for a min) prefers to every later one, as XLA does (the chosen element changes only when
`select_prim(chosen, candidate)` is false); padding is never chosen. They are written here as JAX
functions of primitives that are lowered (strided slices, pads, comparisons, selects) and traced in
place (traced_function.py): one strided slice per window offset, so the cost is the window size
times the output size, the same as the pooling itself.

- select_and_gather_add(tangents, operand): for each window, the tangent at the chosen element. JAX
  computes it as a reduce_window over (value, tangent) pairs, whose order of reduction XLA leaves to
  the implementation: where a window holds two equal maxima, XLA on CPU returns the tangent of either
  (the first in window order in small cases, another in larger ones), so there the generated code,
  which always takes the first, can differ from JAX. Without ties the two agree exactly.
- select_and_scatter_add(source, operand): each window's source value added at its chosen element
  (an element chosen by several overlapping windows gets the sum).
"""
from __future__ import annotations

import itertools
from typing import Sequence

import jax.numpy as jnp
from jax import lax

from ..ir import Value
from .context import LoweringContext
from .registry import register
from .traced_function import inline_function

_SELECTS = {"ge", "le", "gt", "lt"}


def _window_choice(operand, select_prim, window_dimensions, window_strides, padding, base_dilation,
                   window_dilation):
    """(choice, out_shape, config): for each window (output position) the number of the window offset
    (in row-major order over the window) whose element is chosen; `config` pads the operand to the
    space the windows slide over (base dilation as interior padding)."""
    config = [(int(lo), int(hi), int(b) - 1) for (lo, hi), b in zip(padding, base_dilation)]
    padded = lax.pad(operand, jnp.zeros((), operand.dtype), config)
    # padding and base-dilation holes are never chosen
    valid = lax.pad(jnp.ones(operand.shape, jnp.bool_), False, config)
    spans = [(w - 1) * d + 1 for w, d in zip(window_dimensions, window_dilation)]
    out_shape = tuple((n - span) // s + 1 for n, span, s in zip(padded.shape, spans, window_strides))
    choice = chosen = chosen_valid = None
    for k, offset in enumerate(itertools.product(*(range(w) for w in window_dimensions))):
        start = [o * d for o, d in zip(offset, window_dilation)]
        limit = [b + (n - 1) * s + 1 for b, n, s in zip(start, out_shape, window_strides)]
        candidate = lax.slice(padded, start, limit, window_strides)
        candidate_valid = lax.slice(valid, start, limit, window_strides)
        if choice is None:
            chosen, chosen_valid = candidate, candidate_valid
            choice = jnp.zeros(out_shape, jnp.int32)
            continue
        keep = select_prim.bind(chosen, candidate)
        replace = candidate_valid & (~chosen_valid | ~keep)
        chosen = lax.select(replace, candidate, chosen)
        chosen_valid = chosen_valid | candidate_valid
        choice = lax.select(replace, jnp.full(out_shape, k, jnp.int32), choice)
    return choice, out_shape, config, padded.shape


def _offsets(window_dimensions):
    return list(itertools.product(*(range(w) for w in window_dimensions)))


def select_and_gather_add_function(tangents, operand, *, select_prim, window_dimensions, window_strides, padding,
                                   base_dilation, window_dilation):
    choice, out_shape, config, _ = _window_choice(operand, select_prim, window_dimensions, window_strides, padding,
                                                  base_dilation, window_dilation)
    padded = lax.pad(tangents, jnp.zeros((), tangents.dtype), config)
    result = jnp.zeros(out_shape, tangents.dtype)
    for k, offset in enumerate(_offsets(window_dimensions)):
        start = [o * d for o, d in zip(offset, window_dilation)]
        limit = [b + (n - 1) * s + 1 for b, n, s in zip(start, out_shape, window_strides)]
        result = lax.select(choice == k, lax.slice(padded, start, limit, window_strides), result)
    return result


def select_and_scatter_add_function(source, operand, *, select_prim, window_dimensions, window_strides, padding):
    ones = (1,) * operand.ndim
    choice, out_shape, config, padded_shape = _window_choice(operand, select_prim, window_dimensions, window_strides,
                                                             padding, ones, ones)
    total = jnp.zeros(padded_shape, source.dtype)
    zero = jnp.zeros((), source.dtype)
    for k, start in enumerate(_offsets(window_dimensions)):
        contribution = lax.select(choice == k, source, jnp.zeros(out_shape, source.dtype))
        # to the element each window chose at this offset: start + stride * window position
        placed = [(b, p - b - ((n - 1) * s + 1), s - 1)
                  for b, n, s, p in zip(start, out_shape, window_strides, padded_shape)]
        total = total + lax.pad(contribution, zero, placed)
    return lax.slice(total, [lo for lo, _, _ in config], [lo + n for (lo, _, _), n in zip(config, operand.shape)])


def _check(ctx: LoweringContext, primitive: str, values: Sequence[Value], select_prim) -> None:
    if select_prim.name not in _SELECTS:
        raise ctx.error(f"'{primitive}' with select_prim={select_prim.name} is not supported (ge, gt, le or lt: "
                        "the gradients of max and min pooling)")
    for value in values:
        if str(value.dtype) != "float32":
            raise ctx.error(f"'{primitive}' on {value.dtype} is not supported (float32)")


@register("select_and_gather_add")
def select_and_gather_add(ctx: LoweringContext, tangents: Value, operand: Value, *, select_prim, window_dimensions,
                          window_strides, padding, base_dilation, window_dilation, **_params) -> list[Value]:
    """Max/min pooling's jvp: per window, the tangent at the chosen element (strided slices, selects)."""
    _check(ctx, "select_and_gather_add", (tangents, operand), select_prim)

    def fn(t, x):
        return select_and_gather_add_function(t, x, select_prim=select_prim, window_dimensions=window_dimensions,
                                              window_strides=window_strides, padding=padding,
                                              base_dilation=base_dilation, window_dilation=window_dilation)

    return inline_function(ctx, fn, [tangents, operand], what="select_and_gather_add")


@register("select_and_scatter_add")
def select_and_scatter_add(ctx: LoweringContext, source: Value, operand: Value, *, select_prim, window_dimensions,
                           window_strides, padding, **_params) -> list[Value]:
    """Max/min pooling's gradient: each window's value added at its chosen element (slices, selects, pads).

    One strided slice, select and interior-padded J2S_Pad per window offset."""
    _check(ctx, "select_and_scatter_add", (source, operand), select_prim)

    def fn(s, x):
        return select_and_scatter_add_function(s, x, select_prim=select_prim, window_dimensions=window_dimensions,
                                               window_strides=window_strides, padding=padding)

    return inline_function(ctx, fn, [source, operand], what="select_and_scatter_add")


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402

from .catalog import case, f32  # noqa: E402


def _max_pool_grads(p, x):
    import flax.linen as nn

    return (jax.grad(lambda y: jnp.sum(nn.max_pool(y, (2, 2), strides=(2, 2)) * p["w"]))(x),
            jax.grad(lambda y: jnp.sum(jnp.sin(nn.max_pool(y, (3, 3), strides=(2, 2), padding="SAME"))))(x))


def _min_pool_grad_overlapping(p, x):
    pooled = lambda y: lax.reduce_window(y, jnp.inf, lax.min, (1, 3, 1), (1, 1, 1), ((0, 0), (1, 1), (0, 0)))
    return jax.grad(lambda y: jnp.sum(pooled(y) * jnp.cos(y)))(x)


def _max_pool_jvp(p, x, t):
    import flax.linen as nn

    return jax.jvp(lambda y: nn.max_pool(y, (3, 3), strides=(2, 2), padding="SAME"), (x,), (t,))[1]


def _max_pool_jvp_dilated(p, x, t):
    pooled = lambda y: lax.reduce_window(y, -jnp.inf, lax.max, (1, 2, 2), (1, 1, 2), ((0, 0), (0, 1), (1, 0)),
                                         window_dilation=(1, 2, 1))
    return jax.jvp(pooled, (x,), (t,))[1]


def _pool_gradient_with_ties(p, x):
    """Rounded operands tie inside windows: the first element in window order is the one chosen (XLA's
    SelectAndScatter). The jvp is left out: on ties its choice is XLA's implementation's (see above)."""
    import flax.linen as nn

    tied = jnp.round(x)
    pooled = lambda y: nn.max_pool(y, (2, 3), strides=(1, 2), padding="SAME")
    return jax.grad(lambda y: jnp.sum(pooled(y) * jnp.sin(tied)[:, :, ::2]))(tied)


case("max_pool_grad_with_ties", _pool_gradient_with_ties, f32(2, 5, 6, 2))
case("max_pool_grad", _max_pool_grads, f32(2, 6, 7, 3), params={"w": f32(3, 3, 3)})
case("min_pool_grad_overlapping_windows", _min_pool_grad_overlapping, f32(2, 7, 3))
case("max_pool_jvp_padded", _max_pool_jvp, f32(2, 7, 6, 3), f32(2, 7, 6, 3))
case("max_pool_jvp_window_dilation", _max_pool_jvp_dilated, f32(2, 7, 6), f32(2, 7, 6))
