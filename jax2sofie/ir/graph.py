"""The jax2sofie IR: values with shape and dtype, nodes at the level of SOFIE operators, a graph.

A node's `op` is the name of a SOFIE operator as the native module (`csrc/`) knows it ("Gemm",
"Add", "Reshape", ...); its attributes are the ones that module reads. Keeping the IR at SOFIE level
means the emitter is a plain loop and every pass sees exactly what will be generated.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Shape = tuple[int, ...]

# A float32 constant of more elements than this is a weight, stored in the weight file like a param
# whatever made it (a param, an array the function closes over, a computation folded on constants),
# so that the header does not grow with the model; smaller ones stay literals in the header. Only
# float32: SOFIE writes no other type to a weight file (its other constants stay in the header).
LITERAL_MAX_ELEMENTS = 64


def belongs_in_weight_file(array) -> bool:
    """Whether a constant's data is a weight by its size and type (see LITERAL_MAX_ELEMENTS)."""
    dtype = getattr(array, "dtype", None)
    # isinstance first: JAX's extended dtypes (PRNG keys) are not numpy dtypes
    return isinstance(dtype, np.dtype) and dtype == np.float32 and int(np.size(array)) > LITERAL_MAX_ELEMENTS


@dataclass(eq=False)
class Value:
    """A tensor of the graph. `const` holds the data of initialised tensors (weights, constants)."""

    name: str
    shape: Shape
    dtype: np.dtype
    const: np.ndarray | None = None
    # True for the weights of the model (kept as named tensors, never inlined; SOFIE writes the float32
    # ones to the weight file): the user's params, what is folded from them, and the float32 constants
    # of more than LITERAL_MAX_ELEMENTS elements (arrays the function closes over, folded results)
    is_weight: bool = False
    # for weights: the readable name of the param or captured array it comes from (`Dense_0_kernel`),
    # also after folding; None for a weight made by folding constants that are not weights
    origin: str | None = None

    @property
    def is_const(self) -> bool:
        return self.const is not None

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __repr__(self) -> str:
        kind = "weight" if self.is_weight else "const" if self.is_const else "value"
        return f"<{kind} {self.name}: {self.dtype}{list(self.shape)}>"


@dataclass(eq=False)
class Node:
    """One SOFIE operator: `outputs = op(inputs, **attrs)`. `source` is the user's file:line."""

    op: str
    inputs: list[Value]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    source: str = ""

    def where(self) -> str:
        """The node as an error message names it: its name, operator and the user's line."""
        return f"node '{self.name}' ({self.op})" + (f" from {self.source}" if self.source else "")

    def __repr__(self) -> str:
        ins = ", ".join(v.name for v in self.inputs)
        outs = ", ".join(v.name for v in self.outputs)
        return f"{outs} = {self.op}({ins}){' ' + str(self.attrs) if self.attrs else ''}"


@dataclass(eq=False)
class Graph:
    """Inputs, outputs and the nodes in execution (topological) order."""

    name: str
    inputs: list[Value] = field(default_factory=list)
    outputs: list[Value] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    # True for each of the two traces of a model with a symbolic batch (dynamic.py): its sizes are
    # those of one trace batch, and a pass that decides by a size must decide alike in both traces
    traced_batch: bool = False
    # the condition and body graphs of the J2S_While nodes, by the name their nodes give them
    # (attributes cond_model / body_model): models of their own, generated into the same header
    sub_models: dict[str, "Graph"] = field(default_factory=dict)

    def constants(self) -> list[Value]:
        """The initialised tensors the graph uses, in first-use order, each once."""
        seen: dict[int, Value] = {}
        for node in self.nodes:
            for value in node.inputs:
                if value.is_const and id(value) not in seen:
                    seen[id(value)] = value
        for value in self.outputs:
            if value.is_const and id(value) not in seen:
                seen[id(value)] = value
        return list(seen.values())

    def producers(self) -> dict[int, Node]:
        """id(value) -> the node that computes it."""
        return {id(out): node for node in self.nodes for out in node.outputs}

    def consumers(self) -> dict[int, list[Node]]:
        """id(value) -> the nodes that read it, in order."""
        users: dict[int, list[Node]] = {}
        for node in self.nodes:
            for value in node.inputs:
                users.setdefault(id(value), []).append(node)
        return users

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for node in self.nodes:
            counts[node.op] = counts.get(node.op, 0) + 1
        return counts

    def __str__(self) -> str:
        lines = [f"graph {self.name}({', '.join(map(repr, self.inputs))}):"]
        lines += [f"  {node!r}" for node in self.nodes]
        lines.append(f"  return {', '.join(v.name for v in self.outputs)}")
        return "\n".join(lines)
