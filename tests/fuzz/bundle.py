"""Many converted models compiled into one shared library: one compiler run instead of one per model.

Each model's header is written into a folder of its own; one C++ file includes every header and, per
model, the runtime's harness (jax2sofie/runtime/harness.py) with its names made unique: the harness
namespace becomes `j2s_harness_<name>` and each `extern "C"` entry `j2s_<name>_<entry>` (create,
infer, destroy, ...). The headers can share a translation unit because each has its own namespace
`SOFIE_<name>` and include guard.

A BundledModel runs one model of the library through ctypes; a Session is created for a maximum batch
and `infer` may then run any batch up to it, as a user of a dynamic-batch model does.
"""
from __future__ import annotations

import ctypes
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jax2sofie.runtime import TensorSpec, find_blas, find_compiler
from jax2sofie.runtime.harness import generate_harness_source, parse_session_signature

FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden")
_ENTRIES = ("abi_version", "num_shape_params", "num_inputs", "num_outputs", "ctor_takes_path", "input_type",
            "output_type", "create", "infer", "destroy")


class BundleError(RuntimeError):
    """A bundle failed to compile; `names` are the models in it."""

    def __init__(self, message: str, names: list[str]):
        super().__init__(message)
        self.names = names


@dataclass
class _Entry:
    name: str
    header: Path
    weights: Path | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    shape_params: list[str]


def _harness_for(entry: _Entry, include: str) -> tuple[str, str]:
    """(includes, body) of the runtime's harness for one model, its names made unique to the model."""
    text = entry.header.read_text()
    signature = parse_session_signature(text, entry.name)
    if signature is None:
        raise ValueError(f"cannot read the Session signature of {entry.header}")
    entry.shape_params = list(signature.shape_params)
    source = generate_harness_source(entry.name, include, entry.shape_params, signature, len(entry.inputs))
    head, sep, body = source.partition("namespace j2s_harness {")
    assert sep, "the runtime's harness template changed: no `namespace j2s_harness {`"
    body = sep + body
    body = body.replace("j2s_harness", f"j2s_harness_{entry.name}")
    body = re.sub(r"\bj2s_(" + "|".join(_ENTRIES) + r")\b", rf"j2s_{entry.name}_\1", body)
    # the entries sit after a `using namespace`: scope it, so that the next model's names do not clash
    using = f"using namespace j2s_harness_{entry.name};"
    body = body.replace(using, f"namespace j2s_entries_{entry.name} {{\n{using}") + "\n}\n"
    return head, body


def write_bundle_source(entries: list[_Entry], directory: Path) -> Path:
    heads, bodies = [], []
    for entry in entries:
        head, body = _harness_for(entry, f"{entry.name}/{entry.header.name}")
        heads.append(head)
        bodies.append(body)
    source = directory / "bundle.cpp"
    source.write_text("".join(heads) + "".join(bodies))  # heads: standard includes and the model's header
    return source


def compile_bundle(models: dict, directory: Path) -> dict[str, "BundledModel"]:
    """Write and compile the ConvertedModels `models` (name -> model) into `directory`/bundle.so.
    Raises BundleError with the compiler's output when it fails."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, model in models.items():
        paths = model.write(directory / name, force=True)
        header = next(p for p in paths if p.suffix == ".hxx")
        weights = next((p for p in paths if p.suffix != ".hxx"), None)
        entries.append(_Entry(name, header, weights,
                              [TensorSpec(v.name, v.dtype, v.shape) for v in model.graph.inputs],
                              [TensorSpec(v.name, v.dtype, v.shape) for v in model.graph.outputs], []))
    source = write_bundle_source(entries, directory)
    library = directory / "bundle.so"
    compiler = find_compiler()
    command = [*compiler.command, *FLAGS, f"-I{directory}", str(source), "-o", str(library),
               *find_blas(compiler)]
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise BundleError(f"compiling {source} failed:\n{run.stderr[-6000:]}", list(models))
    lib = ctypes.CDLL(str(library), mode=os.RTLD_LOCAL | os.RTLD_NOW)
    return {e.name: BundledModel(lib, e) for e in entries}


class BundledModel:
    """One model of a compiled bundle."""

    def __init__(self, lib: ctypes.CDLL, entry: _Entry):
        self.name = entry.name
        self.entry = entry
        c_void_p, c_int64_p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)
        self._create = getattr(lib, f"j2s_{entry.name}_create")
        self._create.restype = c_void_p
        self._create.argtypes = [ctypes.c_char_p, c_int64_p, ctypes.c_char_p, ctypes.c_size_t]
        self._infer = getattr(lib, f"j2s_{entry.name}_infer")
        self._infer.restype = ctypes.c_int
        self._infer.argtypes = [c_void_p, c_int64_p, ctypes.POINTER(c_void_p), ctypes.POINTER(c_void_p), c_int64_p,
                                c_int64_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
        self._destroy = getattr(lib, f"j2s_{entry.name}_destroy")
        self._destroy.restype = None
        self._destroy.argtypes = [c_void_p]

    def session(self, **shape_values) -> "Session":
        """A Session sized for `shape_values` (the maximum batch `bs=...` of a dynamic model)."""
        return Session(self, shape_values)


class Session:
    def __init__(self, model: BundledModel, shape_values: dict):
        self.model = model
        values = self._values(shape_values)
        err = ctypes.create_string_buffer(4096)
        weights = os.fsencode(model.entry.weights) if model.entry.weights else b""
        self._handle = model._create(weights, values, err, len(err))
        if not self._handle:
            raise RuntimeError(f"creating SOFIE_{model.name}::Session failed: {err.value.decode(errors='replace')}")

    def _values(self, shape_values: dict):
        names = self.model.entry.shape_params
        if set(shape_values) != set(names):
            raise ValueError(f"{self.model.name} takes shape parameters {names}, got {sorted(shape_values)}")
        return (ctypes.c_int64 * max(1, len(names)))(*[int(shape_values[n]) for n in names])

    def infer(self, *arrays: np.ndarray, **shape_values) -> tuple[list[np.ndarray], float]:
        """(outputs, seconds) of Session::infer on `arrays` at `shape_values` (the batch `bs=...`)."""
        entry = self.model.entry
        arrays = [np.ascontiguousarray(a, dtype=spec.dtype) for a, spec in zip(arrays, entry.inputs)]
        outputs = [np.empty(spec.resolve(shape_values), spec.dtype) for spec in entry.outputs]
        n_out = len(outputs)
        inputs = (ctypes.c_void_p * max(1, len(arrays)))(*[a.ctypes.data for a in arrays])
        outs = (ctypes.c_void_p * max(1, n_out))(*[o.ctypes.data for o in outputs])
        caps = (ctypes.c_int64 * max(1, n_out))(*[o.size for o in outputs])
        sizes = (ctypes.c_int64 * max(1, n_out))(*([-1] * n_out))
        err = ctypes.create_string_buffer(4096)
        start = time.perf_counter()
        rc = self.model._infer(self._handle, self._values(shape_values), inputs, outs, caps, sizes, n_out, err,
                               len(err))
        seconds = time.perf_counter() - start
        if rc != 0:
            raise RuntimeError(f"SOFIE_{self.model.name}::Session::infer failed: {err.value.decode(errors='replace')}")
        for spec, out, size in zip(entry.outputs, outputs, sizes):
            if size != out.size:
                raise RuntimeError(f"{self.model.name}: output {spec.name} has {size} elements, expected {out.size}")
        return outputs, seconds

    def close(self):
        if self._handle:
            self.model._destroy(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
