"""Shared test set-up: compiled artefacts go to a per-run cache unless JAX2SOFIE_CACHE_DIR is set."""
from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _compile_cache(tmp_path_factory):
    if "JAX2SOFIE_CACHE_DIR" not in os.environ:
        os.environ["JAX2SOFIE_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax2sofie-cache"))
    yield
