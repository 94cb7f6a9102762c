"""convert(): trace -> scan for unsupported primitives -> lower -> passes -> RModel."""
from __future__ import annotations

import inspect
import warnings
from typing import Any, Callable, Sequence

import numpy as np
from jax.extend import core as jcore

from .dynamic import BATCH_PARAM, TRACE_BATCHES, generalise
from .emit import emit
from .errors import ConversionError
from .ir import Graph, GraphBuilder, Value, identifier, verify
from .lowering import check_supported, lower_sub_jaxpr
from .lowering.context import DEFAULT_MAX_WHILE_TRIPS, LoweringContext
from .lowering.source import location_of
from .model import ConvertedModel
from .passes import run_passes
from .trace import Traced, _argument_names, trace, trace_nnx


def convert(target: Any, *args: Any, name: str | None = None, input_names: Sequence[str] | None = None,
            strict: bool = False, dynamic_batch: bool = False,
            progress: Callable[[str], None] | None = None,
            max_while_trips: int = DEFAULT_MAX_WHILE_TRIPS) -> ConvertedModel:
    """Convert a JAX function or a Flax model to a SOFIE model.

    - `convert(fn, params, *example_inputs)` for `fn(params, *inputs)`; for Flax linen pass
      `module.apply` and the variables dict.
    - `convert(nnx_module, *example_inputs)` for a Flax nnx module.
    Example inputs are arrays or `jax.ShapeDtypeStruct`s. Weights with NaN or Inf values give a
    warning, or an error with `strict=True`.

    A symbolic batch: give inputs as `jax.ShapeDtypeStruct`s whose shapes come from
    `jax.export.symbolic_shape("b, 16")`, or pass `dynamic_batch=True` (dimension 0 of every input is
    the batch). The generated Session then takes a maximum batch size and `infer` the batch size.

    progress: called with the name of each step as it starts ("tracing", "lowering", "generating"),
    for a progress display.

    max_while_trips: the most steps a `lax.while_loop` whose trip count depends on the inputs runs in
    the generated code; one more throws std::runtime_error (naming the loop's line) instead of
    returning the result of an unfinished loop.
    """
    if _is_nnx_module(target):
        def trace_with(inputs):
            return trace_nnx(target, inputs, input_names)
        inputs, default_name = args, type(target).__name__
        labels = input_names or _argument_names(type(target).__call__, len(inputs), skip_first=True)
    elif callable(target):
        if not args:
            raise ConversionError("convert(fn, params, *example_inputs): the params argument is missing")

        def trace_with(inputs):
            return trace(target, args[0], inputs, input_names)
        inputs, default_name = args[1:], _function_name(target)
        labels = input_names or _argument_names(target, len(inputs), skip_first=True)
    else:
        raise ConversionError(f"cannot convert a {type(target).__name__}: give a function fn(params, *inputs), "
                              "a Flax linen module's `apply`, or a Flax nnx module")
    return trace_and_build(trace_with, inputs, name or default_name, strict, dynamic_batch, progress,
                           max_while_trips, input_labels=labels)


def trace_and_build(trace_with: Callable[[Sequence[Any]], Traced], inputs: Sequence[Any], name: str,
                    strict: bool = False, dynamic_batch: bool = False,
                    progress: Callable[[str], None] | None = None,
                    max_while_trips: int = DEFAULT_MAX_WHILE_TRIPS,
                    input_labels: Sequence[str] | None = None) -> ConvertedModel:
    """`trace_with(inputs)` -> lowered model (shared by every frontend); with a symbolic batch (see
    batch_positions) the model is traced at two batch sizes and generalised. input_labels: the inputs'
    names, for error messages."""
    batched = batch_positions(inputs, dynamic_batch, input_labels)
    (progress or _no_progress)("tracing")
    if batched is None:
        return build(trace_with(inputs), name, strict=strict, progress=progress, max_while_trips=max_while_trips)
    return build_dynamic(lambda batch: trace_with(at_batch(inputs, batched, batch)), name, strict=strict,
                         progress=progress, max_while_trips=max_while_trips)


def _no_progress(step: str) -> None:
    pass


