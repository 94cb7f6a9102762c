"""Keras 3 models -> jax2sofie, by loading them on Keras' JAX backend and tracing them.

Not built yet: `convert` raises an error that says so (the JAX/Flax path, `jax2sofie.convert`, works).
"""
from __future__ import annotations


def convert(model_or_path, *args, **kwargs):
    raise NotImplementedError(
        "keras_frontend.convert is not implemented yet: Keras models cannot be converted in this version. "
        "Convert the model's computation as a JAX function with jax2sofie.convert(fn, params, example_input)."
    )
