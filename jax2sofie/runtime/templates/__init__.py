"""C++ templates of the runtime, kept as `.cpp.in` package data (pyproject's wheel carries them) so the
C++ reads as C++: `@NAME@` placeholders are filled in by the Python that writes the source."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def read_template(name: str) -> str:
    """The text of the template `name` (e.g. "harness.cpp.in") of this package."""
    path = resources.files(__name__).joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(f"the C++ template {name} is missing from the installed jax2sofie package "
                                f"({path}): reinstall it (pip install .), which carries jax2sofie/runtime/templates/*.cpp.in")
    return path.read_text()
