"""Fuse `Add(Gemm(A, B), bias)` into `Gemm(A, B, bias)` with beta = 1.

Dense layers trace to a matrix product followed by a bias add; SOFIE's Gemm takes the bias as its C
operand and writes it in the same pass over the output, saving one full read and write of it.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph


def fuse_gemm_bias(graph: Graph) -> Graph:
    consumers = graph.consumers()
    producers = graph.producers()
    graph_outputs = {id(v) for v in graph.outputs}
    removed: set[int] = set()
    for add in graph.nodes:
        if add.op != "Add":
            continue
        for product, bias in (add.inputs, add.inputs[::-1]):
            gemm = producers.get(id(product))
            if (gemm is None or gemm.op != "Gemm" or len(gemm.inputs) != 2 or product.rank != 2
                    or not bias.is_const or id(product) in graph_outputs
                    or len(consumers.get(id(product), [])) != 1 or gemm.attrs.get("activation")
                    or add.outputs[0].shape != product.shape
                    or tuple(np.broadcast_shapes(bias.shape, product.shape)) != product.shape):
                continue
            gemm.inputs.append(bias)
            gemm.attrs["beta"] = 1.0
            gemm.outputs = [add.outputs[0]]
            removed.add(id(add))
            break
    graph.nodes = [node for node in graph.nodes if id(node) not in removed]
    return graph
