"""Give weights their readable names back.

Folding creates new constants (a reshaped bias, a transposed kernel) whose names get a suffix while
the original param still holds its name. Once unused tensors are gone, each weight takes the name of
the param it comes from (`Dense_0_kernel`) where no other tensor of the graph uses that name.
"""
from __future__ import annotations

from ..ir import Graph


def name_weights(graph: Graph) -> Graph:
    tensors = graph.inputs + graph.constants() + [out for node in graph.nodes for out in node.outputs]
    taken = {v.name for v in tensors}
    for value in graph.constants():
        if value.is_weight and value.origin and value.name != value.origin and value.origin not in taken:
            taken.discard(value.name)
            value.name = value.origin
            taken.add(value.name)
    return graph
