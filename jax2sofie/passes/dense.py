"""Dense layers become J2S_Dense: `act(A W + b)` in one project-owned operator.

A Gemm whose B is a constant (K, N) matrix and whose A is read untransposed is a dense layer. It is
rewritten to J2S_Dense (csrc/owned/dense.hpp), taking with it the bias (Gemm's C operand, or an Add
of a constant over the last axis right after it) and the activation that follows (Relu, Sigmoid,
Tanh), when nothing else reads the values in between. J2S_Dense treats all leading axes of A as rows
(one sgemm instead of SOFIE's loop of one sgemm per leading index), uses sgemv for a few rows (SOFIE's
Gemm always calls sgemm, several times slower at batch 1), and applies bias and activation in one
pass over the output, sigmoid and tanh included (SOFIE's Gemm drops those).
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value

ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


def _as_bias(value: Value, n: int) -> np.ndarray | None:
    """The constant as an (N,) bias if it only varies along the last axis, else None."""
    if not value.is_const or value.dtype != np.float32 or value.size != n:
        return None
    if value.rank == 0 or value.shape[-1] != n:
        return None
    return np.ascontiguousarray(np.asarray(value.const, np.float32).reshape(n))


def _weight_kn(gemm: Node) -> Value | None:
    """B of the Gemm as a constant (K, N) matrix (transposed at conversion time if transB)."""
    b = gemm.inputs[1]
    if not b.is_const or b.rank != 2 or b.dtype != np.float32:
        return None
    if not gemm.attrs.get("transB"):
        return b
    data = np.ascontiguousarray(np.asarray(b.const).T)
    return Value(f"{b.name}_kn", data.shape, b.dtype, const=data, is_weight=b.is_weight, origin=b.origin)


def _bias_value(like: Value, data: np.ndarray, suffix: str) -> Value:
    return Value(f"{like.name}{suffix}", data.shape, np.dtype(np.float32), const=data, is_weight=like.is_weight,
                 origin=like.origin)


def fuse_dense(graph: Graph) -> Graph:
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    removed: set[int] = set()

    def sole_reader(value: Value) -> Node | None:
        readers = consumers.get(id(value), [])
        if id(value) in graph_outputs or len(readers) != 1:
            return None
        return readers[0]

    for gemm in graph.nodes:
        if gemm.op != "Gemm" or gemm.attrs.get("transA") or float(gemm.attrs.get("alpha", 1.0)) != 1.0:
            continue
        a, y = gemm.inputs[0], gemm.outputs[0]
        activation = gemm.attrs.get("activation") or ""
        if activation not in ("", "relu") or a.is_const or a.dtype != np.float32 or a.rank < 1:
            continue
        w = _weight_kn(gemm)
        if w is None or a.shape[-1] != w.shape[0] or y.shape[-1] != w.shape[1]:
            continue
        n = w.shape[1]
        bias = None
        if len(gemm.inputs) == 3:
            data = _as_bias(gemm.inputs[2], n)
            if data is None or float(gemm.attrs.get("beta", 1.0)) != 1.0:
                continue
            bias = _bias_value(gemm.inputs[2], data, "_n") if gemm.inputs[2].shape != (n,) else gemm.inputs[2]
        # absorb a following bias Add and activation, as long as nothing else reads what they replace
        while not activation:
            reader = sole_reader(y)
            if reader is None:
                break
            if reader.op == "Add" and bias is None and len(reader.inputs) == 2 and reader.outputs[0].shape == y.shape:
                other = reader.inputs[1] if reader.inputs[0] is y else reader.inputs[0]
                data = _as_bias(other, n) if other is not y else None
                if data is None:
                    break
                bias = other if other.shape == (n,) else _bias_value(other, data, "_n")
            elif reader.op in ACTIVATIONS and reader.outputs[0].shape == y.shape:
                activation = ACTIVATIONS[reader.op]
            else:
                break
            removed.add(id(reader))
            y = reader.outputs[0]
        gemm.op = "J2S_Dense"
        gemm.inputs = [a, w] + ([bias] if bias is not None else [])
        gemm.outputs = [y]
        gemm.attrs = {"dtype": "float32", "activation": activation}
    graph.nodes = [node for node in graph.nodes if id(node) not in removed]
    return graph
