"""convert(): trace -> scan for unsupported primitives -> lower -> passes -> RModel."""
from __future__ import annotations

import inspect
from typing import Any, Sequence

import numpy as np

from .emit import emit
from .errors import ConversionError
from .ir import GraphBuilder, Value, identifier, verify
from .lowering import check_supported, lower_sub_jaxpr
from .lowering.context import LoweringContext
from .model import ConvertedModel
from .passes import run_passes
from .trace import Traced, trace, trace_nnx


def convert(target: Any, *args: Any, name: str | None = None, input_names: Sequence[str] | None = None
            ) -> ConvertedModel:
    """Convert a JAX function or a Flax model to a SOFIE model.

    - `convert(fn, params, *example_inputs)` for `fn(params, *inputs)`; for Flax linen pass
      `module.apply` and the variables dict.
    - `convert(nnx_module, *example_inputs)` for a Flax nnx module.
    Example inputs are arrays or `jax.ShapeDtypeStruct`s.
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
    return build(traced, name or default_name)


def build(traced: Traced, name: str) -> ConvertedModel:
    """Lower a traced model and generate its RModel (shared by every frontend)."""
    n_params = len(traced.param_values)
    check_supported(traced.closed, [True] * n_params + [False] * len(traced.input_specs))

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
    rmodel = emit(graph)
    try:
        rmodel.generate()
    except Exception as exc:  # SOFIE's own checks run here; say where the error comes from
        raise ConversionError(f"SOFIE failed to generate code for model '{graph.name}': {exc}") from exc
    return ConvertedModel(graph=graph, rmodel=rmodel, traced=traced)


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
