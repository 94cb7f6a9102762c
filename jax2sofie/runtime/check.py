"""Compile SOFIE-generated C++ code, run it from Python and compare with reference outputs.

>>> model = compile_model("out/mlp.hxx", "out/mlp.dat", "mlp",
...                       inputs=[TensorSpec("x", np.float32, ("bs", 4))],
...                       outputs=[TensorSpec("y", np.float32, ("bs", 3))])
>>> (y,) = model.run(x)                # bs taken from x.shape[0] (or pass bs=...)
>>> report = compare([y_ref], [y])     # or model.check([y_ref], x)
>>> assert report, str(report)

compile_model reads the Session's signature from the header, writes the harness for it
(runtime/harness.py), builds header and harness into a shared library (runtime/build.py) and loads
it (runtime/loading.py); compare is runtime/compare.py. Compiled libraries are cached in
default_cache_dir() (runtime/cache.py: ``$JAX2SOFIE_CACHE_DIR/compiled``, else
``${XDG_CACHE_HOME:-~/.cache}/jax2sofie/compiled``), keyed by a hash of the header bytes, the
harness source, the compiler identity and all flags. The weight file is *not* part of the key:
its path is given when a Session is created, so new weights reuse the compiled library
(headers generated with ``kNoWeightFile`` embed the weights, and the header is in the key).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import warnings
from pathlib import Path
from typing import Optional, Sequence

from .build import HARNESS_FLAGS, HARNESS_STD_ATTEMPTS, CompileError, build_harness_library
from .cache import default_cache_dir
from .compare import SCALE_BUDGET, CheckReport, OutputDetail, compare
from .harness import (
    HARNESS_ABI_VERSION,
    TensorSpec,
    conventional_signature,
    generate_harness_source,
    parse_session_signature,
)
from .loading import CompiledModel, HarnessLibrary, InferenceError
from .toolchain import find_blas, find_compiler

# compile_model is defined here; the other names are importable from here as they always were
__all__ = [
    "CompileError",
    "InferenceError",
    "CompiledModel",
    "CheckReport",
    "OutputDetail",
    "SCALE_BUDGET",
    "compile_model",
    "compare",
    "default_cache_dir",
]

_HEADER_COPY = "sofie_model.hxx"


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
    std_attempts = ("",) if user_std else HARNESS_STD_ATTEMPTS

    h = hashlib.sha256()
    for part in (b"jax2sofie-harness", str(HARNESS_ABI_VERSION).encode(), header_bytes, harness_src.encode(),
                 compiler.identity.encode(), " ".join(compiler.command).encode(), repr(HARNESS_FLAGS).encode(),
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
        command = build_harness_library(compiler, blas, header_path, header_bytes, _HEADER_COPY, harness_src,
                                        lib_path, std_attempts, extra_flags)
    library = HarnessLibrary(str(lib_path), str(header_path), inputs, outputs)
    return CompiledModel(library, model_name, str(header_path), weight_path, inputs, outputs, canonical, sig,
                         time.perf_counter() - t0, cached, command)

