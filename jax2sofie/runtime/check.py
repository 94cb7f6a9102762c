"""Compile SOFIE-generated C++ code, run it from Python and compare with reference outputs.

>>> model = compile_model("out/mlp.hxx", "out/mlp.dat", "mlp",
...                       inputs=[TensorSpec("x", np.float32, ("bs", 4))],
...                       outputs=[TensorSpec("y", np.float32, ("bs", 3))])
>>> (y,) = model.run(x)                # bs taken from x.shape[0] (or pass bs=...)
>>> report = compare([y_ref], [y])     # or model.check([y_ref], x)
>>> assert report, str(report)

Compiled libraries are cached in ``$JAX2SOFIE_CACHE_DIR`` (default
``${XDG_CACHE_HOME:-~/.cache}/jax2sofie/compiled``), keyed by a hash of the header bytes, the
harness source, the compiler identity and all flags. The weight file is *not* part of the key:
its path is given when a Session is created, so new weights reuse the compiled library
(headers generated with ``kNoWeightFile`` embed the weights, and the header is in the key).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import os
import re
import subprocess
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .harness import (
    HARNESS_ABI_VERSION,
    SessionSignature,
    TensorSpec,
    conventional_signature,
    generate_harness_source,
    parse_session_signature,
)
from .toolchain import Compiler, ToolchainError, find_blas, find_compiler

__all__ = [
    "CompileError",
    "InferenceError",
    "CompiledModel",
    "CheckReport",
    "OutputDetail",
    "compile_model",
    "compare",
    "default_cache_dir",
]

_BASE_FLAGS = ("-O2", "-shared", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden")
_STD_ATTEMPTS = ("-std=c++17", "-std=c++20")  # SOFIE headers need C++17 (string_view, if constexpr)
_STDERR_LINES = 40
_HEADER_COPY = "sofie_model.hxx"


class CompileError(RuntimeError):
    """The generated header (with the harness) does not compile.

    Attributes: ``header_path``, ``command`` (argv), ``stderr`` (full compiler output).
    """

    def __init__(self, message, header_path=None, command=None, stderr=""):
        super().__init__(message)
        self.header_path = header_path
        self.command = command
        self.stderr = stderr


class InferenceError(RuntimeError):
    """The Session constructor or ``Session::infer`` failed (C++ exception) or gave unexpected sizes."""


def default_cache_dir() -> Path:
    """``$JAX2SOFIE_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/jax2sofie/compiled``."""
    env = os.environ.get("JAX2SOFIE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "jax2sofie" / "compiled"


# ---------------------------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------------------------

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


class _Library:
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


# ---------------------------------------------------------------------------------------------
# CompiledModel
# ---------------------------------------------------------------------------------------------


class CompiledModel:
    """A compiled SOFIE model, callable from Python.

    Attributes: ``name``, ``header_path``, ``weight_path`` (str or None), ``inputs``, ``outputs``
    (lists of :class:`TensorSpec`), ``shape_params`` (tuple of names), ``library_path``,
    ``compile_seconds`` (time spent in :func:`compile_model`), ``cached`` (library came from the
    cache), ``signature`` (:class:`SessionSignature`), ``last_run_seconds``.
    """

    def __init__(self, library: _Library, name, header_path, weight_path, inputs, outputs, shape_params,
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


# ---------------------------------------------------------------------------------------------
# compile_model
# ---------------------------------------------------------------------------------------------


def _first_lines(text: str, n: int = _STDERR_LINES) -> str:
    lines = text.rstrip().splitlines()
    out = "\n".join(lines[:n])
    if len(lines) > n:
        out += f"\n... ({len(lines) - n} more lines)"
    return out


def _detect_model_name(text: str, header_path) -> str:
    names = list(dict.fromkeys(re.findall(r"\bnamespace\s+SOFIE_(\w+)\s*\{", text)))
    if len(names) != 1:
        raise ValueError(f"cannot tell the model name of {header_path}: namespaces SOFIE_* found: {names}")
    return names[0]


def compile_model(
    header_path,
    weight_path,
    model_name: Optional[str],
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    shape_params: Sequence[str] = (),
    extra_flags: Sequence[str] = (),
    *,
    cache_dir=None,
) -> CompiledModel:
    """Compile the SOFIE header ``header_path`` with the harness into a cached shared library.

    ``weight_path``: the weight file (.dat / .safetensors) Sessions read, or None: then the
    file named by the constructor's default argument is used if it exists next to the header,
    else "" is passed (fine for kNoWeightFile headers and models without weights).
    ``model_name``: the ``SOFIE_<model_name>`` namespace (None: detect it).
    ``shape_params``: names of the dynamic dims (default: read from the header).
    Raises :class:`ToolchainError`, :class:`CompileError`, ValueError for inconsistent specs.
    """
    t0 = time.perf_counter()
    header_path = Path(header_path)
    header_bytes = header_path.read_bytes()
    text = header_bytes.decode("utf-8", errors="replace")
    if model_name is None:
        model_name = _detect_model_name(text, header_path)
    if f"SOFIE_{model_name}" not in text:
        found = list(dict.fromkeys(re.findall(r"\bnamespace\s+SOFIE_(\w+)", text)))
        raise ValueError(f"{header_path} has no namespace SOFIE_{model_name} (found: {found})")
    inputs = [s if isinstance(s, TensorSpec) else TensorSpec(*s) for s in inputs]
    outputs = [s if isinstance(s, TensorSpec) else TensorSpec(*s) for s in outputs]
    shape_params = list(shape_params)

    sig = parse_session_signature(text, model_name)
    if sig is None:
        warnings.warn(f"could not read Session's constructor/infer signature from {header_path}; "
                      "assuming SOFIE's conventions", RuntimeWarning, stacklevel=2)
        sig = conventional_signature(inputs, shape_params)
    else:
        if sig.n_infer_inputs != len(inputs):
            raise ValueError(f"{header_path}: Session::infer takes {sig.n_infer_inputs} input tensors but "
                             f"{len(inputs)} input specs were given")
        if shape_params and set(shape_params) != set(sig.shape_params):
            raise ValueError(f"{header_path}: the Session has shape parameters {sig.shape_params}, "
                             f"but shape_params={shape_params} were given")
    canonical = shape_params or list(sig.shape_params)
    for spec in list(inputs) + list(outputs):
        extra = [s for s in spec.symbols() if s not in canonical]
        if extra:
            raise ValueError(f"tensor {spec.name!r} uses shape parameter(s) {extra} that the model does not "
                             f"have (it has {canonical})")

    if weight_path is None and sig.default_weight_file:
        cand = header_path.parent / sig.default_weight_file
        if cand.is_file():
            weight_path = cand
    if weight_path is not None:
        weight_path = os.path.abspath(os.fspath(weight_path))

    compiler = find_compiler()
    blas = find_blas(compiler)
    harness_src = generate_harness_source(model_name, _HEADER_COPY, canonical, sig, len(inputs))
    extra_flags = tuple(extra_flags)
    user_std = any(f.startswith("-std=") for f in extra_flags)
    std_attempts = ("",) if user_std else _STD_ATTEMPTS

    h = hashlib.sha256()
    for part in (b"jax2sofie-harness", str(HARNESS_ABI_VERSION).encode(), header_bytes, harness_src.encode(),
                 compiler.identity.encode(), " ".join(compiler.command).encode(), repr(_BASE_FLAGS).encode(),
                 repr(std_attempts).encode(), repr(tuple(blas)).encode(), repr(extra_flags).encode()):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    key = h.hexdigest()[:24]

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    lib_path = cache / f"{model_name}-{key}.so"
    command = None
    cached = lib_path.is_file()
    if not cached:
        command = _build(compiler, blas, header_path, header_bytes, harness_src, lib_path, std_attempts,
                         extra_flags)
    library = _Library(str(lib_path), str(header_path), inputs, outputs)
    return CompiledModel(library, model_name, str(header_path), weight_path, inputs, outputs, canonical, sig,
                         time.perf_counter() - t0, cached, command)


def _build(compiler: Compiler, blas, header_path: Path, header_bytes: bytes, harness_src: str, lib_path: Path,
           std_attempts, extra_flags) -> list:
    with tempfile.TemporaryDirectory(prefix="jax2sofie-build-") as d:
        hdr = os.path.join(d, _HEADER_COPY)
        src = os.path.join(d, "harness.cpp")
        with open(hdr, "wb") as f:
            f.write(header_bytes)
        with open(src, "w") as f:
            f.write(harness_src)
        fd, tmp_out = tempfile.mkstemp(prefix=f".{lib_path.stem}-", suffix=".so.tmp", dir=str(lib_path.parent))
        os.close(fd)
        failures = []
        try:
            for std in std_attempts:
                cmd = (list(compiler.command) + list(_BASE_FLAGS) + ([std] if std else [])
                       + [f"-I{header_path.parent.resolve()}", src, "-o", tmp_out] + list(blas) + list(extra_flags))
                try:
                    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         timeout=1800, cwd=d)
                except FileNotFoundError as e:
                    raise ToolchainError(f"cannot run the C++ compiler {compiler.command}: {e}") from None
                if res.returncode == 0:
                    os.replace(tmp_out, lib_path)
                    return cmd
                failures.append((std, cmd, res.stdout.replace(hdr, str(header_path))))
        finally:
            if os.path.exists(tmp_out):
                os.unlink(tmp_out)
    std, cmd, out = failures[0]
    also = ""
    if len(failures) > 1:
        also = f"\n(also failed with {', '.join(s for s, _, _ in failures[1:])})"
    raise CompileError(
        f"compiling the SOFIE header {header_path} failed with {compiler.version} ({std or 'user -std'}):\n"
        f"{_first_lines(out)}{also}\ncommand: {' '.join(cmd)}",
        header_path=str(header_path), command=cmd, stderr=out)


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------


@dataclass
class OutputDetail:
    """Comparison of one output. ``worst_index``: the element violating the tolerance most
    (largest ``|a-e| / (atol + rtol*|e|)``; for exact dtypes the largest ``|a-e|``), None if empty
    or incomparable. ``reason``: why it failed (None when passed)."""

    name: str
    shape: tuple
    dtype: str
    max_abs_error: float
    max_rel_error: float
    passed: bool
    worst_index: Optional[tuple] = None
    expected_value: object = None
    actual_value: object = None
    n_mismatched: int = 0
    reason: Optional[str] = None
    # max |a - e| over the finite expected values, divided by the output's scale max |e| (see SCALE_BUDGET)
    max_scaled_error: float = 0.0

    def __str__(self):
        head = f"{self.name} {self.dtype}{list(self.shape)}"
        if self.worst_index is None and not math.isfinite(self.max_abs_error):
            body = ""
        else:
            body = (f" max abs {self.max_abs_error:.3g}, max rel {self.max_rel_error:.3g}, "
                    f"max abs/scale {self.max_scaled_error:.3g}")
            if self.worst_index is not None and (not self.passed or self.max_abs_error > 0):
                body += (f", worst at {self.worst_index}: expected {self.expected_value!r}, "
                         f"got {self.actual_value!r}")
        status = "ok" if self.passed else f"FAIL: {self.reason}"
        return f"{head}:{body} -> {status}"


# The error budget of a whole model: max |got - expected| <= SCALE_BUDGET * max |expected|, per output,
# over its finite values (max_scaled_error). An error relative to the output's scale, not to each
# element: an element near zero that is the sum of large terms (a residual, a normalised activation)
# carries the rounding of those terms, so a per-element relative error says little of a deep model,
# while an error relative to the largest output does not grow with depth unless the computation
# really drifts. The largest value, not the RMS: a sparse output (softmax, a one-hot-like sigmoid) has
# a small RMS next to the values that matter. Checked by the whole-model tests; check() reports it.
SCALE_BUDGET = 1e-5


@dataclass
class CheckReport:
    """Result of :func:`compare`; truthy when every output passed. ``max_scaled_error``: the largest
    output's max_scaled_error (see SCALE_BUDGET); not part of ``passed``, which is rtol/atol."""

    passed: bool
    max_abs_error: float
    max_rel_error: float
    outputs: list = field(default_factory=list)
    compile_seconds: float = 0.0
    run_seconds: float = 0.0
    cached: bool = False
    rtol: float = 1e-4
    atol: float = 1e-5
    max_scaled_error: float = 0.0

    @property
    def within_budget(self) -> bool:
        """Every output within the error budget max |got - expected| <= SCALE_BUDGET * max |expected|."""
        return self.max_scaled_error <= SCALE_BUDGET

    def __bool__(self):
        return bool(self.passed)

    @property
    def failures(self) -> list:
        return [o for o in self.outputs if not o.passed]

    def __str__(self):
        status = "PASSED" if self.passed else f"FAILED ({len(self.failures)} of {len(self.outputs)} outputs)"
        lines = [
            f"{status}: max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} "
            f"(rtol={self.rtol:g}, atol={self.atol:g}), max abs error / output scale {self.max_scaled_error:.3g} "
            f"(budget {SCALE_BUDGET:g}{'' if self.within_budget else ': EXCEEDED'}); compile {self.compile_seconds:.2f}s"
            f"{' (cached)' if self.cached else ''}, run {self.run_seconds * 1e3:.3f} ms"
        ]
        lines += [f"  [{i}] {o}" for i, o in enumerate(self.outputs)]
        return "\n".join(lines)


