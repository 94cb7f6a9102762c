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
case("checkpoint", lambda p, x: jax.checkpoint(lambda y: jnp.tanh(y) * y)(x), f32(2, 2))
