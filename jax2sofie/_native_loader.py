"""Loads the compiled module jax2sofie._native; use ``from jax2sofie._native_loader import native``.

``sofie`` is imported first: the process then already holds the libSOFIE_core.so that
``sofie._sofie`` uses, and the dynamic loader hands that same library to ``_native`` (an RModel
made by PySofie must be handled by the library it was made with). Importing sofie also registers
the pybind11 type ``sofie.RModel`` that ``_native.push`` takes.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

import sofie  # noqa: F401  (must come before _native, see above)


def _shadowed_install() -> Path | None:
    """Another jax2sofie package on sys.path that has a built native module, when this one has none.

    A Python started in a checkout's root folder imports the checkout's sources (the current folder
    comes first on sys.path), which lack the module that `pip install .` built into site-packages."""
    def built(package: Path) -> bool:
        return any((package / f"_native{suffix}").is_file() for suffix in importlib.machinery.EXTENSION_SUFFIXES)

    here = Path(__file__).resolve().parent
    if built(here):  # built here but failing to load: another problem
        return None
    for entry in sys.path:
        package = Path(entry or ".").resolve() / "jax2sofie"
        if package != here and built(package):
            return package
    return None


try:
    from jax2sofie import _native as native
except ImportError as e:  # pragma: no cover - depends on how the package was installed
    installed = _shadowed_install()
    if installed is not None:
        advice = (f"this is the source tree {Path(__file__).resolve().parent}, imported instead of the "
                  f"installed package {installed} because the current folder comes first on sys.path: "
                  "start Python from another folder, or as `python -P` (Python 3.11+).")
    else:
        advice = ("Build and install it from the source tree with `pip install .` (or, for development, "
                  "`pip install -e . --no-build-isolation`); this needs g++ with C++20 and CMake >= 3.18. "
                  "The SOFIE headers are fetched automatically; offline, set SOFIE_INCLUDE_DIR to the "
                  "SOFIE/core/inc folder of the sofie sdist.")
    raise ImportError(
        f"jax2sofie's native module (jax2sofie._native) is not built or cannot be loaded: {e}\n{advice}"
    ) from e

if native.sofie_version() != getattr(sofie, "__version__", native.sofie_version()):
    raise ImportError(
        f"jax2sofie._native was built against sofie {native.sofie_version()}, but sofie "
        f"{sofie.__version__} is installed; reinstall jax2sofie (pip install .) or sofie=={native.sofie_version()}"
    )

__all__ = ["native"]
