"""Load a compiled harness library with ctypes and run the Session through it: CompiledModel.

The library (runtime/templates/harness.cpp.in, built by runtime/build.py) exports a small extern "C"
API (j2s_create, j2s_infer, ...). A library is loaded once per process and path; its tensor types
are checked against the caller's TensorSpecs before anything runs, so a wrong dtype is an error
naming the tensor, not wrong numbers.
"""
from __future__ import annotations

import ctypes
import os
import threading
import time
from typing import Sequence

import numpy as np

from .compare import CheckReport, compare
from .harness import HARNESS_ABI_VERSION

__all__ = ["CompiledModel", "HarnessLibrary", "InferenceError"]


class InferenceError(RuntimeError):
    """The Session constructor or ``Session::infer`` failed (C++ exception) or gave unexpected sizes."""



_libs_lock = threading.Lock()
_libs: dict = {}


def _load_library(path: str) -> ctypes.CDLL:
    with _libs_lock:
        lib = _libs.get(path)
        if lib is not None:
            return lib
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 2))
        c_int, c_int64_p, c_void_p = ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_void_p
        c_int_p = ctypes.POINTER(ctypes.c_int)
        for name in ("j2s_abi_version", "j2s_num_shape_params", "j2s_num_inputs", "j2s_num_outputs",
                     "j2s_ctor_takes_path"):
            getattr(lib, name).restype = c_int
            getattr(lib, name).argtypes = []
        for name in ("j2s_input_type", "j2s_output_type"):
            getattr(lib, name).restype = None
            getattr(lib, name).argtypes = [c_int, c_int_p, c_int_p]
        lib.j2s_create.restype = c_void_p
        lib.j2s_create.argtypes = [ctypes.c_char_p, c_int64_p, ctypes.c_char_p, ctypes.c_size_t]
        lib.j2s_infer.restype = c_int
        lib.j2s_infer.argtypes = [c_void_p, c_int64_p, ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p),
                                  c_int64_p, c_int64_p, c_int, ctypes.c_char_p, ctypes.c_size_t]
        lib.j2s_destroy.restype = None
        lib.j2s_destroy.argtypes = [c_void_p]
        _libs[path] = lib
        return lib


def _kind_ok(dtype: np.dtype, kind: int, size: int) -> bool:
    k = chr(kind) if kind else "?"
    if dtype.kind == "b":
        return size == 1 and k in "bu"
    if dtype.kind == "u" and size == 1 and k == "b":
        return True
    return dtype.kind == k and dtype.itemsize == size


def _ctype_name(kind: int, size: int) -> str:
    k = chr(kind) if kind else "?"
    return {"f": f"float{size * 8}", "i": f"int{size * 8}", "u": f"uint{size * 8}", "b": "bool"}.get(
        k, f"<unknown {size}-byte type>")


class HarnessLibrary:
    """A loaded harness library plus its metadata (shared by CompiledModels of one header)."""

    def __init__(self, path: str, header_path: str, inputs, outputs):
        self.path = path
        self.lib = _load_library(path)
        lib = self.lib
        abi = lib.j2s_abi_version()
        if abi != HARNESS_ABI_VERSION:
            raise RuntimeError(f"{path}: harness ABI {abi}, expected {HARNESS_ABI_VERSION}")
        self.ctor_takes_path = bool(lib.j2s_ctor_takes_path())
        k, s = ctypes.c_int(), ctypes.c_int()
        problems = []
        for i, spec in enumerate(inputs):
            lib.j2s_input_type(i, ctypes.byref(k), ctypes.byref(s))
            if not _kind_ok(spec.dtype, k.value, s.value):
                problems.append(f"input {i} {spec.name!r}: spec dtype {spec.dtype}, but Session::infer takes "
                                f"{_ctype_name(k.value, s.value)}")
        n_out = lib.j2s_num_outputs()
        if n_out >= 0 and n_out != len(outputs):
            problems.append(f"Session::infer returns {n_out} outputs but {len(outputs)} output specs were given")
        for i, spec in enumerate(outputs):
            if n_out >= 0 and i >= n_out:
                break
            lib.j2s_output_type(i, ctypes.byref(k), ctypes.byref(s))
            if not _kind_ok(spec.dtype, k.value, s.value):
                problems.append(f"output {i} {spec.name!r}: spec dtype {spec.dtype}, but Session::infer returns "
                                f"{_ctype_name(k.value, s.value)}")
        if problems:
            raise ValueError(f"tensor specs do not match the generated code in {header_path}:\n  "
                             + "\n  ".join(problems))



