"""The families of lowering rules programs must reach, and inputs that suit each.

A program drawn for a family starts from an input its steps apply to (a convolution needs a batch of
images, an integer step an int32 value, ...); the other steps of the program are any kinds at all.
"""
from __future__ import annotations

from . import steps_control, steps_elementwise, steps_nn, steps_shape  # noqa: F401 - they register the kinds
from .program import KINDS

FAMILIES = ("elementwise", "dense", "conv", "pooling", "indexing", "sorting", "cumulative", "integer", "bool",
            "select", "constants", "shape", "reduce", "control_flow")
# reached without a kind of their own: "closure" (a program whose weights the function closes over)
PROGRAM_FAMILIES = FAMILIES + ("closure",)

assert {k.family for k in KINDS.values()} <= set(FAMILIES), "a kind of step in no listed family"


def _dims(draw, rank: int, lo: int = 1, hi: int = 6) -> tuple[int, ...]:
    return tuple(draw.integer(lo, hi) for _ in range(rank))


def input_for(draw, family: str | None) -> tuple[tuple[int, ...], str]:
    """(shape, dtype) of an input for a program reaching `family`; dimension 0 is the batch."""
    batch = draw.integer(1, 4)
    if family in ("conv", "pooling") and draw.integer(0, 3):
        spatial = _dims(draw, draw.integer(1, 2), 3, 7)
        return (batch, *spatial, draw.integer(1, 4)), "float32"
    if family == "dense":
        return (batch, *_dims(draw, draw.integer(0, 1), 1, 8), draw.choice([3, 8, 16, 32])), "float32"
    dtype = "float32"
    if family == "integer":
        dtype = draw.choice(["int32", "int32", "float32", "bool"])
    elif family == "bool":
        dtype = draw.choice(["bool", "float32", "int32"])
    elif family not in ("elementwise", "cumulative", "reduce") and draw.integer(0, 3) == 0:
        dtype = draw.choice(["int32", "bool"])
    return (batch, *_dims(draw, draw.integer(1, 3))), dtype
