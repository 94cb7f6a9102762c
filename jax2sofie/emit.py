"""IR graph -> SOFIE RModel: tensors through PySofie's RModel methods, every operator through our
native module (`jax2sofie._native.push`), which constructs the SOFIE operators in C++.

A rank-0 JAX value is a SOFIE tensor of shape [1]: SOFIE's operators do not take rank-0 tensors, and
[1] broadcasts exactly like a scalar.
"""
from __future__ import annotations

import datetime

import numpy as np
import sofie

from .errors import ConversionError
from .ir import Graph, Value
from ._native_loader import native

SOFIE_TYPES = {
    np.dtype("float32"): sofie.ETensorType.FLOAT,
    np.dtype("int32"): sofie.ETensorType.INT32,
    np.dtype("int64"): sofie.ETensorType.INT64,
    np.dtype("bool"): sofie.ETensorType.BOOL,
}


def sofie_shape(shape) -> list[int]:
    return [int(d) for d in shape] or [1]


def sofie_dims(shape) -> list:
    """A shape with symbolic entries ("bs") as SOFIE Dims."""
    return [sofie.Dim(d) if isinstance(d, str) else sofie.Dim(int(d)) for d in shape] or [sofie.Dim(1)]


def sofie_type(value: Value) -> "sofie.ETensorType":
    try:
        return SOFIE_TYPES[np.dtype(value.dtype)]
    except (KeyError, TypeError):  # TypeError: JAX extended dtypes (PRNG keys) numpy does not know
        raise ConversionError(f"tensor '{value.name}' has dtype {value.dtype}, which the generated "
                              f"code does not support (supported: {', '.join(d.name for d in SOFIE_TYPES)})") from None


# SOFIE 0.1.0 operators that, when all their inputs are constants, compute their output at
# Initialize and store it as a constant, keeping the element type ...
SOFIE_FOLDS_TYPED = {"Add", "Sub", "Mul", "Div", "Pow", "Equal", "Less", "LessOrEqual", "Greater",
                     "GreaterOrEqual", "Identity", "Transpose", "Where", "Gemm", "Expand"}
# ... and those that fold int64 data only (shape tensors), checking the type: Reshape, Slice, Gather.
SOFIE_FOLDS_INT64_ONLY = {"Reshape", "Slice", "Gather"}


def sofie_misreads_constants(node) -> bool:
    """Whether SOFIE 0.1.0 would fold `node`, whose inputs are all constants, reading its data as
    int64 whatever its type: Concat does for any type (a read past the end of a float32, int32 or
    bool buffer: silently wrong numbers), Cast to int64 for a type it does not convert (bool)."""
    dtype = np.dtype(node.inputs[0].dtype)
    if node.op == "Concat":
        return dtype != np.int64
    if node.op == "Cast":
        return node.attrs.get("to") == "int64" and dtype not in (np.float32, np.int32, np.int64)
    return False


def _sofie_folds(node) -> bool:
    if node.op in SOFIE_FOLDS_TYPED or node.op in ("Concat", "Cast"):
        return True
    return node.op in SOFIE_FOLDS_INT64_ONLY and np.dtype(node.inputs[0].dtype) == np.int64


def refuse_sofie_int64_folding(graph: Graph) -> None:
    """Raise if SOFIE would fold constants reading them as int64 (see sofie_misreads_constants).

    Constness is followed through the operators SOFIE folds, in graph order, as SOFIE's Initialize
    does. passes.constant_folding folds such nodes before emission, so this is a guard: an error
    here is a missing folder, never a user mistake."""
    constant = {id(v) for v in graph.constants()}
    for node in graph.nodes:
        if not node.inputs or not all(id(v) in constant for v in node.inputs):
            continue
        if sofie_misreads_constants(node):
            raise ConversionError(
                f"node '{node.name}' ({node.op}) has only constant inputs of dtype {np.dtype(node.inputs[0].dtype).name}: "
                f"SOFIE would fold it reading the data as int64 (wrong numbers), and jax2sofie did not fold "
                f"it first (ops/folding.py has no folder for {node.op} here)"
                + (f"\n  at {node.source}" if node.source else ""))
        if _sofie_folds(node):
            constant.update(id(v) for v in node.outputs)


def checked_data(value: Value) -> np.ndarray:
    """The data of a constant as SOFIE will read it: the value's dtype and exactly its byte size.

    PySofie copies as many bytes as the tensor type and shape say, so a buffer of another dtype or
    size would be read past its end; this is where that is refused."""
    data = np.ascontiguousarray(value.const)
    expected = np.dtype(value.dtype)
    if data.dtype != expected:
        raise ConversionError(f"constant '{value.name}' holds {data.dtype} data but is declared {expected.name}")
    shape = sofie_shape(value.shape)
    if data.nbytes != int(np.prod(shape)) * expected.itemsize:
        raise ConversionError(f"constant '{value.name}' holds {data.nbytes} bytes, but its shape {list(value.shape)} "
                              f"of {expected.name} needs {int(np.prod(shape)) * expected.itemsize}")
    return data.reshape(shape)


def emit(graph: Graph) -> "sofie.RModel":
    """Build the RModel for `graph` (not yet generated)."""
    refuse_sofie_int64_folding(graph)
    # the date only: SOFIE writes it into the header, and the compile cache is keyed by the header's
    # content, so the same model converted twice (a .keras and an .h5 file) compiles once
    rmodel = sofie.RModel(graph.name, datetime.date.today().isoformat())
    for value in graph.inputs:
        if any(isinstance(d, str) for d in value.shape):
            rmodel.add_input_tensor_info(value.name, sofie_type(value), sofie_dims(value.shape))
        else:
            rmodel.add_input_tensor_info(value.name, sofie_type(value), sofie_shape(value.shape))
        rmodel.add_input_tensor_name(value.name)
    for value in graph.constants():
        sofie_type(value)  # a clear error for a dtype the generated code does not have
        data = checked_data(value)
        if value.is_weight:  # weights go to the weight file
            rmodel.add_initialized_tensor(value.name, sofie_type(value), sofie_shape(value.shape), data)
        else:  # literals and shape operands are written into the header
            rmodel.add_constant_tensor(value.name, sofie_type(value), sofie_shape(value.shape), data)
    try:
        native.push(rmodel, [
            {"op": node.op, "name": node.name, "inputs": [v.name for v in node.inputs],
             "outputs": [v.name for v in node.outputs], "attrs": node.attrs}
            for node in graph.nodes
        ])
    except native.NodeError as exc:  # add the user's line of the node the native module refused
        source = next((n.source for n in graph.nodes if n.name == exc.node), "")
        raise ConversionError(f"{exc}" + (f"\n  at {source}" if source else "")) from exc
    rmodel.add_output_tensor_name_list([v.name for v in graph.outputs])
    return rmodel
