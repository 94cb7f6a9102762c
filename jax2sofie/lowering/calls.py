"""Higher-order primitives that only call a sub-jaxpr: inlined by lowering the sub-jaxpr in place."""
from __future__ import annotations

from ..ir import Value
from .context import LoweringContext
from .registry import register


@register("jit")
def call(ctx: LoweringContext, *args: Value, jaxpr=None, call_jaxpr=None, **_params) -> list[Value]:
    """Inlined: the sub-jaxpr is lowered in place."""
    closed = jaxpr if jaxpr is not None else call_jaxpr
    return ctx.inline(closed, args)


@register("custom_jvp_call", "custom_vjp_call")
def custom_derivative_call(ctx: LoweringContext, *args: Value, call_jaxpr, **_params) -> list[Value]:
    """Inference needs only the primal computation; the custom derivative rules are dropped."""
    return ctx.inline(call_jaxpr, args)


@register("custom_vmap_call")
def custom_vmap(ctx: LoweringContext, *args: Value, call, **_params) -> list[Value]:
    """Inlined: custom_vmap's plain function `call` (its batching rule already ran when JAX traced).

    Outside jax.vmap the function is its `call`; a converted jaxpr is past any vmap."""
    return ctx.inline(call, args)


@register("linear_call")
def linear_call(ctx: LoweringContext, *args: Value, callee, **_params) -> list[Value]:
    """Inlined: `callee` on every argument, as JAX evaluates it (the transpose rule is for autodiff).

    The callee's constants and residuals come first among the arguments."""
    return ctx.inline(callee.jaxpr, args)


@register("remat2")
def remat(ctx: LoweringContext, *args: Value, jaxpr, **_params) -> list[Value]:
    """jax.checkpoint only changes what is saved for the backward pass: inline the plain jaxpr."""
    return ctx.inline(jaxpr, args)


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from .catalog import case, f32  # noqa: E402


@jax.custom_vjp
def _scaled(x):
    return x * 3.0


_scaled.defvjp(lambda x: (_scaled(x), None), lambda _, g: (g * 3.0,))

case("jit_inlined", lambda p, x: jax.jit(jnp.tanh)(x) + 1.0, f32(2, 3))
case("nested_jit", lambda p, x: jax.jit(lambda y: jax.jit(jnp.exp)(y) * 2.0)(x), f32(4))
case("custom_jvp_relu", lambda p, x: jax.nn.relu(x), f32(3, 4))
case("custom_vjp", lambda p, x: _scaled(x), f32(5))
@jax.custom_batching.custom_vmap
def _sine_twice(x):
    return jnp.sin(x) * 2.0


@_sine_twice.def_vmap
def _sine_twice_vmap(axis_size, in_batched, x):
    return _sine_twice(x), in_batched[0]


def _linear_scale(x, w):
    """linear_call with a residual (w) and a linear argument (x): callee(w, x) = x * w."""
    return jax.custom_derivatives.linear_call(lambda w_, y: y * w_, lambda w_, ct: ct * w_, w, x)


case("custom_vmap_call", lambda p, x: _sine_twice(x) + 1.0, f32(3, 4))
case("custom_vmap_call_under_vmap", lambda p, x: jax.vmap(_sine_twice)(x), f32(3, 4))
case("linear_call", lambda p, x: _linear_scale(x, p["w"]), f32(3, 4), params={"w": f32(4)})
case("checkpoint", lambda p, x: jax.checkpoint(lambda y: jnp.tanh(y) * y)(x), f32(2, 2))
