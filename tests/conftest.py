"""Shared test set-up: compiled artefacts go to a per-run cache unless JAX2SOFIE_CACHE_DIR is set."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _compile_cache(tmp_path_factory):
    if "JAX2SOFIE_CACHE_DIR" not in os.environ:
        os.environ["JAX2SOFIE_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax2sofie-cache"))
    yield


@pytest.fixture(scope="session")
def keras_saved(tmp_path_factory):
    """The Keras test models of tests/keras_test_models.py, saved as .keras and .h5 with reference
    outputs by ONE child process running Keras on TensorFlow (TensorFlow's import is slow), plus the
    bad-input files and a conversion done from inside that TensorFlow process. Returns the folder."""
    import importlib.util

    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs keras and tensorflow (pip install .[test])")
    out = tmp_path_factory.mktemp("keras-saved")
    here = Path(__file__).parent
    # the child imports the jax2sofie this process tests (installed, or a source tree with its built
    # module on PYTHONPATH), never a checkout's sources that lack the native module
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([package_root(), *sys.path[1:]]))
    run = subprocess.run([sys.executable, str(here / "keras_test_models.py"), str(out), "--bad-inputs",
                          "--check-in-process"], env=env, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0:
        raise RuntimeError(f"saving the Keras test models on TensorFlow failed:\n{run.stderr[-6000:]}")
    return out


def package_root() -> str:
    """The folder that holds the jax2sofie package this test process imports (site-packages after
    `pip install .`, or a source tree with its built module): what child processes must import too."""
    import jax2sofie

    return str(Path(jax2sofie.__file__).resolve().parents[1])
