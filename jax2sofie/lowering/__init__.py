"""Lowering from jaxpr to the IR: the rule registry, the rules by family, the walker.

Importing this package imports every rule module, which registers its rules.
"""
from . import (  # noqa: F401  (registration: one rule module per line)
    activations,
    calls,
    control_flow,
    conv,
    decompositions,
    elementwise,
    elementwise_math,
    equinox_primitives,
    indexing,
    linalg,
    pooling,
    pooling_gradients,
    quantized,
    reduce,
    row_fusions,
    shape,
    slicing,
    small_linalg,
    sorting,
    special,
    unsupported,
)
from .registry import NOT_SUPPORTED, RULES
from .support import check_supported
from .walker import lower_jaxpr, lower_sub_jaxpr

__all__ = ["NOT_SUPPORTED", "RULES", "check_supported", "lower_jaxpr", "lower_sub_jaxpr"]
