"""C++ templates of the runtime, kept as `.in` package data (pyproject's wheel carries them) so the
C++ reads as C++: `@NAME@` placeholders are filled in by the Python that writes the source
(fill_template).

- harness.cpp.in: the extern "C" wrapper of a Session that the Python side loads (runtime/harness.py);
- c_api.h.in, c_api.cpp.in: the C API of a model written with library=True (runtime/c_api.py);
- standalone_test.cpp.in: the reference check `make test` builds (runtime/standalone.py)."""
from __future__ import annotations

import re
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


_PLACEHOLDER = re.compile(r"@[A-Z][A-Z0-9_]*@")


def fill_template(name: str, values: dict[str, object]) -> str:
    """The template `name` with each `@KEY@` replaced by str(values["key"]) (keys in lower case). A
    placeholder left without a value, or a value no placeholder takes, is an error: the two sides
    changed apart."""
    text = read_template(name)
    wanted = {m[1:-1].lower() for m in _PLACEHOLDER.findall(text)}
    if wanted != set(values):
        raise KeyError(f"template {name}: placeholders without a value {sorted(wanted - set(values))}, "
                       f"values without a placeholder {sorted(set(values) - wanted)}")
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(0)[1:-1].lower()]), text)
