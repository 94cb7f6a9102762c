"""Rules for the primitives of Equinox (equinox.internal, equinox.debug) that its checks, loops and
debugging helpers leave in a jaxpr.

Most differ from the identity (or from plain JAX) only in how JAX transforms them: `nonbatchable`,
`nontraceable`, `nondifferentiable_backward` and `announce_jaxpr` check or report a transformation
when JAX traces; `select_if_vmap` and `unvmap_any/all/max` batch in their own way under jax.vmap. A
jaxpr being converted is past any vmap (the batch of the generated code is dimension 0 of the
inputs, not a vmapped axis), so each has its unbatched meaning here: identity, "the first case", and
a reduction over every axis. Equinox's loop buffers (`maybe_set`), non-inlined calls (`noinline`) and
its generic `vprim` are declared unsupported in unsupported.py.
"""
from __future__ import annotations

from ..ir import Value
from .context import LoweringContext
from .reduce import reduce_axes
from .registry import register


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


case("equinox_unvmap_reductions", _unvmap_reductions, f32(3, 4), i32(3, 2))
case("equinox_identities_and_select_if_vmap", _identities_and_select_if_vmap, f32(2, 5), f32(2, 5))
