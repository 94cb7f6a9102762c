"""Which Keras backend this process runs, and importing Keras on the JAX backend when it is free to.

Keras fixes its backend when it is first imported (KERAS_BACKEND, else ~/.keras/keras.json). When
Keras is not imported yet, `keras_on_jax()` sets KERAS_BACKEND=jax and imports it: later imports of
Keras in this process then get the JAX backend too. When the process already runs Keras on another
backend (TensorFlow, PyTorch), that cannot change: conversion then runs in a child process (see
`child.py`).
"""
from __future__ import annotations

import os
import sys

from jax2sofie.errors import ConversionError


def imported_backend() -> str | None:
    """The backend of the Keras already imported in this process, or None if Keras is not imported."""
    if "keras" not in sys.modules:
        return None
    import keras

    return keras.backend.backend()


def keras_on_jax():
    """Import Keras on the JAX backend; None if this process already runs it on another backend."""
    backend = imported_backend()
    if backend is None:
        os.environ["KERAS_BACKEND"] = "jax"
        try:
            import keras
        except ImportError as exc:
            raise ConversionError("converting Keras models needs Keras 3: pip install keras") from exc
        backend = keras.backend.backend()
    import keras

    if not keras.__version__.startswith("3."):
        raise ConversionError(f"Keras {keras.__version__} is installed: converting Keras models needs Keras 3")
    return keras if backend == "jax" else None