def batch_positions(inputs: Sequence[Any], dynamic_batch: bool,
                    input_labels: Sequence[str] | None = None) -> list[list[int]] | None:
    """Per input, the positions of its batch dimension; None for a static model.

    The batch is the symbolic dimension of ShapeDtypeStruct inputs (one symbol for all inputs), or
    dimension 0 of every input with `dynamic_batch=True`. That dimension must then have one size in
    every example input: inputs whose first dimensions differ are not one batch (an outer product of
    a 4- and a 3-vector), and generalising them to one symbol would give a model that computes
    something else at every other batch size.
    """
    symbols = {str(d) for x in inputs for d in getattr(x, "shape", ()) if not isinstance(d, (int, np.integer))}
    if len(symbols) > 1:
        raise ConversionError(f"the inputs use several symbolic dimensions {sorted(symbols)}: only one (the "
                              "batch) is supported")
    if symbols:
        return [[i for i, d in enumerate(x.shape) if not isinstance(d, (int, np.integer))] for x in inputs]
    if dynamic_batch:
        if any(len(getattr(x, "shape", ())) == 0 for x in inputs):
            raise ConversionError("dynamic_batch=True needs every input to have a batch dimension (dimension 0)")
        _check_one_batch_size(inputs, input_labels)
        return [[0] for _ in inputs]
    return None


def _check_one_batch_size(inputs: Sequence[Any], input_labels: Sequence[str] | None) -> None:
    firsts = [int(x.shape[0]) for x in inputs]
    if len(set(firsts)) <= 1:
        return
    labels = list(input_labels or [])
    described = ", ".join(
        f"'{labels[i]}' (input {i}, shape {tuple(int(d) for d in x.shape)}) has {firsts[i]}" if i < len(labels)
        else f"input {i} (shape {tuple(int(d) for d in x.shape)}) has {firsts[i]}"
        for i, x in enumerate(inputs))
    raise ConversionError(
        "dynamic_batch=True takes dimension 0 of every input as one batch, but the example inputs' first "
        f"dimensions differ: {described}. Give example inputs with one batch size, or, where dimension 0 of "
        "some input is not a batch, convert with static shapes (dynamic_batch=False) or mark the batch "
        "explicitly with jax.ShapeDtypeStruct inputs whose shapes come from jax.export.symbolic_shape")


def at_batch(inputs: Sequence[Any], positions: list[list[int]], batch: int) -> list[Any]:
    """The example inputs as ShapeDtypeStructs with the batch dimension(s) set to `batch`."""
    import jax

    specs = []
    for x, where in zip(inputs, positions):
        shape = tuple(batch if i in where else int(d) for i, d in enumerate(x.shape))
        specs.append(jax.ShapeDtypeStruct(shape, x.dtype))
    return specs


def build(traced: Traced, name: str, strict: bool = False,
          progress: Callable[[str], None] | None = None,
          max_while_trips: int = DEFAULT_MAX_WHILE_TRIPS) -> ConvertedModel:
    """Lower a traced model and generate its RModel (shared by every frontend)."""
    step = progress or _no_progress
    step("lowering")
    graph = lower(traced, name, strict, max_while_trips=max_while_trips)
    step("generating")
    return ConvertedModel(graph=graph, rmodel=generate(graph), traced=traced)


def build_dynamic(trace_at: Callable[[int], Traced], name: str, strict: bool = False,
                  progress: Callable[[str], None] | None = None,
                  max_while_trips: int = DEFAULT_MAX_WHILE_TRIPS) -> ConvertedModel:
    """Like build(), with a symbolic batch: `trace_at(batch)` traces the model at a given batch size."""
    step = progress or _no_progress
    first, second = (trace_at(batch) for batch in TRACE_BATCHES)
    step("lowering")
    graph = generalise(lower(first, name, strict, traced_batch=True, max_while_trips=max_while_trips),
                       lower(second, name, strict, traced_batch=True, max_while_trips=max_while_trips))
    step("generating")
    return ConvertedModel(graph=graph, rmodel=generate(graph), traced=first, batch_param=BATCH_PARAM)


