"""A model's shared library (`make lib<name>.so`, written with `write(..., library=True)`) called from
Python through its C API.

    run = jax2sofie.load_library("out/libmlp.so")             # weights: out/mlp.dat, next to it
    (y,) = run(x)                                             # numpy in, numpy out
    run = jax2sofie.load_library("out/libmlpd.so", max_batch=256)   # a dynamic-batch model

The GIL: the library is loaded with ctypes.CDLL, and ctypes releases the GIL for the duration of every
call into a CDLL, so inference in one Python thread lets the others run. Threads: a C session must not
be shared between threads, so each Python thread that calls the model gets its own session (its own
copy of the weights and scratch memory), created on its first call and freed when the thread ends.

Pickling keeps the paths and options only: an unpickled model loads the library on its first call
(e.g. in a Dask worker, which needs the library and weight file at the same paths).
"""
from __future__ import annotations

import ctypes
import os
import re
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .runtime import InferenceError
from .runtime.c_api import DTYPE_CODES

_DTYPES = {code: dtype for dtype, code in DTYPE_CODES.items()}


def load_library(path: str | os.PathLike, weights: str | os.PathLike | None = None, max_batch: int | None = None,
                 name: str | None = None) -> "LibraryModel":
    """Load `lib<name>.so` and create a session; returns a callable LibraryModel.

    weights: the weight file (default: the one written with the model, in the library's directory;
    ignored for weights embedded in the library). max_batch: the largest batch a dynamic-batch model
    will run (required for one; a fixed-batch model runs its own batch). name: the model name when the
    file is not called `lib<name>.so`."""
    return LibraryModel(path, weights, max_batch, name)


class _Session:
    """One C session; destroyed with this object (when its thread ends or the model goes away)."""

    def __init__(self, handle: int, destroy):
        self.handle = handle
        self._destroy = destroy

    def __del__(self):
        try:
            self._destroy(self.handle)
        except Exception:  # at interpreter shutdown the library may already be gone
            pass


