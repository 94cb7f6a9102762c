"""Rules for the primitives of Equinox (equinox.internal, equinox.debug) that its checks, loops and
debugging helpers leave in a jaxpr.

Most differ from the identity (or from plain JAX) only in how JAX transforms them: `nonbatchable`,
`nontraceable`, `nondifferentiable_backward` and `announce_jaxpr` check or report a transformation
when JAX traces; `select_if_vmap` and `unvmap_any/all/max` batch in their own way under jax.vmap. A
jaxpr being converted is past any vmap (the batch of the generated code is dimension 0 of the
inputs, not a vmapped axis), so each has its unbatched meaning here: identity, "the first case", and
a reduction over every axis.

Equinox's loop buffer update (`maybe_set`), its calls kept out of line (`noinline`) and its batched
primitive (`vprim`, a vmap of another Equinox primitive) are defined by the Python function Equinox
evaluates them with (the primitive's `impl`): the rules trace that function at the values' shapes and
lower what it traces to in place.
"""
from __future__ import annotations

import functools

from ..ir import Value
from .context import LoweringContext
from .reduce import reduce_axes
from .registry import register
from .traced_function import inline_function


@register("nonbatchable", "nontraceable", "nondifferentiable_backward", "announce_jaxpr")
def equinox_identity(ctx: LoweringContext, *xs: Value, **_params) -> list[Value]:
    """The values themselves: checks and announcements of JAX transformations, made when JAX traces."""
    return list(xs)


@register("select_if_vmap")
def select_if_vmap(ctx: LoweringContext, which: Value, x: Value, y: Value, **_params) -> Value:
    """`x`: outside vmap (and for an unbatched predicate) Equinox takes the predicate as true."""
    return x


def _unvmap_rule(mode: str, like: str):
    def rule(ctx: LoweringContext, x: Value, **_params) -> Value:
        return reduce_axes(ctx, x, range(x.rank), mode)

    rule.__qualname__ = f"unvmap_rule[{mode}]"
    rule.__doc__ = f"J2S_Reduce ({mode}) over every axis, the batch included (as {like})"
    return rule


register("unvmap_any")(_unvmap_rule("or", "jnp.any"))
register("unvmap_all")(_unvmap_rule("and", "jnp.all"))
register("unvmap_max")(_unvmap_rule("max", "jnp.max"))


@register("noinline")
def equinox_noinline(ctx: LoweringContext, *args: Value, **params) -> list[Value]:
    """Inlined: the function equinox.internal.noinline wraps, traced from Equinox's definition.

    Argument 0 is the literal index that names it in Equinox's table of functions."""
    from equinox.internal._noinline import noinline_p

    return inline_function(ctx, functools.partial(noinline_p.impl, **params), args, concrete=(0,), what="noinline")


@register("maybe_set")
def equinox_maybe_set(ctx: LoweringContext, *args: Value, **params) -> list[Value]:
    """Equinox's loop buffer write `buffer.at[i].set(x)`, traced from Equinox's definition (a scatter).

    The write is kept where the predicate holds (a select, as Equinox evaluates it)."""
    from equinox.internal import maybe_set_p

    return inline_function(ctx, functools.partial(maybe_set_p.impl, **params), args, what="maybe_set")


@register("vprim")
def equinox_vprim(ctx: LoweringContext, *args: Value, **params) -> list[Value]:
    """An Equinox primitive under jax.vmap: jax.vmap of its unbatched definition, as Equinox evaluates it."""
    from equinox.internal._primitive import _vprim_p

    return inline_function(ctx, functools.partial(_vprim_p.impl, **params), args, what="vprim")


# -- catalog cases (tests/test_catalog.py compiles and checks each) ---------------------------------------
# Equinox is a test dependency, not one of jax2sofie: the cases import it when they run.
import jax.numpy as jnp  # noqa: E402

from .catalog import case, f32, i32  # noqa: E402


def _unvmap_reductions(p, x, t):
    import equinox.internal as eqxi

    return eqxi.unvmap_any(x > 1.5), eqxi.unvmap_all(x > -3.0), eqxi.unvmap_max(t), x * 2.0


def _identities_and_select_if_vmap(p, x, y):
    import equinox.debug as eqxd
    import equinox.internal as eqxi

    checked = eqxi.nondifferentiable_backward(eqxi.nontraceable(eqxi.nonbatchable(x)))
    announced = eqxd.announce_transform(y, announce=lambda message: None)
    return eqxi.select_if_vmap_p.bind(jnp.any(y > 0), checked + 1.0, announced), announced * y


def _noinline_call(p, x):
    import equinox.internal as eqxi

    return eqxi.noinline(lambda y: jnp.tanh(y) * 2.0)(x) + 1.0


def _buffer_write(p, x, i):
    """Equinox's buffer write (maybe_set) at a row picked by an input (the first dimension is rows of
    one buffer, not a batch)."""
    from equinox.internal._loop.common import _maybe_set

    row = i[0] % x.shape[0]
    return _maybe_set(jnp.array(True), x, x[row] * 2.0 + 1.0, row, kwargs={}, makes_false_steps=False)


def _buffer_write_per_row(p, x, i):
    """The same write under jax.vmap, one per row (vprim of maybe_set)."""
    import jax
    from equinox.internal._loop.common import _maybe_set

    return jax.vmap(lambda xs, j: _maybe_set(jnp.array(True), xs, -xs[j], j, kwargs={}, makes_false_steps=False))(
        x, i[:, 0] % x.shape[1])


case("equinox_noinline", _noinline_call, f32(3, 4))
case("equinox_maybe_set", _buffer_write, f32(3, 4), i32(1), batch=False)
case("equinox_vprim", _buffer_write_per_row, f32(3, 4), i32(3, 1))
case("equinox_unvmap_reductions", _unvmap_reductions, f32(3, 4), i32(3, 2))
case("equinox_identities_and_select_if_vmap", _identities_and_select_if_vmap, f32(2, 5), f32(2, 5))
