"""From a user's model to a ClosedJaxpr whose inputs are [params..., example inputs...].

Params are flattened with their pytree paths so every weight gets a readable name (`Dense_0/kernel`);
leaves that cannot be weights (PRNG keys of Flax dropout layers, ...) are closed over instead, and are
only an error if the computation actually depends on them. Arrays the function itself closes over are
consts of the jaxpr; they are named after where the function holds them (closure.py).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.extend import core as jcore

from .closure import name_consts
from .errors import ConversionError


@dataclass
class Traced:
    closed: jcore.ClosedJaxpr
    param_names: list[str]  # readable path per traced param leaf, e.g. "Dense_0/kernel"
    param_values: list[np.ndarray]
    input_names: list[str]
    input_specs: list[jax.ShapeDtypeStruct]
    output_names: list[str]
    output_tree: Any
    # fn(*inputs) -> flat list of outputs, computed by JAX: the reference for checks
    reference: Callable[..., list]
    # id(const) -> readable name, for the consts of `closed` (and of its nested closed jaxprs) that are
    # arrays the function closes over, e.g. "Dense_0/kernel" of a functools.partial(apply, variables)
    const_names: dict[int, str] = field(default_factory=dict)


def trace(fn: Callable, params: Any, example_inputs: Sequence[Any], input_names: Sequence[str] | None = None
          ) -> Traced:
    """Trace `fn(params, *inputs)`."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    weights: list[tuple[int, str, np.ndarray]] = []
    for index, (path, leaf) in enumerate(leaves):
        name = path_name(path)
        if _is_weight(leaf):
            weights.append((index, name, _as_weight(leaf, name)))
        elif not _is_key(leaf):
            raise ConversionError(f"param '{name}' is a {type(leaf).__name__}, not an array: params must be a "
                                  "pytree of arrays (PRNG keys are allowed and closed over)")
    constant_leaves = [leaf for _, leaf in leaves]
    weight_indices = [index for index, _, _ in weights]

    def rebuild(weight_values):
        flat = list(constant_leaves)
        for index, value in zip(weight_indices, weight_values):
            flat[index] = value
        return jax.tree_util.tree_unflatten(treedef, flat)

    specs = [_input_spec(x, i) for i, x in enumerate(example_inputs)]
    names = list(input_names) if input_names else _argument_names(fn, len(specs), skip_first=True)

    # the pytree structure of fn's output, recorded while make_jaxpr traces it (tracing it a second
    # time with eval_shape only for the structure would double the tracing time of a big model)
    output_structure = []

    def flat_fn(*args):
        out = fn(rebuild(args[:len(weights)]), *args[len(weights):])
        output_structure[:] = [jax.tree_util.tree_structure(out)]
        return jax.tree_util.tree_leaves(out)

    param_specs = [jax.ShapeDtypeStruct(v.shape, v.dtype) for _, _, v in weights]
    try:
        closed, out_shapes = jax.make_jaxpr(flat_fn, return_shape=True)(*param_specs, *specs)
        out_tree = output_structure[0]
    except (TypeError, ValueError, IndexError) as exc:  # JAX's shape and dtype errors while tracing
        raise TracingError(exc, names, specs) from exc
    if not out_shapes:
        raise ConversionError("the function returns no arrays: there is nothing to compute")
    weight_values = [v for _, _, v in weights]
    jitted = jax.jit(flat_fn)
    return Traced(
        closed=closed,
        param_names=[name for _, name, _ in weights],
        param_values=weight_values,
        input_names=names,
        input_specs=specs,
        output_names=_output_names(out_tree),
        output_tree=out_tree,
        reference=lambda *xs: [np.asarray(o) for o in jitted(*weight_values, *xs)],
        const_names=name_consts(closed, fn),
    )


def trace_nnx(module: Any, example_inputs: Sequence[Any], input_names: Sequence[str] | None = None) -> Traced:
    """Trace a Flax nnx module: its state becomes the params, `module(*inputs)` the function."""
    from flax import nnx

    graphdef, state = nnx.split(module)

    def call(state, *xs):
        return nnx.merge(graphdef, state)(*xs)

    names = list(input_names) if input_names else _argument_names(type(module).__call__, len(example_inputs),
                                                                   skip_first=True)
    return trace(call, state, example_inputs, names)


