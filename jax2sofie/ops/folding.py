"""The numpy meaning of the SOFIE operators that are folded on constants: FOLDERS and fold_node.

One table for the whole converter, so that a weight is folded the same way wherever it is folded: by
the lowering helpers (lowering/context.py: a reshaped or transposed weight stays one named weight)
and by the constant-folding pass (passes/constant_folding.py: nodes that rules and other passes
create on constants). It knows IR nodes and numpy only.

Folding is also a matter of correctness, not only of speed: SOFIE 0.1.0 folds a Concat over constant
inputs itself and reads the data as int64 whatever its type (docs/sofie_workarounds.md), so what SOFIE
would fold that way must be folded here.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..ir import Node

Folder = Callable[[list[np.ndarray], dict, tuple, np.dtype], np.ndarray]

FOLDERS: dict[str, Folder] = {
    "Reshape": lambda xs, attrs, shape, dtype: xs[0].reshape(shape),
    "Transpose": lambda xs, attrs, shape, dtype: np.ascontiguousarray(np.transpose(xs[0], attrs["perm"])),
    "Expand": lambda xs, attrs, shape, dtype: np.broadcast_to(xs[0], shape).copy(),
    "Cast": lambda xs, attrs, shape, dtype: xs[0].astype(dtype),
    "Identity": lambda xs, attrs, shape, dtype: xs[0].copy(),
    "Concat": lambda xs, attrs, shape, dtype: np.concatenate(xs, axis=attrs["axis"]),
    # Where(condition, on_true, on_false), broadcasting like numpy
    "Where": lambda xs, attrs, shape, dtype: np.where(xs[0].astype(bool), xs[1], xs[2]),
}


def fold_node(node: Node) -> np.ndarray | None:
    """The value of a one-output node over constant inputs, or None if it cannot be folded."""
    folder = FOLDERS.get(node.op)
    if folder is None or len(node.outputs) != 1 or not all(v.is_const for v in node.inputs):
        return None
    out = node.outputs[0]
    data = folder([v.const for v in node.inputs], node.attrs, out.shape, out.dtype)
    return np.asarray(data, dtype=out.dtype).reshape(out.shape)
