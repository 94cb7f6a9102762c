"""convert(): trace -> scan for unsupported primitives -> lower -> passes -> RModel."""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Sequence

import numpy as np

from .emit import emit
from .errors import ConversionError
from .ir import GraphBuilder, Value, identifier, verify
from .lowering import check_supported, lower_sub_jaxpr
from .lowering.context import LoweringContext
from .lowering.source import location_of
from .model import ConvertedModel
from .passes import run_passes
from .trace import Traced, trace, trace_nnx


def convert(target: Any, *args: Any, name: str | None = None, input_names: Sequence[str] | None = None,
            strict: bool = False) -> ConvertedModel:
    """Convert a JAX function or a Flax model to a SOFIE model.

    - `convert(fn, params, *example_inputs)` for `fn(params, *inputs)`; for Flax linen pass
      `module.apply` and the variables dict.
    - `convert(nnx_module, *example_inputs)` for a Flax nnx module.
    Example inputs are arrays or `jax.ShapeDtypeStruct`s. Weights with NaN or Inf values give a
    warning, or an error with `strict=True`.
    """
    if _is_nnx_module(target):
        traced = trace_nnx(target, args, input_names)
        default_name = type(target).__name__
    elif callable(target):
        if not args:
            raise ConversionError("convert(fn, params, *example_inputs): the params argument is missing")
        traced = trace(target, args[0], args[1:], input_names)
        default_name = _function_name(target)
    else:
        raise ConversionError(f"cannot convert a {type(target).__name__}: give a function fn(params, *inputs), "
                              "a Flax linen module's `apply`, or a Flax nnx module")
    return build(traced, name or default_name, strict=strict)


def build(traced: Traced, name: str, strict: bool = False) -> ConvertedModel:
    """Lower a traced model and generate its RModel (shared by every frontend)."""
    n_params = len(traced.param_values)
    check_supported(traced.closed, [True] * n_params + [False] * len(traced.input_specs))
    check_float_types(traced.closed)

    builder = GraphBuilder(name)
    params = [builder.constant(value, path, origin=identifier(path))
              for path, value in zip(traced.param_names, traced.param_values)]
    inputs = [builder.input(input_name, spec.shape, spec.dtype)
              for input_name, spec in zip(traced.input_names, traced.input_specs)]
    output_names = [builder.unique_name(n) for n in traced.output_names]

    ctx = LoweringContext(builder, lower_sub_jaxpr)
    results = lower_sub_jaxpr(ctx, traced.closed, params + inputs)
    graph = builder.graph
    graph.outputs = _name_outputs(ctx, results, output_names)
    verify(graph)
    graph = run_passes(graph)
    check_weights_finite(graph, strict)
    rmodel = emit(graph)
    try:
        rmodel.generate()
    except Exception as exc:  # SOFIE's own checks run here; say where the error comes from
        raise ConversionError(f"SOFIE failed to generate code for model '{graph.name}': {exc}") from exc
    return ConvertedModel(graph=graph, rmodel=rmodel, traced=traced)


_UNSUPPORTED_FLOATS = {"float16", "bfloat16", "float64"}


def check_float_types(closed) -> None:
    """Refuse models that compute in a float type other than float32, naming the first such line."""
    for eqn in closed.jaxpr.eqns:
        for var in eqn.outvars:
            dtype = getattr(var.aval, "dtype", None)
            if dtype is not None and str(dtype) in _UNSUPPORTED_FLOATS:
                raise ConversionError(
                    f"the model computes in {dtype} ('{eqn.primitive.name}' at {location_of(eqn) or 'unknown'}): "
                    "jax2sofie generates float32 code; cast the params and inputs to float32")


def check_weights_finite(graph, strict: bool) -> None:
    """Warn about (or, strict, refuse) weights holding NaN or Inf: almost always a broken checkpoint."""
    for value in graph.constants():
        if value.is_weight and np.issubdtype(np.asarray(value.const).dtype, np.floating):
            bad = int(np.size(value.const) - np.count_nonzero(np.isfinite(value.const)))
            if bad:
                message = f"weight '{value.origin or value.name}' has {bad} NaN/Inf value(s) of {np.size(value.const)}"
                if strict:
                    raise ConversionError(message + " (strict mode)")
                warnings.warn(message, RuntimeWarning, stacklevel=3)


def _name_outputs(ctx: LoweringContext, results: list[Value], names: list[str]) -> list[Value]:
    """Give each output its name. An output that is an input, a constant or another output gets a copy:
    SOFIE needs every output to be computed by an operator (a graph without any crashes its generator)."""
    named: list[Value] = []
    seen: set[int] = set()
    inputs = {id(v) for v in ctx.builder.graph.inputs}
    for value, name in zip(results, names):
        if value.is_const or id(value) in inputs or id(value) in seen:
            if value.dtype != np.float32:  # SOFIE's Identity rejects integer types (SOFIE_PITFALLS.md)
                raise ctx.error(f"output '{name}' is an input or constant of dtype {value.dtype}: "
                                "not supported yet (float32 only)")
            value = ctx.builder.op("Identity", [value], value.shape, value.dtype, dtype="float32")
        seen.add(id(value))
        value.name = name
        named.append(value)
    return named


def _is_nnx_module(target: Any) -> bool:
    try:
        from flax import nnx
    except ImportError:
        return False
    return isinstance(target, nnx.Module)


def _function_name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    if owner is not None and not inspect.ismodule(owner):
        return type(owner).__name__  # a bound method, e.g. a linen module's apply
    name = getattr(fn, "__name__", "")
    return name if name.isidentifier() else "model"