class CompiledModel:
    """A compiled SOFIE model, callable from Python.

    Attributes: ``name``, ``header_path``, ``weight_path`` (str or None), ``inputs``, ``outputs``
    (lists of :class:`TensorSpec`), ``shape_params`` (tuple of names), ``library_path``,
    ``compile_seconds`` (time spent in :func:`compile_model`), ``cached`` (library came from the
    cache), ``signature`` (:class:`SessionSignature`), ``last_run_seconds``.
    """

    def __init__(self, library: HarnessLibrary, name, header_path, weight_path, inputs, outputs, shape_params,
                 signature, compile_seconds, cached, command=None):
        self._library = library
        self.name = name
        self.header_path = header_path
        self.weight_path = weight_path
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.shape_params = tuple(shape_params)
        self.signature = signature
        self.compile_seconds = compile_seconds
        self.cached = cached
        self.command = command
        self.library_path = library.path
        self.last_run_seconds = 0.0
        self._sessions: dict = {}
        self._lock = threading.RLock()

    def __repr__(self):
        return (f"CompiledModel({self.name!r}, inputs={[s.name for s in self.inputs]}, "
                f"outputs={[s.name for s in self.outputs]}, shape_params={list(self.shape_params)}, "
                f"cached={self.cached})")

    # -- sessions ----------------------------------------------------------------------------
    def with_weights(self, weight_path) -> "CompiledModel":
        """The same compiled code, with Sessions reading another weight file."""
        return CompiledModel(self._library, self.name, self.header_path,
                             None if weight_path is None else os.path.abspath(os.fspath(weight_path)),
                             self.inputs, self.outputs, self.shape_params, self.signature, self.compile_seconds,
                             self.cached, self.command)

    def _session(self, values: tuple):
        with self._lock:
            h = self._sessions.get(values)
            if h is not None:
                return h
            lib = self._library.lib
            sp = (ctypes.c_int64 * max(1, len(values)))(*values)
            err = ctypes.create_string_buffer(4096)
            path = os.fsencode(self.weight_path) if self.weight_path else b""
            h = lib.j2s_create(path, sp, err, len(err))
            if not h:
                msg = err.value.decode(errors="replace")
                hint = ""
                if not self.weight_path and self.signature.default_weight_file:
                    hint = (f" (no weight file was given; the header reads "
                            f"{self.signature.default_weight_file!r}: pass weight_path to compile_model)")
                raise InferenceError(f"creating SOFIE_{self.name}::Session failed: {msg}{hint}")
            self._sessions[values] = h
            return h

    def close(self):
        """Destroy the Sessions (the library stays loaded)."""
        with self._lock:
            sessions, self._sessions = self._sessions, {}
        for h in sessions.values():
            try:
                self._library.lib.j2s_destroy(h)
            except Exception:  # pragma: no cover - interpreter shutdown
                pass

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover
            pass

    # -- running -----------------------------------------------------------------------------
    def resolve_shape_params(self, arrays: Sequence[np.ndarray], given: dict) -> dict:
        """Shape-parameter values: the given ones, the rest read from the inputs' shapes."""
        unknown = [k for k in given if k not in self.shape_params]
        if unknown:
            raise TypeError(f"unknown shape parameter(s) {unknown}; the model has {list(self.shape_params)}")
        values = {}
        for k, v in given.items():
            if int(v) != v or v < 0:
                raise ValueError(f"shape parameter {k}={v!r} must be a non-negative integer")
            values[k] = int(v)
        for spec, a in zip(self.inputs, arrays):
            if a.ndim != len(spec.shape):
                raise ValueError(f"input {spec.name!r}: got {a.ndim}-d array of shape {a.shape}, expected shape "
                                 f"{spec.shape}")
            for d, n in zip(spec.shape, a.shape):
                if isinstance(d, str) and d.strip().isidentifier() and d.strip() not in values:
                    values[d.strip()] = int(n)
        missing = [p for p in self.shape_params if p not in values]
        if missing:
            raise ValueError(f"no value for shape parameter(s) {missing}: pass them as keyword arguments")
        return values

    def run(self, *arrays, **shape_params) -> list:
        """Run inference; returns one numpy array per output spec (shapes from the specs).

        Shape parameters not given as keywords are taken from the inputs' shapes. A Session
        is created (sized for these values) the first time a combination is seen and reused.
        """
        if len(arrays) != len(self.inputs):
            raise TypeError(f"{self.name}: expected {len(self.inputs)} input arrays "
                            f"({', '.join(s.name for s in self.inputs)}), got {len(arrays)}")
        arrs = [np.asarray(a) for a in arrays]
        for spec, a in zip(self.inputs, arrs):
            if a.dtype != spec.dtype:
                raise TypeError(f"input {spec.name!r}: dtype {a.dtype}, expected {spec.dtype}")
        values = self.resolve_shape_params(arrs, shape_params)
        for i, (spec, a) in enumerate(zip(self.inputs, arrs)):
            want = spec.resolve(values)
            if a.shape != want:
                raise ValueError(f"input {spec.name!r}: shape {a.shape}, expected {want} (spec {spec.shape}, "
                                 f"shape params {values})")
            arrs[i] = np.ascontiguousarray(a)
        outs = [np.empty(spec.resolve(values), dtype=spec.dtype) for spec in self.outputs]
        vals = tuple(values[p] for p in self.shape_params)

        lib = self._library.lib
        n_in, n_out = len(arrs), len(outs)
        in_ptrs = (ctypes.c_void_p * max(1, n_in))(*[a.ctypes.data for a in arrs])
        out_ptrs = (ctypes.c_void_p * max(1, n_out))(*[o.ctypes.data for o in outs])
        caps = (ctypes.c_int64 * max(1, n_out))(*[o.size for o in outs])
        sizes = (ctypes.c_int64 * max(1, n_out))(*([-1] * n_out))
        sp = (ctypes.c_int64 * max(1, len(vals)))(*vals)
        err = ctypes.create_string_buffer(4096)
        with self._lock:
            h = self._session(vals)
            t0 = time.perf_counter()
            rc = lib.j2s_infer(h, sp, in_ptrs, out_ptrs, caps, sizes, n_out, err, len(err))
            self.last_run_seconds = time.perf_counter() - t0
        if rc != 0:
            msg = err.value.decode(errors="replace")
            if rc == 1:
                got = ", ".join(f"{s.name}: {sizes[i]} (spec {o.shape} = {o.size})"
                                for i, (s, o) in enumerate(zip(self.outputs, outs)))
                msg += f"; output sizes {got}"
            raise InferenceError(f"SOFIE_{self.name}::Session::infer failed: {msg}")
        for i, (spec, o) in enumerate(zip(self.outputs, outs)):
            if sizes[i] != o.size:
                raise InferenceError(f"output {spec.name!r}: SOFIE produced {sizes[i]} elements, but the spec shape "
                                     f"{spec.shape} resolves to {o.shape} = {o.size} elements")
        return outs

    __call__ = run

    def check(self, expected, *arrays, rtol=1e-4, atol=1e-5, **shape_params) -> "CheckReport":
        """Run on ``arrays`` and :func:`compare` the outputs with ``expected``."""
        actual = self.run(*arrays, **shape_params)
        return compare(expected, actual, rtol=rtol, atol=atol, names=[s.name for s in self.outputs],
                       compile_seconds=self.compile_seconds, run_seconds=self.last_run_seconds, cached=self.cached)

