"""A Keras 3 model (JAX backend) as a pure function of its variables, traced with jax2sofie's tracer.

`fn(variables, *inputs)` calls `model.stateless_call(trainable, non_trainable, inputs, training=False)`;
the float variables are its params, keyed by their Keras paths without the model's own name
(`dense_1/kernel`), so the generated weights have readable names. Integer variables (the states of
Dropout's and GaussianNoise's seed generators) are closed over: inference does not use them.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, Sequence

import numpy as np

from jax2sofie.errors import ConversionError, UnsupportedPrimitivesError, UnsupportedUse
from jax2sofie.trace import Traced, trace


def variable_names(model) -> list[str]:
    """Unique readable names, one per variable of `model.variables` order (trainable first)."""
    prefix = model.name + "/"
    names, seen = [], set()
    for variable in model.trainable_variables + model.non_trainable_variables:
        name = variable.path[len(prefix):] if variable.path.startswith(prefix) else variable.path
        unique, n = name, 1
        while unique in seen:
            unique, n = f"{name}_{n}", n + 1
        seen.add(unique)
        names.append(unique)
    return names


def trace_model(model, example_inputs: Sequence[Any], input_names: Sequence[str]) -> Traced:
    """Trace `model` at the example inputs (arrays or jax.ShapeDtypeStructs)."""
    trainable = [np.asarray(v.value) for v in model.trainable_variables]
    non_trainable = [np.asarray(v.value) for v in model.non_trainable_variables]
    names = variable_names(model)
    values = trainable + non_trainable
    is_param = [np.issubdtype(v.dtype, np.floating) for v in values]
    params = {name: value for name, value, p in zip(names, values, is_param) if p}
    n_trainable = len(trainable)
    structure = getattr(model, "_inputs_struct", None)
    # stateless_call runs model.call itself: `training` only goes to a call that takes it
    options = {"training": False} if _takes_training(model) else {}

    def call(variables, *xs):
        flat = [variables[name] if p else value for name, value, p in zip(names, values, is_param)]
        if structure is not None and len(xs) > 1:
            import keras

            inputs = keras.tree.pack_sequence_as(structure, list(xs))
        else:
            inputs = xs[0] if len(xs) == 1 else list(xs)
        outputs, _ = model.stateless_call(flat[:n_trainable], flat[n_trainable:], inputs, **options)
        return outputs

    traced = trace(call, params, example_inputs, input_names)
    output_names = getattr(model, "output_names", None)
    if output_names and len(output_names) == len(traced.output_names) and len(output_names) > 1:
        traced.output_names = [_identifier(n) for n in output_names]
    return traced


def _takes_training(model) -> bool:
    parameters = inspect.signature(model.call).parameters.values()
    return any(p.name == "training" or p.kind is p.VAR_KEYWORD for p in parameters)


def input_names_of(model, count: int) -> list[str]:
    names = [getattr(t, "name", "") for t in (getattr(model, "inputs", None) or [])]
    if len(names) != count or not all(names) or any(n.startswith("keras_tensor") for n in names):
        return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]
    return [_identifier(n) for n in names]


def _identifier(name: str) -> str:
    text = re.sub(r"\W", "_", name)
    return text if text[:1].isalpha() else "t_" + text


_SCOPE = re.compile(r"\[in (?P<scope>[^\]]*)\]$")


def with_layer_names(error: UnsupportedPrimitivesError, model) -> UnsupportedPrimitivesError:
    """The same error, each use located at its Keras layer (`layer 'dense_1' (Dense)`): the traced
    source line is the frontend's own call, the JAX name stack is the Keras layer path."""
    classes = {layer.name: type(layer).__name__ for layer in _all_layers(model)}
    uses = []
    for use in error.uses:
        match = _SCOPE.search(use.location)
        if match is None:
            uses.append(use)
            continue
        scope = match.group("scope")
        parts = [p for p in scope.split("/") if p]
        layer = next((p for p in reversed(parts) if p in classes), None)
        where = f"Keras layer '{scope}'" + (f" ({classes[layer]})" if layer else "")
        uses.append(UnsupportedUse(use.primitive, where, use.reason))
    return UnsupportedPrimitivesError(uses)


_FRONTEND_LINE = re.compile(r"\S*keras_frontend[/\\]tracing\.py:\d+(?::\d+)? \(trace_model\.<locals>\.call\)"
                            r"(?: \[in (?P<scope>[^\]]*)\])?")


def with_layer_location(error: ConversionError, model) -> ConversionError:
    """A lowering or graph error whose location is this module's traced call: the Keras layer instead."""
    classes = {layer.name: type(layer).__name__ for layer in _all_layers(model)}

    def layer_of(match) -> str:
        scope = match.group("scope")
        if not scope:
            return f"Keras model '{model.name}'"
        layer = next((p for p in reversed(scope.split("/")) if p in classes), None)
        return f"Keras layer '{scope}'" + (f" ({classes[layer]})" if layer else "")

    message = _FRONTEND_LINE.sub(layer_of, str(error))
    if message == str(error) or type(error).__init__ is not ConversionError.__init__:
        return error
    return type(error)(message)


def _all_layers(model) -> list:
    return list(model._flatten_layers(include_self=True, recursive=True))


def check_model(model) -> None:
    if not hasattr(model, "stateless_call"):
        raise ConversionError(f"cannot convert a {type(model).__name__}: give a keras.Model (or a path to a "
                              ".keras/.h5 file)")
    if not model.built:
        raise ConversionError(f"Keras model '{model.name}' is not built: call it once on an input or call "
                              "model.build(input_shape) before converting")
