"""Large constants become weights, so that the header does not grow with the model.

Params and the arrays the function closes over are weights from the start. A constant that is not
one (folded from literals and small captured arrays: `jnp.arange(1000.0)`, a mask or a table computed
at conversion time) would otherwise be written into the header as an array literal; past
LITERAL_MAX_ELEMENTS float32 elements it is a weight too and goes to the weight file. Except a
constant of one repeated value (a zero initial state): SOFIE writes it into the header as
`std::vector<float>(n, value)`, which does not grow with n, and a weight file would hold n copies.

A constant made a weight here keeps its own name (origin stays None): there is no param whose name it
could take, and renaming it would make the two traces of a model with a symbolic batch disagree on
names where its size depends on the batch.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, belongs_in_weight_file


def store_large_constants(graph: Graph) -> Graph:
    for value in graph.constants():
        if not value.is_weight and belongs_in_weight_file(value.const) and not _one_value(value.const):
            value.is_weight = True
    return graph


def _one_value(array: np.ndarray) -> bool:
    flat = np.asarray(array).reshape(-1)
    return bool(flat[0] == flat[-1]) and bool(np.all(flat == flat[0]))
