"""Errors raised by jax2sofie. Every message names the problem and where it is."""
from __future__ import annotations

from dataclasses import dataclass


class ConversionError(Exception):
    """A model could not be converted; the message says why and where."""


@dataclass(frozen=True)
class UnsupportedUse:
    """One use of a primitive that has no lowering rule."""

    primitive: str
    location: str  # the user's file:line (and function), from the equation's source info
    reason: str  # why it is unsupported ("not supported yet: ..." or "unknown primitive")


class UnsupportedPrimitivesError(ConversionError):
    """Raised before lowering starts, listing EVERY unsupported primitive of the model at once."""

    def __init__(self, uses: list[UnsupportedUse]):
        self.uses = list(uses)
        by_primitive: dict[str, list[UnsupportedUse]] = {}
        for use in self.uses:
            by_primitive.setdefault(use.primitive, []).append(use)
        lines = [
            f"the model uses {len(by_primitive)} JAX primitive(s) that jax2sofie cannot lower "
            f"({len(self.uses)} use(s)):"
        ]
        for primitive, uses in sorted(by_primitive.items()):
            lines.append(f"  {primitive}: {uses[0].reason}")
            for use in uses:
                lines.append(f"    at {use.location}")
        super().__init__("\n".join(lines))

    @property
    def primitives(self) -> list[str]:
        return sorted({use.primitive for use in self.uses})


class LoweringError(ConversionError):
    """A supported primitive was used in a way its rule cannot lower (names the primitive and line)."""


class GraphError(ConversionError):
    """The IR graph is not valid (raised by the verifier, naming the node)."""