class LibraryModel:
    """A callable model backed by a shared library: `model(*inputs) -> list of output arrays`.

    Attributes (read from the library): `name`, `inputs` and `outputs` (lists of (name, dtype,
    per-example shape)), `dynamic_batch`, `has_batch`, `max_batch`, `library_path`, `weight_path`.
    """

    def __init__(self, path: str | os.PathLike, weights: str | os.PathLike | None = None,
                 max_batch: int | None = None, name: str | None = None):
        self.library_path = os.path.abspath(os.fspath(path))
        if name is None:
            match = re.fullmatch(r"lib(\w+)\.so", os.path.basename(self.library_path))
            if match is None:
                raise ValueError(f"cannot tell the model name from the file name {self.library_path} (expected "
                                 "lib<name>.so): pass name=")
            name = match.group(1)
        self.name = name
        self._weights = None if weights is None else os.path.abspath(os.fspath(weights))
        self._requested_max_batch = max_batch
        self._lock = threading.Lock()
        self._lib = None
        self._local = threading.local()
        self._load()
        self._session()  # the first session now: a missing weight file is reported by load_library

    # -- pickling: the paths and options only ---------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        return {"library_path": self.library_path, "name": self.name, "weights": self._weights,
                "max_batch": self._requested_max_batch}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.library_path, self.name = state["library_path"], state["name"]
        self._weights, self._requested_max_batch = state["weights"], state["max_batch"]
        self._lock = threading.Lock()
        self._lib = None  # loaded on the first call
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<LibraryModel {self.name} from {self.library_path}>"

    # -- loading --------------------------------------------------------------------------------------
    def _function(self, lib, suffix: str, restype, argtypes):
        try:
            function = getattr(lib, f"{self.name}_{suffix}")
        except AttributeError:
            raise ValueError(f"{self.library_path} has no function {self.name}_{suffix}: it is not the C API library "
                             f"of a model named '{self.name}' (pass name= if the file was renamed)") from None
        function.restype, function.argtypes = restype, argtypes
        return function

    def _load(self):
        with self._lock:
            if self._lib is not None:
                return self._lib
            if not os.path.isfile(self.library_path):
                raise FileNotFoundError(f"no library {self.library_path}: build it with `make lib{self.name}.so` in "
                                        "the directory written with library=True")
            lib = ctypes.CDLL(self.library_path, mode=os.RTLD_LOCAL | os.RTLD_NOW)
            c_int, c_char_p, c_void_p, c_int64 = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64
            self._create = self._function(lib, "create", c_void_p, [c_char_p, c_int64])
            self._infer = self._function(lib, "infer", c_int,
                                         [c_void_p, c_int64, ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p)])
            self._destroy = self._function(lib, "destroy", None, [c_void_p])
            self._last_error = self._function(lib, "last_error", c_char_p, [])
            self._session_max_batch = self._function(lib, "max_batch", c_int64, [c_void_p])
            self.dynamic_batch = bool(self._function(lib, "dynamic_batch", c_int, [])())
            self.has_batch = bool(self._function(lib, "has_batch", c_int, [])())
            default_weights = self._function(lib, "default_weight_file", c_char_p, [])().decode()
            self.inputs = self._tensors(lib, "input")
            self.outputs = self._tensors(lib, "output")
            if self.dynamic_batch and self._requested_max_batch is None:
                raise TypeError(f"model '{self.name}' has a dynamic batch: pass max_batch= (the largest batch it "
                                "will run)")
            self.max_batch = self._requested_max_batch if self.dynamic_batch else None
            self.weight_path = (self._weights or os.path.join(os.path.dirname(self.library_path), default_weights)
                                if default_weights else None)
            self._lib = lib
            return lib

    def _tensors(self, lib, kind: str) -> list[tuple[str, np.dtype, tuple[int, ...]]]:
        count = self._function(lib, f"num_{kind}s", ctypes.c_int, [])()
        name = self._function(lib, f"{kind}_name", ctypes.c_char_p, [ctypes.c_int])
        dtype = self._function(lib, f"{kind}_dtype", ctypes.c_int, [ctypes.c_int])
        rank = self._function(lib, f"{kind}_rank", ctypes.c_int, [ctypes.c_int])
        shape = self._function(lib, f"{kind}_shape", ctypes.POINTER(ctypes.c_int64), [ctypes.c_int])
        return [(name(i).decode(), _DTYPES[dtype(i)], tuple(shape(i)[k] for k in range(rank(i))))
                for i in range(count)]

    def _error(self) -> str:
        return (self._last_error() or b"").decode(errors="replace")

    def _session(self) -> int:
        """The calling thread's session (created on its first call)."""
        session = getattr(self._local, "session", None)
        if session is None:
            self._load()
            if self.weight_path is not None and not os.path.isfile(self.weight_path):
                raise FileNotFoundError(f"the weight file {self.weight_path} of model '{self.name}' does not exist "
                                        "(pass weights= to load_library)")
            path = os.fsencode(self.weight_path) if self.weight_path else None
            handle = self._create(path, self._requested_max_batch or 0)  # the C API checks it
            if not handle:
                raise InferenceError(self._error())
            session = self._local.session = _Session(handle, self._destroy)
            if self.max_batch is None:
                self.max_batch = int(self._session_max_batch(handle))
        return session.handle

    # -- running --------------------------------------------------------------------------------------
    def __call__(self, *arrays: Any) -> list[np.ndarray]:
        """Run the model; returns one array per output, batch first (when the model has a batch)."""
        handle = self._session()
        if len(arrays) != len(self.inputs):
            raise TypeError(f"model '{self.name}' takes {len(self.inputs)} input(s) "
                            f"({', '.join(n for n, _, _ in self.inputs)}), got {len(arrays)}")
        batch = None
        contiguous = []
        for array, (name, dtype, shape) in zip(arrays, self.inputs):
            array = np.asarray(array)
            if array.dtype != dtype:
                raise TypeError(f"input '{name}' of model '{self.name}' has dtype {array.dtype}, the library takes "
                                f"{dtype.name}")
            expected = ("batch", *shape) if self.has_batch else shape
            if array.ndim != len(expected) or array.shape[array.ndim - len(shape):] != shape:
                raise ValueError(f"input '{name}' of model '{self.name}' has shape {array.shape}, expected "
                                 f"{tuple(expected)}")
            if self.has_batch:
                if batch is not None and array.shape[0] != batch:
                    raise ValueError(f"input '{name}' of model '{self.name}' has batch {array.shape[0]}, the inputs "
                                     f"before it {batch}")
                batch = array.shape[0]
            contiguous.append(np.ascontiguousarray(array))
        batch = 1 if batch is None else batch
        if self.dynamic_batch and not 1 <= batch <= self.max_batch:
            raise ValueError(f"batch {batch} is out of range: model '{self.name}' was loaded for batches 1 to "
                             f"{self.max_batch} (max_batch=)")
        if not self.dynamic_batch and batch != self.max_batch:
            raise ValueError(f"batch {batch}: model '{self.name}' runs the fixed batch {self.max_batch}")
        outputs = [np.empty(((batch,) if self.has_batch else ()) + shape, dtype) for _, dtype, shape in self.outputs]
        input_pointers = (ctypes.c_void_p * max(1, len(contiguous)))(*[a.ctypes.data for a in contiguous])
        output_pointers = (ctypes.c_void_p * len(outputs))(*[o.ctypes.data for o in outputs])
        status = self._infer(handle, batch, input_pointers, output_pointers)  # the GIL is released here
        if status != 0:
            raise InferenceError(self._error())
        return outputs
