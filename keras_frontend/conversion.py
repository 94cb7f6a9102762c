"""keras_frontend.convert: a Keras 3 model (in memory, `.keras` or `.h5`) -> jax2sofie.ConvertedModel."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from jax2sofie.convert import trace_and_build
from jax2sofie.errors import ConversionError, UnsupportedPrimitivesError
from jax2sofie.model import ConvertedModel

from . import child
from .backend import keras_on_jax
from .loading import check_path, load
from .tracing import (_identifier, check_model, input_names_of, trace_model, with_layer_location,
                      with_layer_names)


def convert(model_or_path: Any, example_input: Any = None, input_shape: Any = None, name: str | None = None,
            dynamic_batch: bool | None = None, strict: bool = False, safe_mode: bool = True,
            input_names: Sequence[str] | None = None) -> ConvertedModel:
    """Convert a Keras 3 model to a SOFIE model; returns the same object as `jax2sofie.convert`.

    model_or_path: a `keras.Model` (Sequential, Functional or subclassed; built), or the path of a
    `.keras` file (saved from any backend) or a legacy `.h5` file.
    Inputs, one of:
      - `example_input`: an array (or a list of arrays, one per model input; or jax.ShapeDtypeStructs);
      - `input_shape`: a shape including the batch, e.g. `(1, 16)` (or a list of shapes);
      - neither: the model's own input shapes, where only the batch may be unknown.
    dynamic_batch: a symbolic batch dimension (dimension 0 of every input). The default (None) is
    True when neither example_input nor input_shape is given and the model's batch is unknown.
    safe_mode: passed to `keras.saving.load_model`; files holding Lambda layers need False, which
    runs the code stored in the file: only for files you trust.

    Keras runs on the JAX backend for tracing. If Keras is not imported yet, this sets
    KERAS_BACKEND=jax and imports it. If this process already runs Keras on another backend
    (TensorFlow, PyTorch), the model is saved to a temporary `.keras` file and converted in a child
    Python process on the JAX backend; the returned model's reference (`check`) is then computed by
    the original backend. Custom layers must then be importable from their module (not `__main__`).
    """
    path = Path(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) else None
    if path is not None:
        check_path(path)
    keras = keras_on_jax()
    if keras is None:
        return _convert_in_child(model_or_path, path, example_input, input_shape, name, dynamic_batch, strict,
                                 safe_mode, input_names)
    model = load(keras, path, safe_mode) if path is not None else model_or_path
    check_model(model)
    default_name = _identifier(path.stem) if path is not None else _identifier(model.name)
    inputs, dynamic = example_inputs(model, example_input, input_shape, dynamic_batch)
    return convert_loaded(model, inputs, name or default_name, dynamic, strict, input_names)


def convert_loaded(model, inputs: list, name: str, dynamic_batch: bool, strict: bool,
                   input_names: Sequence[str] | None) -> ConvertedModel:
    """Convert a model of this process' JAX-backend Keras at the given example inputs."""
    names = list(input_names) if input_names else input_names_of(model, len(inputs))
    try:
        return trace_and_build(lambda xs: trace_model(model, xs, names), inputs, name, strict, dynamic_batch,
                               input_labels=names)
    except UnsupportedPrimitivesError as exc:
        raise with_layer_names(exc, model) from None
    except ConversionError as exc:
        located = with_layer_location(exc, model)
        if located is exc:
            raise
        raise located from exc


def example_inputs(model, example_input: Any, input_shape: Any, dynamic_batch: bool | None
                   ) -> tuple[list, bool]:
    """The example inputs (arrays or ShapeDtypeStructs) and whether the batch is symbolic."""
    import jax

    declared = [(tuple(t.shape), np.dtype(t.dtype)) for t in (getattr(model, "inputs", None) or [])]
    built = getattr(model, "_build_shapes_dict", None) or {}  # a subclassed model's build() shape
    if not declared and len(built) == 1:
        shape = next(iter(built.values()))
        if isinstance(shape, (tuple, list)) and all(d is None or isinstance(d, int) for d in shape):
            declared = [(tuple(shape), np.dtype(np.float32))]
    if example_input is not None and input_shape is not None:
        raise ConversionError("give example_input or input_shape, not both")
    if example_input is not None:
        arrays = list(example_input) if isinstance(example_input, (list, tuple)) else [example_input]
        inputs = [x if isinstance(x, jax.ShapeDtypeStruct) else np.asarray(x) for x in arrays]
        return _as_float32(inputs), bool(dynamic_batch)
    if input_shape is not None:
        shapes = [input_shape] if _is_shape(input_shape) else list(input_shape)
        dtypes = [d for _, d in declared] if len(declared) == len(shapes) else [np.dtype(np.float32)] * len(shapes)
        return [jax.ShapeDtypeStruct(tuple(int(d) for d in s), dt) for s, dt in zip(shapes, dtypes)], \
            bool(dynamic_batch)
    if not declared:
        raise ConversionError(f"Keras model '{model.name}' does not declare its input shapes (a subclassed "
                              "model): give example_input or input_shape")
    for shape, _ in declared:
        if any(d is None for d in shape[1:]):
            raise ConversionError(f"Keras model '{model.name}' has an input of shape {shape} with unknown "
                                  "non-batch dimensions: give input_shape (including the batch)")
    unknown_batch = all(shape and shape[0] is None for shape, _ in declared)
    dynamic = unknown_batch if dynamic_batch is None else dynamic_batch
    return [jax.ShapeDtypeStruct((1 if shape[0] is None else shape[0],) + shape[1:], dtype)
            for shape, dtype in declared], dynamic


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in value)


def _as_float32(inputs: list) -> list:
    """float64 numpy inputs (numpy's default) become float32, as Keras itself would cast them."""
    return [x.astype(np.float32) if isinstance(x, np.ndarray) and x.dtype == np.float64 else x for x in inputs]


def _convert_in_child(model_or_path, path, example_input, input_shape, name, dynamic_batch, strict, safe_mode,
                      input_names) -> ConvertedModel:
    """This process runs Keras on another backend: convert on the JAX backend in a child process."""
    with tempfile.TemporaryDirectory(prefix="keras_frontend-") as tmp:
        if path is None:
            model = model_or_path
            check_model(model)
            saved = Path(tmp) / "model.keras"
            model.save(saved)
            default_name = _identifier(model.name)
            modules = child.custom_modules(model)
        else:
            model, saved, default_name, modules = None, path, _identifier(path.stem), []
        return child.convert_in_child(saved, model, example_input, input_shape, name or default_name,
                                      dynamic_batch, strict, safe_mode, input_names, modules, Path(tmp))
