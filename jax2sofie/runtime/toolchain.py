"""Locate the C++ compiler and the BLAS library needed to build SOFIE-generated code.

SOFIE's generated headers declare ``extern "C" sgemm_/sgemv_`` (Fortran BLAS symbols) and
need at least C++17, so the runtime checker needs both a C++17 compiler and a linkable BLAS.

Environment variables:

* ``CXX``: the compiler command (may include arguments, e.g. ``"ccache g++"``). When set it is
  used as is; a missing one is an error (it is not silently replaced by another compiler).
* ``JAX2SOFIE_BLAS``: link flags for BLAS, e.g. ``"-L/opt/blas/lib -lmyblas"``; when set they must
  link, otherwise ``-lopenblas``, ``-lblas``, ``-lcblas`` are tried in that order.

Results are cached per process (keyed by the relevant environment variables, so changing them
takes effect immediately).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass

__all__ = [
    "ToolchainError",
    "Compiler",
    "find_compiler",
    "find_blas",
    "clear_caches",
]

_CANDIDATE_COMPILERS = ("c++", "g++", "clang++")
_CANDIDATE_BLAS = (("-lopenblas",), ("-lblas",), ("-lcblas",))

_INSTALL_COMPILER = "install one, e.g. `apt-get install g++`"
_INSTALL_BLAS = (
    "install one, e.g. `apt-get install libopenblas-dev`, or set JAX2SOFIE_BLAS='-L/path -lmyblas'"
)


class ToolchainError(RuntimeError):
    """The C++ toolchain (compiler or BLAS) needed to build SOFIE code is missing or unusable."""


@dataclass(frozen=True)
class Compiler:
    """A usable C++ compiler.

    ``command`` is the argv prefix (``["g++"]`` or e.g. ``["ccache", "g++"]``), ``path`` the
    resolved executable, ``version`` the first line of ``--version`` and ``identity`` a short
    hash of (command, resolved path, full ``--version`` output) used in cache keys.
    """

    command: tuple
    path: str
    version: str
    identity: str


_lock = threading.Lock()
_compiler_cache: dict = {}
_blas_cache: dict = {}


def _run(argv, timeout=120, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, **kw)


def _probe_compiler(command: tuple) -> Compiler | None:
    exe = command[0]
    path = shutil.which(exe)
    if path is None:
        return None
    try:
        res = _run(list(command) + ["--version"], timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if res.returncode != 0:
        return None
    out = (res.stdout or res.stderr).strip()
    first = out.splitlines()[0] if out else exe
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = ""
    ident = hashlib.sha256("\0".join([" ".join(command), real, stamp, out]).encode()).hexdigest()[:16]
    return Compiler(command=tuple(command), path=real, version=first, identity=ident)


def find_compiler() -> Compiler:
    """Return the C++ compiler to use: ``$CXX`` if set, else the first of c++, g++, clang++ on PATH.

    Raises :class:`ToolchainError` saying what to install when none works.
    """
    cxx = os.environ.get("CXX", "").strip()
    key = (cxx, os.environ.get("PATH", ""))
    with _lock:
        if key in _compiler_cache:
            return _compiler_cache[key]
    if cxx:
        try:
            command = tuple(shlex.split(cxx))
        except ValueError as e:
            raise ToolchainError(f"cannot parse $CXX={cxx!r}: {e}") from None
        comp = _probe_compiler(command) if command else None
        if comp is None:
            raise ToolchainError(
                f"the C++ compiler given by $CXX={cxx!r} was not found or does not run "
                f"(`{cxx} --version` failed): fix or unset CXX, or {_INSTALL_COMPILER}"
            )
    else:
        comp = None
        for name in _CANDIDATE_COMPILERS:
            comp = _probe_compiler((name,))
            if comp is not None:
                break
        if comp is None:
            raise ToolchainError(
                "no C++ compiler found (looked for $CXX, " + ", ".join(_CANDIDATE_COMPILERS)
                + f"): {_INSTALL_COMPILER}"
            )
    with _lock:
        _compiler_cache[key] = comp
    return comp


_BLAS_PROBE = r"""
extern "C" void sgemm_(const char *, const char *, const int *, const int *, const int *, const float *,
                       const float *, const int *, const float *, const int *, const float *, float *,
                       const int *);
int main()
{
   const char n = 'n';
   const int one = 1;
   const float a = 2.f, x = 3.f, y = 4.f, beta = 0.f;
   float c = 0.f;
   sgemm_(&n, &n, &one, &one, &one, &a, &x, &one, &y, &one, &beta, &c, &one);
   return c == 24.f ? 0 : 1;
}
"""


def _try_link(compiler: Compiler, flags: tuple) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory(prefix="jax2sofie-blas-") as d:
        src = os.path.join(d, "probe.cpp")
        exe = os.path.join(d, "probe")
        with open(src, "w") as f:
            f.write(_BLAS_PROBE)
        try:
            res = _run(list(compiler.command) + [src, "-o", exe] + list(flags), timeout=120)
        except (OSError, subprocess.SubprocessError) as e:
            return False, str(e)
        if res.returncode != 0:
            return False, res.stderr
        return True, ""


def find_blas(compiler: Compiler | None = None) -> tuple:
    """Return the link flags (a tuple of str) of a BLAS providing ``sgemm_``.

    ``$JAX2SOFIE_BLAS`` is used when set (and must link); otherwise -lopenblas, -lblas and
    -lcblas are tried. The answer is cached per process. Raises :class:`ToolchainError`.
    """
    if compiler is None:
        compiler = find_compiler()
    env = os.environ.get("JAX2SOFIE_BLAS")
    key = (compiler.identity, env)
    with _lock:
        if key in _blas_cache:
            return _blas_cache[key]
    if env is not None and env.strip():
        try:
            flags = tuple(shlex.split(env))
        except ValueError as e:
            raise ToolchainError(f"cannot parse $JAX2SOFIE_BLAS={env!r}: {e}") from None
        ok, err = _try_link(compiler, flags)
        if not ok:
            lines = "\n".join(err.strip().splitlines()[:10])
            raise ToolchainError(
                f"the BLAS link flags JAX2SOFIE_BLAS={env!r} cannot link a program calling sgemm_ "
                f"with {compiler.version}:\n{lines}\nfix JAX2SOFIE_BLAS, or unset it and install a BLAS, "
                "e.g. `apt-get install libopenblas-dev`"
            )
        result = flags
    else:
        result = None
        for flags in _CANDIDATE_BLAS:
            ok, _ = _try_link(compiler, flags)
            if ok:
                result = flags
                break
        if result is None:
            tried = ", ".join(" ".join(f) for f in _CANDIDATE_BLAS)
            raise ToolchainError(f"no BLAS found to link the generated code (tried {tried}): {_INSTALL_BLAS}")
    with _lock:
        _blas_cache[key] = result
    return result


def clear_caches() -> None:
    """Forget the per-process compiler/BLAS answers (for tests)."""
    with _lock:
        _compiler_cache.clear()
        _blas_cache.clear()
