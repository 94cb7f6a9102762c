"""Where an equation comes from in the user's code, as `file:line (function)`.

JAX records a traceback per equation; its summary skips JAX's (and Flax's) own frames, so it
points at the user's line. The name stack (the Flax module or Keras layer path) is added when set.
"""
from __future__ import annotations

from jax._src import source_info_util  # the only stable way to summarise an equation's source


def location_of(eqn, enclosing: str = "") -> str:
    """The user's line of `eqn`. Equations inside a jitted library function (jnp.sort is one) may
    carry no user frame: they get `enclosing`, the location of the call that contains them."""
    where = source_info_util.summarize(eqn.source_info)
    if not where:
        return enclosing
    scope = str(eqn.source_info.name_stack)
    return f"{where} [in {scope}]" if scope else where
