"""Where jax2sofie caches what it builds: one root, one folder per kind of artefact.

The root is ``$JAX2SOFIE_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/jax2sofie`` (the same root the
native build fetches SOFIE's headers into, csrc/fetch_sofie_headers.py); under it ``compiled/`` holds the
Python check's libraries (runtime/check.py) and ``rdf/`` the files of models given to jax2sofie.rdf.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_root", "cache_dir", "default_cache_dir"]


def cache_root() -> Path:
    """``$JAX2SOFIE_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/jax2sofie``."""
    env = os.environ.get("JAX2SOFIE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "jax2sofie"


def cache_dir(kind: str) -> Path:
    """The folder of one kind of artefact under cache_root() ("compiled", "rdf")."""
    return cache_root() / kind


def default_cache_dir() -> Path:
    """Where compiled models are cached: ``cache_root() / "compiled"``."""
    return cache_dir("compiled")
