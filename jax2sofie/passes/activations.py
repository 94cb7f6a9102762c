"""Recognise ReLU written as `max(x, 0)` (what jax.nn.relu traces to).

After a Gemm whose output nothing else reads, it becomes the Gemm's fused activation (applied in the
same pass over the output); elsewhere it becomes SOFIE's Relu operator. SOFIE's Gemm also offers fused
sigmoid and tanh, but its CPU code silently drops them (tests/test_native.py), so only ReLU is fused.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value


def _is_zero_scalar(value: Value) -> bool:
    return value.is_const and np.size(value.const) == 1 and float(np.asarray(value.const).ravel()[0]) == 0.0


def fuse_relu(graph: Graph) -> Graph:
    consumers = graph.consumers()
    producers = graph.producers()
    graph_outputs = {id(v) for v in graph.outputs}
    kept: list[Node] = []
    for node in graph.nodes:
        if node.op != "Max" or len(node.inputs) != 2 or node.outputs[0].dtype != np.float32:
            kept.append(node)
            continue
        a, b = node.inputs
        x = a if _is_zero_scalar(b) else b if _is_zero_scalar(a) else None
        if x is None or x.shape != node.outputs[0].shape:
            kept.append(node)
            continue
        gemm = producers.get(id(x))
        if (gemm is not None and gemm.op == "Gemm" and not gemm.attrs.get("activation")
                and len(consumers.get(id(x), [])) == 1 and id(x) not in graph_outputs):
            gemm.attrs["activation"] = "relu"
            gemm.outputs = [node.outputs[0]]
            producers[id(node.outputs[0])] = gemm
            continue
        node.op, node.inputs, node.attrs = "Relu", [x], {"dtype": "float32"}
        kept.append(node)
    graph.nodes = kept
    return graph