def _scalar(x):
    try:
        return x.item()
    except Exception:  # pragma: no cover
        return x


def _compare_one(name, e: np.ndarray, a: np.ndarray, rtol: float, atol: float) -> OutputDetail:
    inf = math.inf
    if e.shape != a.shape:
        return OutputDetail(name, tuple(a.shape), str(a.dtype), inf, inf, False,
                            reason=f"shape mismatch: expected {tuple(e.shape)}, got {tuple(a.shape)}", max_scaled_error=inf)
    reasons = []
    if e.dtype != a.dtype:
        reasons.append(f"dtype mismatch: expected {e.dtype}, got {a.dtype}")
    numeric = all(x.dtype.kind in "biuf" for x in (e, a))
    if not numeric:
        ok = bool(np.array_equal(e, a))
        if not ok:
            reasons.append("values differ (non-numeric dtype)")
        return OutputDetail(name, tuple(a.shape), str(a.dtype), 0.0 if ok else inf, 0.0 if ok else inf,
                            ok and not reasons, reason="; ".join(reasons) or None,
                            max_scaled_error=0.0 if ok else inf)
    if e.size == 0:
        return OutputDetail(name, tuple(a.shape), str(a.dtype), 0.0, 0.0, not reasons,
                            reason="; ".join(reasons) or None)

    inexact = e.dtype.kind == "f" or a.dtype.kind == "f"
    with np.errstate(all="ignore"):
        if inexact:
            ef, af = e.astype(np.float64), a.astype(np.float64)  # the generated code has no complex numbers
            nan_e, nan_a = np.isnan(ef), np.isnan(af)
            same = (ef == af) | (nan_e & nan_a)  # also inf == inf
            diff = np.where(same, 0.0, np.abs(af - ef))
            diff = np.where(np.isnan(diff), inf, diff)  # NaN vs number, inf vs -inf
            mag = np.abs(ef)
            tol = atol + rtol * np.where(np.isfinite(mag), mag, 0.0)
            bad = ~same & ((diff > tol) | ~np.isfinite(diff) | np.isinf(mag))
            nan_mismatch = nan_e != nan_a
            score = np.where(tol > 0, diff / np.where(tol > 0, tol, 1.0), np.where(diff > 0, inf, 0.0))
        else:
            ef, af = e.astype(np.float64), a.astype(np.float64)
            bad = e != a
            diff = np.abs(af - ef)
            diff = np.where(bad, np.maximum(diff, np.finfo(np.float64).tiny), 0.0)
            mag = np.abs(ef)
            nan_mismatch = None
            score = np.where(bad, diff, -1.0)
        rel = np.where(diff == 0, 0.0, np.where(mag > 0, diff / np.where(mag > 0, mag, 1.0), inf))
        rel = np.where(np.isnan(rel), inf, rel)

    flat = int(np.nanargmax(np.where(np.isnan(score), inf, score)))
    worst = tuple(int(i) for i in np.unravel_index(flat, e.shape))
    n_bad = int(np.count_nonzero(bad))
    first_bad = None
    if n_bad:
        first_bad = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), e.shape))
    if nan_mismatch is not None and nan_mismatch.any():
        k = int(np.count_nonzero(nan_mismatch))
        fi = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(nan_mismatch)[0]), e.shape))
        reasons.append(f"NaN pattern differs at {k} element(s) (first at {fi})")
    if n_bad:
        what = "exceed the tolerance" if inexact else "differ (exact comparison)"
        reasons.append(f"{n_bad} of {e.size} element(s) {what} (first at {first_bad})")
    return OutputDetail(
        name, tuple(a.shape), str(a.dtype), float(np.max(diff)) if e.size else 0.0,
        float(np.max(rel)) if e.size else 0.0, not reasons, worst, _scalar(e[worst]), _scalar(a[worst]), n_bad,
        "; ".join(reasons) or None, _scaled_error(ef, diff, mag))


