"""Drop Expand nodes whose readers broadcast anyway.

JAX makes broadcasting explicit (broadcast_in_dim before every mixed-shape elementwise op); SOFIE's
elementwise operators broadcast by themselves, so the Expand only costs a copy, and on a constant it
would store the broadcast copy as a weight. Runs before constant folding for that reason.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph
from ..ir.operators import names

# operators that broadcast their inputs multidirectionally (numpy rules), J2S_Elementwise included
BROADCASTING_OPS = names(broadcasting=True)


def eliminate_broadcasts(graph: Graph) -> Graph:
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    for node in graph.nodes:
        if node.op != "Expand":
            continue
        source, expanded = node.inputs[0], node.outputs[0]
        readers = consumers.get(id(expanded), [])
        if id(expanded) in graph_outputs or not readers:
            continue
        if all(_still_same_shape(reader, expanded, source) for reader in readers):
            for reader in readers:
                reader.inputs = [source if v is expanded else v for v in reader.inputs]
            consumers.setdefault(id(source), []).extend(readers)
    return graph


def _still_same_shape(reader, expanded, source) -> bool:
    """Whether `reader` computes the same output shape when it reads `source` instead of `expanded`."""
    if reader.op not in BROADCASTING_OPS:
        return False
    shapes = [source.shape if v is expanded else v.shape for v in reader.inputs]
    try:
        return tuple(np.broadcast_shapes(*shapes)) == reader.outputs[0].shape
    except ValueError:
        return False
