"""The Makefile written next to a model: `make test` (the reference check, `<name>_test.cpp`) and
`make lib<name>.so` (the shared library with the C API, `<name>_c.cpp`), whichever were written.

Its variables are the build's flags for both, in one place: CXX, CXXFLAGS, BLAS (the link flags of a
shared BLAS) and, for the library, STATIC_BLAS / LIBRARY_BLAS. Any of them can be set on make's
command line (`make lib<name>.so CXXFLAGS="-O3 -march=native -std=c++17"`). Their defaults come from
runtime/build.py, the one place for the flags of generated code.
"""
from __future__ import annotations

from pathlib import Path

from .build import DEFAULT_CXXFLAGS, SHARED_LIBRARY_FLAGS

_HEAD = """# Builds the C++ of the SOFIE model {name} (needs a C++17 compiler and a BLAS):
{usage}
CXX ?= g++
CXXFLAGS ?= {cxxflags}
BLAS ?= -lopenblas
"""

_TEST = """
{name}_test: {name}_test.cpp {name}.hxx
\t$(CXX) $(CXXFLAGS) -o $@ $< $(BLAS)

test: {name}_test
\t./{name}_test

.PHONY: test
"""

# The library keeps its BLAS private: linked from the static libopenblas.a when the compiler finds one
# (Debian/Ubuntu: libopenblas-dev), its symbols made local (--exclude-libs), and the version script
# exports the C API only. A process that already holds another BLAS (numpy's, MKL) then cannot bind
# the library's sgemm_ calls to that one. Without a static OpenBLAS, or with STATIC_BLAS= (empty), it
# links $(BLAS) as a shared library, whose sgemm_ the dynamic linker may resolve to a BLAS loaded
# earlier into the process (see the README).
_LIBRARY = """
STATIC_BLAS ?= $(shell $(CXX) -print-file-name=libopenblas.a)
LIBRARY_BLAS ?= $(if $(filter /%,$(STATIC_BLAS)),$(STATIC_BLAS) -lpthread,$(BLAS))
LIBRARY_FLAGS = {shared_library_flags} \\
                -Wl,--exclude-libs,ALL -Wl,--version-script={name}_c.map

lib{name}.so: {name}_c.cpp {name}_c.h {name}.hxx {name}_c.map
\t$(CXX) $(CXXFLAGS) $(LIBRARY_FLAGS) -o $@ $< $(LIBRARY_BLAS)
"""


def write_makefile(directory: Path, name: str, *, test: bool, library: bool) -> Path:
    """Write `Makefile` into `directory` with the targets of what was written; return its path."""
    usage = []
    if test:
        usage.append(f"#   make test: build and run the reference check {name}_test.cpp")
    if library:
        usage.append(f"#   make lib{name}.so: build the shared library with the C API of {name}_c.h")
    text = _HEAD.format(name=name, usage="\n".join(usage), cxxflags=" ".join(DEFAULT_CXXFLAGS))
    if test:
        text += _TEST.format(name=name)
    if library:
        text += _LIBRARY.format(name=name, shared_library_flags=" ".join(SHARED_LIBRARY_FLAGS))
    path = Path(directory) / "Makefile"
    path.write_text(text)
    return path
