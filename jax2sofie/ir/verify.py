"""The graph verifier, run after lowering and after every pass.

Structural checks (every value defined before use, unique names, outputs defined, every operator in
the operator table of ir/operators.py with a number of inputs its native factory accepts) plus
per-operator checks, by operator kind, for the invariants the emitter and SOFIE rely on. A failure
names the node and, where known, the user's source line.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import GraphError
from .graph import Graph, Node
from .operators import ELEMENTWISE_BROADCASTING_KINDS, OPERATORS, names as operator_names

# The element types the generated code handles; float64 models are refused at tracing time.
SUPPORTED_DTYPES = {np.dtype(t) for t in ("float32", "int32", "int64", "bool")}


def _broadcast_shape(shapes) -> tuple | None:
    """numpy's broadcasting rule for static shapes, or None where they do not broadcast. Plain Python:
    the verifier runs after every pass over every node, and np.broadcast_shapes costs ~6 us a call."""
    rank = max(len(s) for s in shapes)
    out = [1] * rank
    for shape in shapes:
        for axis, size in enumerate(shape, rank - len(shape)):
            if size != 1 and size != out[axis]:
                if out[axis] != 1:
                    return None
                out[axis] = size
    return tuple(out)


def _check_reshape(node: Node) -> str | None:
    data, out = node.inputs[0], node.outputs[0]
    if data.size != out.size:
        return f"reshape of {list(data.shape)} to {list(out.shape)} changes the number of elements"
    return None


def _check_transpose(node: Node) -> str | None:
    perm = list(node.attrs.get("perm", []))
    if sorted(perm) != list(range(node.inputs[0].rank)):
        return f"perm {perm} is not a permutation of the {node.inputs[0].rank} axes"
    expected = tuple(node.inputs[0].shape[p] for p in perm)
    if expected != node.outputs[0].shape:
        return f"output shape {list(node.outputs[0].shape)} should be {list(expected)}"
    return None


def _check_same_shape(node: Node) -> str | None:
    if node.inputs[0].shape != node.outputs[0].shape:
        return f"output shape {list(node.outputs[0].shape)} differs from input {list(node.inputs[0].shape)}"
    return None


def _check_broadcast(node: Node) -> str | None:
    expected = _broadcast_shape([v.shape for v in node.inputs])
    if expected is None:
        return f"inputs {[list(v.shape) for v in node.inputs]} do not broadcast"
    if expected != node.outputs[0].shape:
        return f"output shape {list(node.outputs[0].shape)} should be {list(expected)}"
    return None


def _check_batched_matmul(node: Node) -> str | None:
    a, b = node.inputs
    a_axes, b_axes = list(node.attrs.get("a_axes", [])), list(node.attrs.get("b_axes", []))
    out_axes = list(node.attrs.get("out_axes", []))
    for x, axes, key in ((a, a_axes, "a_fixed"), (b, b_axes, "b_fixed")):
        flat = list(node.attrs.get(key, []))
        fixed = dict(zip(flat[0::2], flat[1::2]))
        if any(d in axes or not 0 <= d < x.rank or not isinstance(x.shape[d], int) or not 0 <= i < x.shape[d]
               for d, i in fixed.items()):
            return f"{key} {flat} is not (axis, index) pairs of {list(x.shape)} outside {axes}"
        if len(set(axes)) != len(axes) or not all(0 <= d < x.rank for d in axes) \
                or any(x.shape[d] != 1 for d in range(x.rank) if d not in axes and d not in fixed):
            return f"axes {axes} of {list(x.shape)} are not distinct, or leave out an axis not of size 1"
    if len(a_axes) != len(b_axes):
        return f"a_axes {a_axes} and b_axes {b_axes} differ in length"
    batch = [a.shape[d] for d in a_axes[:-2]]
    if batch != [b.shape[d] for d in b_axes[:-2]] or a.shape[a_axes[-1]] != b.shape[b_axes[-2]]:
        return f"{list(a.shape)} x {list(b.shape)} do not multiply along a_axes {a_axes}, b_axes {b_axes}"
    logical = batch + [a.shape[a_axes[-2]], b.shape[b_axes[-1]]]
    if sorted(d for d in out_axes if d != -1) != list(range(len(logical))) \
            or tuple(1 if d == -1 else logical[d] for d in out_axes) != node.outputs[0].shape:
        return f"output shape {list(node.outputs[0].shape)} is not {logical} placed by out_axes {out_axes}"
    return None


OP_CHECKS: dict[str, Callable[[Node], str | None]] = {
    "Reshape": _check_reshape,
    "Transpose": _check_transpose,
    **{op: _check_same_shape for op in operator_names("unary")},
    **{op: _check_broadcast for op in operator_names(*ELEMENTWISE_BROADCASTING_KINDS)},
    "J2S_BatchedMatMul": _check_batched_matmul,
    "J2S_Softmax": _check_same_shape,
}


def verify(graph: Graph, known_ops: set[str] | None = None) -> None:
    """Raise GraphError at the first broken invariant of `graph`. `known_ops` narrows the operators
    allowed (default: every operator of the table)."""
    defined: set[int] = {id(v) for v in graph.inputs}
    names: dict[str, object] = {}

    def claim(value, owner: str) -> None:
        other = names.setdefault(value.name, value)
        if other is not value:
            raise GraphError(f"two different tensors are both named '{value.name}' ({owner})")

    for value in graph.inputs:
        claim(value, "graph input")
        if value.is_const:
            raise GraphError(f"graph input '{value.name}' carries constant data")
    for node in graph.nodes:
        if known_ops is not None and node.op not in known_ops:
            raise GraphError(f"{node.where()}: unknown operator '{node.op}'")
        operator = OPERATORS.get(node.op)
        if operator is None:
            raise GraphError(f"{node.where()}: unknown operator '{node.op}' (not in the operator table, "
                             "jax2sofie/ir/operators.py)")
        if not operator.accepts_inputs(len(node.inputs)):
            least, most = operator.inputs
            expected = f"{least}" if least == most else f"{least} to {most}" if most else f"at least {least}"
            raise GraphError(f"{node.where()}: {node.op} takes {expected} inputs, got {len(node.inputs)}")
        for value in node.inputs:
            if not value.is_const and id(value) not in defined:
                raise GraphError(f"{node.where()} reads '{value.name}' before it is computed")
            claim(value, node.where())
        for value in node.outputs:
            if id(value) in defined or value.is_const:
                raise GraphError(f"{node.where()} writes '{value.name}', which is already defined")
            if value.dtype not in SUPPORTED_DTYPES and np.dtype(value.dtype) not in SUPPORTED_DTYPES:
                raise GraphError(f"{node.where()} produces '{value.name}' of unsupported dtype {value.dtype}")
            claim(value, node.where())
            defined.add(id(value))
        check = OP_CHECKS.get(node.op)
        problem = check(node) if check else None
        if problem:
            raise GraphError(f"{node.where()}: {problem}")
    if not graph.outputs:
        raise GraphError(f"graph '{graph.name}' has no outputs")
    for value in graph.outputs:
        if not value.is_const and id(value) not in defined:
            raise GraphError(f"graph output '{value.name}' is never computed")
