"""Loads the compiled module jax2sofie._native; use ``from jax2sofie._native_loader import native``.

``sofie`` is imported first: the process then already holds the libSOFIE_core.so that
``sofie._sofie`` uses, and the dynamic loader hands that same library to ``_native`` (an RModel
made by PySofie must be handled by the library it was made with). Importing sofie also registers
the pybind11 type ``sofie.RModel`` that ``_native.push`` takes.
"""

from __future__ import annotations

import sofie  # noqa: F401  (must come before _native, see above)

try:
    from jax2sofie import _native as native
except ImportError as e:  # pragma: no cover - depends on how the package was installed
    raise ImportError(
        "jax2sofie's native module (jax2sofie._native) is not built or cannot be loaded: "
        f"{e}\nBuild and install it from the source tree with `pip install .` (or, for development, "
        "`pip install -e . --no-build-isolation`); this needs g++ with C++20 and CMake >= 3.18. "
        "The SOFIE headers are fetched automatically; offline, set SOFIE_INCLUDE_DIR to the "
        "SOFIE/core/inc folder of the sofie sdist."
    ) from e

if native.sofie_version() != getattr(sofie, "__version__", native.sofie_version()):
    raise ImportError(
        f"jax2sofie._native was built against sofie {native.sofie_version()}, but sofie "
        f"{sofie.__version__} is installed; reinstall jax2sofie (pip install .) or sofie=={native.sofie_version()}"
    )

__all__ = ["native"]