def _scaled_error(expected: np.ndarray, diff: np.ndarray, mag: np.ndarray) -> float:
    """max |a - e| / max |e| over the finite expected values (SCALE_BUDGET); 0 when they all match exactly,
    inf for an all-zero output that does not."""
    finite = np.isfinite(expected)
    if not finite.any():
        return 0.0
    worst, scale = float(np.max(diff[finite])), float(np.max(mag[finite]))
    if worst == 0:
        return 0.0
    return worst / scale if scale > 0 else math.inf


def compare(expected, actual, rtol: float = 1e-4, atol: float = 1e-5, *, names=None, compile_seconds: float = 0.0,
            run_seconds: float = 0.0, cached: bool = False) -> CheckReport:
    """Compare reference outputs with the SOFIE ones.

    Floating outputs pass when ``|a - e| <= atol + rtol*|e|`` everywhere (NaN must match NaN,
    inf must match the same inf); integer and bool outputs must be equal. Different shapes,
    dtypes or number of outputs fail. A single array may be given instead of a list.
    """
    if isinstance(expected, np.ndarray) or np.isscalar(expected):
        expected = [expected]
    if isinstance(actual, np.ndarray) or np.isscalar(actual):
        actual = [actual]
    expected = [np.asarray(x) for x in expected]
    actual = [np.asarray(x) for x in actual]
    n = max(len(expected), len(actual))
    names = list(names) if names is not None else []
    names += [f"output{i}" for i in range(len(names), n)]
    details = []
    for i in range(n):
        if i >= len(actual):
            e = expected[i]
            details.append(OutputDetail(names[i], tuple(e.shape), str(e.dtype), math.inf, math.inf, False,
                                        reason="missing: no actual output", max_scaled_error=math.inf))
        elif i >= len(expected):
            a = actual[i]
            details.append(OutputDetail(names[i], tuple(a.shape), str(a.dtype), math.inf, math.inf, False,
                                        reason="unexpected extra actual output",
                                        max_scaled_error=math.inf))
        else:
            details.append(_compare_one(names[i], expected[i], actual[i], rtol, atol))
    max_abs = max((d.max_abs_error for d in details), default=0.0)
    max_rel = max((d.max_rel_error for d in details), default=0.0)
    max_scaled = max((d.max_scaled_error for d in details), default=0.0)
    return CheckReport(all(d.passed for d in details), max_abs, max_rel, details, compile_seconds, run_seconds, cached,
                       rtol, atol, max_scaled)
