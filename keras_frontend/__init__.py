"""Keras 3 models -> jax2sofie: the model is loaded on Keras' JAX backend and traced, not parsed.

    import keras_frontend
    m = keras_frontend.convert("model.keras")            # or a keras.Model, or a legacy .h5 file
    m.write("out/"); m.check()

Every layer whose computation lowers converts, including custom layers written with `keras.ops`
(registered with `keras.saving.register_keras_serializable`). See `convert` for the backend rules:
importing this package before Keras makes JAX Keras' default backend.
"""
from __future__ import annotations

import os
import sys

# Importing keras_frontend before Keras makes JAX Keras' backend (unless KERAS_BACKEND says otherwise):
# conversion then runs in this process. Otherwise it runs in a child process (see convert).
if "keras" not in sys.modules:
    os.environ.setdefault("KERAS_BACKEND", "jax")

from jax2sofie.errors import ConversionError  # noqa: E402

from .conversion import convert  # noqa: E402

__all__ = ["ConversionError", "convert"]
