"""The one place for how generated C++ is compiled: flags, the builds users make, the compile command.

Everything that compiles a header or writes a build takes its flags from here: the Python check
(runtime/check.py, through build_harness_library), `jax2sofie check` (cli.py), the Makefile written
next to a model (runtime/makefile.py), the comment at the top of a standalone test
(runtime/standalone.py) and the benchmarks' timing program (benchmarks/cpp_timer.py). The compiler
and the BLAS link flags are found by runtime/toolchain.py (find_compiler, find_blas).
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from .toolchain import Compiler, ToolchainError

__all__ = [
    "BUILDS",
    "CompileError",
    "DEFAULT_CXXFLAGS",
    "HARNESS_FLAGS",
    "HARNESS_STD_ATTEMPTS",
    "SHARED_LIBRARY_FLAGS",
    "STD_FLAG",
    "build_flags",
    "build_harness_library",
    "compile_command",
]

# SOFIE's headers need C++17 (string_view, if constexpr)
STD_FLAG = "-std=c++17"

# The builds users make of a generated header, by the short name benchmarks/run.py --builds takes:
# "O2" is the default build (the Makefile jax2sofie writes next to a standalone test, `jax2sofie check`),
# the build of anyone who does not choose flags; "v3" the same for a grid's baseline CPU (x86-64-v3: AVX2
# and FMA, every x86 node of the last decade); "native" a build for the machine it runs on, as trigger
# farms do (SOFIE's own loops only vectorise with -march). STD_FLAG comes with each (build_flags).
BUILDS = {
    "O2": ("-O2",),
    "v3": ("-O2", "-march=x86-64-v3"),
    "native": ("-O3", "-march=native"),
}


def build_flags(build: str) -> list[str]:
    """The compiler flags of the build `build` (a key of BUILDS)."""
    if build not in BUILDS:
        raise ValueError(f"unknown build {build!r}: the builds are {', '.join(BUILDS)}")
    return list(BUILDS[build]) + [STD_FLAG]


# the flags of the default build: the Makefile's CXXFLAGS, `jax2sofie check`, the standalone test's comment
DEFAULT_CXXFLAGS = tuple(build_flags("O2"))

# a shared library that exports only what it marks visible (the harness's extern "C" API, the C API)
SHARED_LIBRARY_FLAGS = ("-shared", "-fPIC", "-fvisibility=hidden", "-fvisibility-inlines-hidden")

# the Python check's library (header + harness): optimised as the default build, without -std, which is
# tried from HARNESS_STD_ATTEMPTS unless the caller's extra flags choose one
HARNESS_FLAGS = ("-O2",) + SHARED_LIBRARY_FLAGS
HARNESS_STD_ATTEMPTS = (STD_FLAG, "-std=c++20")

_STDERR_LINES = 40


def compile_command(compiler: Compiler, flags: Sequence[str], sources: Sequence[str], output: str, *,
                    include_dirs: Sequence[str] = (), link: Sequence[str] = ()) -> list[str]:
    """The compiler's argv: the compiler, `flags`, -I of `include_dirs`, `sources`, -o `output`, then `link`
    (the BLAS flags, and whatever must follow the sources)."""
    return (list(compiler.command) + list(flags) + [f"-I{d}" for d in include_dirs] + [str(s) for s in sources]
            + ["-o", str(output)] + list(link))


class CompileError(RuntimeError):
    """The generated header (with the harness) does not compile.

    Attributes: ``header_path``, ``command`` (argv), ``stderr`` (full compiler output).
    """

    def __init__(self, message, header_path=None, command=None, stderr=""):
        super().__init__(message)
        self.header_path = header_path
        self.command = command
        self.stderr = stderr


def first_lines(text: str, n: int = _STDERR_LINES) -> str:
    lines = text.rstrip().splitlines()
    out = "\n".join(lines[:n])
    if len(lines) > n:
        out += f"\n... ({len(lines) - n} more lines)"
    return out


def build_harness_library(compiler: Compiler, blas, header_path: Path, header_bytes: bytes, header_copy: str,
                          harness_src: str, lib_path: Path, std_attempts, extra_flags) -> list:
    """Compile `harness_src` (which includes `header_copy`, a copy of `header_bytes`) into the shared
    library `lib_path`, trying each of `std_attempts` ("" when the extra flags choose -std); return the
    command that worked. The library appears at `lib_path` complete or not at all. Raises CompileError."""
    with tempfile.TemporaryDirectory(prefix="jax2sofie-build-") as d:
        hdr = os.path.join(d, header_copy)
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
                cmd = compile_command(compiler, list(HARNESS_FLAGS) + ([std] if std else []), [src], tmp_out,
                                      include_dirs=[str(header_path.parent.resolve())],
                                      link=list(blas) + list(extra_flags))
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
        f"{first_lines(out)}{also}\ncommand: {' '.join(cmd)}",
        header_path=str(header_path), command=cmd, stderr=out)
