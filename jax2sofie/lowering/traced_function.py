"""Lowering a primitive by tracing a JAX function that computes it with primitives that are lowered.

Used where a primitive's meaning is most plainly written as a short JAX function (an Equinox
primitive's own Python definition, a window-selection gradient as slices and selects): the function
is traced at the shapes of the primitive's operands and its jaxpr lowered in place, so the rules of
the primitives it uses do the work, and the result is the same as JAX's by construction of the
function, not by a second hand-written lowering.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax

from ..ir import Value
from .context import LoweringContext


def inline_function(ctx: LoweringContext, fn: Callable, args: Sequence[Value], concrete: Sequence[int] = (),
                    what: str = "") -> list[Value]:
    """Trace `fn(*args)` at the shapes and dtypes of `args` and lower its jaxpr in place (returns its
    outputs, flattened). The args at `concrete` positions must be constants: fn gets their values
    (a function that reads a value while it traces, e.g. an index into a table of functions)."""
    for i in concrete:
        if not args[i].is_const:
            raise ctx.error(f"{what or 'this primitive'}: operand {i} must be a constant (its value is read when "
                            "the primitive is evaluated), but it is computed from the inputs")
    traced_args = [a for i, a in enumerate(args) if i not in concrete]

    def with_constants(*values):
        remaining = iter(values)
        return fn(*[args[i].const if i in concrete else next(remaining) for i in range(len(args))])

    closed = jax.make_jaxpr(with_constants)(*[jax.ShapeDtypeStruct(a.shape, a.dtype) for a in traced_args])
    return ctx.inline(closed, traced_args)
