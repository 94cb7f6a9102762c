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


def emit(graph: Graph) -> "sofie.RModel":
    """Build the RModel for `graph` (not yet generated)."""
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
        data = np.ascontiguousarray(value.const).reshape(sofie_shape(value.shape))
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
