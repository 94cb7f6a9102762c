"""One flat table from JAX primitive name to lowering rule, and the explicit "not supported yet" table.

A rule has one shape: `rule(ctx, *inputs, **eqn.params) -> list[Value]` (a single Value is accepted
too). It is registered right below its definition with `@register("prim", ...)`. Registering a
primitive twice, or registering one that is also declared unsupported, is an error at import time.
"""
from __future__ import annotations

from typing import Callable

Rule = Callable[..., object]

RULES: dict[str, Rule] = {}
# primitive name -> why it is not lowered (shown to the user next to each use)
NOT_SUPPORTED: dict[str, str] = {}


class RegistryError(Exception):
    """A primitive registered twice, or both lowered and declared unsupported."""


def register(*primitives: str) -> Callable[[Rule], Rule]:
    def decorate(rule: Rule) -> Rule:
        for name in primitives:
            if name in RULES:
                raise RegistryError(f"primitive '{name}' already has a rule ({RULES[name].__qualname__})")
            if name in NOT_SUPPORTED:
                raise RegistryError(f"primitive '{name}' is declared not supported and cannot get a rule")
            RULES[name] = rule
        return rule

    return decorate


def declare_not_supported(reason: str, *primitives: str) -> None:
    for name in primitives:
        if name in RULES:
            raise RegistryError(f"primitive '{name}' has a rule and cannot be declared not supported")
        if name in NOT_SUPPORTED:
            raise RegistryError(f"primitive '{name}' is declared not supported twice")
        NOT_SUPPORTED[name] = reason