def lower(traced: Traced, name: str, strict: bool = False, traced_batch: bool = False,
          max_while_trips: int = DEFAULT_MAX_WHILE_TRIPS) -> Graph:
    """Traced model -> verified, optimised IR graph (traced_batch: one trace of a symbolic batch)."""
    n_params = len(traced.param_values)
    check_supported(traced.closed, [True] * n_params + [False] * len(traced.input_specs))
    check_types_and_sizes(traced.closed)

    builder = GraphBuilder(name)
    builder.graph.traced_batch = traced_batch  # read by the loops' sub-models, lowered on the way
    params = [builder.constant(value, path, origin=identifier(path))
              for path, value in zip(traced.param_names, traced.param_values)]
    inputs = [builder.input(input_name, spec.shape, spec.dtype)
              for input_name, spec in zip(traced.input_names, traced.input_specs)]
    output_names = [builder.unique_name(n) for n in traced.output_names]

    ctx = LoweringContext(builder, lower_sub_jaxpr, traced.const_names, max_while_trips)
    results = lower_sub_jaxpr(ctx, traced.closed, params + inputs)
    graph = builder.graph
    graph.outputs = _name_outputs(ctx, results, output_names)
    verify(graph)
    graph = run_passes(graph)
    check_weights_finite(graph, strict)
    return graph


def generate(graph: Graph):
    """IR graph -> generated sofie.RModel."""
    rmodel = emit(graph)
    try:
        rmodel.generate()
    except Exception as exc:  # SOFIE's own checks run here; say where the error comes from
        raise ConversionError(f"SOFIE failed to generate code for model '{graph.name}': {exc}") from exc
    return rmodel


_UNSUPPORTED_FLOATS = {"float16", "bfloat16", "float64"}


def check_types_and_sizes(closed) -> None:
    """Refuse models that compute in a float type other than float32, naming the first such line (also
    inside jitted functions), and unsigned outputs. Zero-size arrays are handled (or refused) by the walker."""
    for k, var in enumerate(closed.jaxpr.outvars):
        dtype = getattr(var.aval, "dtype", None)
        if dtype is not None and getattr(dtype, "kind", "") == "u":  # held as int64 inside (lowering/unsigned.py)
            raise ConversionError(f"output {k} of the model is {dtype}: the generated code has no unsigned "
                                  "tensors; cast the output to int32 (or int64)")

    def walk(jaxpr, enclosing: str) -> None:
        for eqn in jaxpr.eqns:
            where = location_of(eqn, enclosing)
            for var in eqn.outvars:
                dtype = getattr(var.aval, "dtype", None)
                if dtype is not None and str(dtype) in _UNSUPPORTED_FLOATS:
                    raise ConversionError(
                        f"the model computes in {dtype} ('{eqn.primitive.name}' at {where or 'unknown'}): "
                        "jax2sofie generates float32 code; cast the params and inputs to float32 (with "
                        "jax_enable_x64 on, also the arrays the model makes itself, e.g. "
                        "jnp.array(..., dtype=jnp.float32))")
            for sub in jcore.jaxprs_in_params(eqn.params):
                walk(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub, where)

    walk(closed.jaxpr, "")


def check_weights_finite(graph, strict: bool) -> None:
    """Warn about (or, strict, refuse) weights holding NaN or Inf: almost always a broken checkpoint.
    Only weights from the user's arrays (those with an origin): a large constant the model computes
    from literals is a weight too, and its -inf (an attention mask) is meant."""
    for value in graph.constants():
        from_user = value.is_weight and value.origin is not None
        if from_user and np.issubdtype(np.asarray(value.const).dtype, np.floating):
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
        if value.size == 0:  # the header SOFIE writes for an empty output does not compile
            where = ctx.zero_size_sources.get(id(value), "")
            raise ConversionError(f"output '{name}' is a zero-size array of shape {tuple(value.shape)}: zero-size "
                                  "outputs are not supported (SOFIE's generated code cannot hold an empty tensor)"
                                  + (f"\n  at {where}" if where else ""))
        if value.is_const or id(value) in inputs or id(value) in seen:
            value = ctx.builder.op("Identity", [value], value.shape, value.dtype, dtype=np.dtype(value.dtype).name)
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