class TracingError(ConversionError):
    """The model cannot be traced with the example inputs given: almost always an input whose shape or
    dtype does not match what the model expects. Names the inputs and the user's line that failed."""

    def __init__(self, cause: Exception, names: Sequence[str], specs: Sequence[jax.ShapeDtypeStruct]):
        given = ", ".join(f"{n}: {np.dtype(s.dtype).name}{list(s.shape)}" for n, s in zip(names, specs))
        where = _user_frame(cause.__traceback__)
        super().__init__(f"the model cannot be traced with the example input(s) {given or '(none)'}: "
                         f"{type(cause).__name__}: {cause}" + (f"\n  at {where}" if where else "")
                         + "\n  (does the shape or dtype of an example input match what the model expects?)")


# frames of these packages are not the user's code
_LIBRARY_PACKAGES = ("jax", "jaxlib", "flax", "jax2sofie", "numpy", "keras")


def _user_frame(tb) -> str:
    """`file:line (function)` of the innermost traceback frame outside JAX, Flax and jax2sofie."""
    import os
    import traceback

    def is_library(filename: str) -> bool:
        parts = filename.replace(os.sep, "/").split("/")
        return any(package in parts for package in _LIBRARY_PACKAGES) or filename.startswith("<")

    user = [f for f in traceback.extract_tb(tb) if not is_library(f.filename)]
    return f"{user[-1].filename}:{user[-1].lineno} ({user[-1].name})" if user else ""


# -- helpers ------------------------------------------------------------------------------------------
def path_name(path) -> str:
    """`(DictKey('params'), DictKey('Dense_0'), DictKey('kernel'))` -> "Dense_0/kernel"."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey):
            parts.append(key.name)
        else:
            parts.append(str(key))
    if parts and parts[-1] == "value":  # nnx Variable leaves
        parts.pop()
    if len(parts) > 1 and parts[0] == "params":  # the linen variables dict's collection name
        parts.pop(0)
    return "/".join(parts) or "param"


def _is_key(leaf) -> bool:
    return hasattr(leaf, "dtype") and jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _is_weight(leaf) -> bool:
    if _is_key(leaf):
        return False
    if isinstance(leaf, (np.ndarray, np.generic, jax.Array, float, int, bool)):
        return True
    return False


def _as_weight(leaf, name: str) -> np.ndarray:
    value = np.asarray(jax.device_get(leaf))
    dtype = jax.dtypes.canonicalize_dtype(value.dtype)  # what JAX itself computes in (float64 -> float32)
    if dtype == np.float64:
        raise ConversionError(f"param '{name}' is float64: jax2sofie generates float32 code; cast the params "
                              "to float32 (or disable jax_enable_x64)")
    return value.astype(dtype)


def _input_spec(x, index: int) -> jax.ShapeDtypeStruct:
    if isinstance(x, jax.ShapeDtypeStruct):
        shape, dtype = x.shape, x.dtype
    elif hasattr(x, "shape") and hasattr(x, "dtype"):
        shape, dtype = x.shape, x.dtype
    else:
        raise ConversionError(f"example input {index} is a {type(x).__name__}: give an array or a "
                              "jax.ShapeDtypeStruct")
    dtype = jax.dtypes.canonicalize_dtype(dtype)
    if dtype == np.float64:
        raise ConversionError(f"example input {index} is float64 with jax_enable_x64 on: jax2sofie generates "
                              "float32 code; give a float32 input")
    if any(int(d) == 0 for d in shape):
        raise ConversionError(f"example input {index} has shape {tuple(shape)}: zero-size dimensions are not "
                              "supported (the generated code has nothing to compute)")
    return jax.ShapeDtypeStruct(tuple(shape), dtype)


def _argument_names(fn: Callable, count: int, skip_first: bool) -> list[str]:
    try:
        parameters = [p for p in inspect.signature(fn).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        parameters = []
    if skip_first and parameters:
        parameters = parameters[1:]
    names = [p.name for p in parameters[:count]]
    return names + [f"input_{i}" for i in range(len(names), count)]


def _output_names(out_tree) -> list[str]:
    paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(
        jax.tree_util.tree_unflatten(out_tree, [0] * out_tree.num_leaves))[0]]
    if len(paths) == 1:
        return ["output"]
    return ["output_" + (path_name(path).replace("/", "_") if path else str(i)) for i, path in enumerate(paths)]


__all__ = ["Traced", "TracingError", "trace", "trace_nnx", "path_name"]
