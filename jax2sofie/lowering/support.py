"""The scan before lowering: find EVERY unsupported primitive of a jaxpr at once, with its line.

Equations that depend only on params and literals are folded with JAX at conversion time, so they
need no rule and are not reported. Sub-jaxprs (jit, custom_jvp_call, remat, ...) are scanned too.
"""
from __future__ import annotations

from typing import Sequence

from jax.extend import core as jcore

from ..errors import UnsupportedPrimitivesError, UnsupportedUse
from .registry import NOT_SUPPORTED, RULES
from .source import location_of


def check_supported(closed: jcore.ClosedJaxpr, static_invars: Sequence[bool]) -> None:
    """Raise UnsupportedPrimitivesError listing every unsupported use (static_invars: params)."""
    uses: list[UnsupportedUse] = []
    _scan(closed.jaxpr, set(closed.jaxpr.constvars) | {v for v, s in zip(closed.jaxpr.invars, static_invars) if s},
          uses, "")
    if uses:
        raise UnsupportedPrimitivesError(uses)


def _scan(jaxpr: jcore.Jaxpr, static: set, uses: list[UnsupportedUse], enclosing: str) -> None:
    for eqn in jaxpr.eqns:
        operands = [v for v in eqn.invars if not isinstance(v, jcore.Literal)]
        if all(v in static for v in operands):
            static.update(eqn.outvars)  # folded with JAX at conversion time
            continue
        name = eqn.primitive.name
        if name not in RULES:
            reason = NOT_SUPPORTED.get(name, "unknown primitive: no lowering rule and not in the support table")
            uses.append(UnsupportedUse(name, location_of(eqn, enclosing) or "unknown location", reason))
            continue
        for sub in jcore.jaxprs_in_params(eqn.params):
            inner = sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub
            # operands map one to one onto the sub-jaxpr's inputs for the call-like primitives
            inner_static = set(inner.constvars)
            if len(inner.invars) == len(eqn.invars):
                inner_static |= {iv for iv, ov in zip(inner.invars, eqn.invars)
                                 if isinstance(ov, jcore.Literal) or ov in static}
            _scan(inner, inner_static, uses, location_of(eqn, enclosing))
