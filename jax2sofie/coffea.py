"""A converted model in the columnar stack (uproot + awkward + coffea on dask-awkward):

    from jax2sofie.coffea import SofieWrapper
    tagger = SofieWrapper("out/libtagger.so", fields=["pt", "eta", "phi", "mass"], max_batch=1024)
    events = uproot.dask({"data.root": "events"})
    scores = tagger(events.Jet)          # a dask-awkward array: per jet, the model's outputs
    scores.compute()                     # on a dask.distributed cluster too

The wrapper runs the model's shared library (`write(..., library=True)`, `make lib<name>.so`)
through jax2sofie.load_library: only paths and options are pickled, and the library is loaded on
each worker at its first call, so the library and the weight file must be at the same paths there
(a shared file system, or the same machine). The model takes one float32 row per object: its input
is (batch, n) with a dynamic batch, or (1, n). The objects may be jagged (jets per event): they are
flattened for the model and the outputs unflattened to the same structure, one row of all outputs
concatenated per object.
"""
from __future__ import annotations

import os
from typing import Sequence

import awkward as ak
import numpy as np
from coffea.ml_tools.helper import numpy_call_wrapper

from .library import load_library


class SofieWrapper(numpy_call_wrapper):
    """coffea's numpy_call_wrapper over a model's shared library.

    library: `lib<name>.so`; weights: its weight file (default: the one next to it); fields: the
    record fields that form an object's input row, in order (None: the array is already (objects, n)
    numbers); max_batch: the most rows per call of a dynamic-batch model (larger inputs are run in
    chunks of it)."""

    def __init__(self, library: str | os.PathLike, fields: Sequence[str] | None = None,
                 weights: str | os.PathLike | None = None, max_batch: int = 1024):
        super().__init__()
        self.fields = list(fields) if fields is not None else None
        self.max_batch = int(max_batch)
        self.model = load_library(library, weights=weights, max_batch=max_batch)

    # -- awkward side ---------------------------------------------------------------------------
    def _jagged(self, objects) -> bool:
        """Whether the objects are a list per event (jets) rather than one per event."""
        depth = objects.ndim if self.fields is not None else objects.ndim - 1
        if depth not in (1, 2):
            raise ValueError(f"SofieWrapper takes one object per event or a list of objects per event; this array "
                             f"has {depth} list dimensions ({objects.type})")
        return depth == 2

    def prepare_awkward(self, objects):
        """The objects of all events in one list: records of the fields (numpy_call stacks them into
        rows; dask-awkward cannot concatenate along the last axis), or the (objects, n) numbers."""
        lib = self.get_awkward_lib(objects)
        rows = objects if self.fields is None else objects[self.fields]
        if self._jagged(objects):
            rows = lib.flatten(rows, axis=1)
        return (lib.values_astype(rows, np.float32),), {}

    def postprocess_awkward(self, outputs, objects):
        """One row of outputs per object, in lists per event like the objects."""
        lib = self.get_awkward_lib(objects)
        return lib.unflatten(outputs, lib.num(objects, axis=1)) if self._jagged(objects) else outputs

    # -- numpy side -----------------------------------------------------------------------------
    def _rows(self, objects: np.ndarray) -> np.ndarray:
        """(objects, n) float32 rows from what prepare_awkward made (a structured array of the fields)."""
        if self.fields is None:
            return np.ascontiguousarray(objects, dtype=np.float32)
        return np.ascontiguousarray(np.stack([np.asarray(objects[f], np.float32) for f in self.fields], axis=1))

    def validate_numpy_input(self, objects: np.ndarray) -> None:
        rows = self._rows(objects)
        (name, _, shape) = self.model.inputs[0]
        if len(self.model.inputs) != 1:
            raise ValueError(f"SofieWrapper takes a model with one input; {self.model.name} has {len(self.model.inputs)}")
        if rows.ndim != 2 or (tuple(shape) and rows.shape[1:] != tuple(shape)):
            raise ValueError(f"the model {self.model.name} takes rows of shape {tuple(shape)} as input '{name}'; "
                             f"got an array of shape {rows.shape}")

    def numpy_call(self, objects: np.ndarray) -> np.ndarray:
        """All outputs of each object's row, concatenated: (objects, total output size per row)."""
        rows = self._rows(objects)
        step = self.max_batch if self.model.dynamic_batch else 1
        pieces = []
        for start in range(0, len(rows), step):
            outputs = self.model(rows[start:start + step])
            pieces.append(np.concatenate([np.asarray(o, np.float32).reshape(len(rows[start:start + step]), -1)
                                          for o in outputs], axis=1))
        if not pieces:
            width = sum(int(np.prod(shape)) for _, _, shape in self.model.outputs)
            return np.zeros((0, width), np.float32)
        return np.concatenate(pieces, axis=0)
