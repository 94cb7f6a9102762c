"""Fuse chains of elementwise operators into one J2S_Elementwise loop.

Every elementwise SOFIE operator is a loop over memory of its own: the tanh GELU of a transformer is
eight of them (x^3, * 0.044715, + x, * sqrt(2/pi), tanh, + 1, * 0.5, * x), each reading and writing the
whole activation. Here an elementwise node whose readers are all in one group of elementwise nodes
of its output shape is inlined into that group's C++ expression, so the chain becomes one loop that
keeps its intermediates in registers.

What fuses: the float32 operators with a `fusion` expression in the operator table, ir/operators.py
(FLOAT_TEMPLATES here; their expressions are written exactly as SOFIE's own code computes them, so
the numbers do not change; except tanh, exp, sigmoid and erf, which become the vectorisable
expressions of ops/expressions.py, within 3.7e-7 absolute (tanh), 1.5e-7 relative (exp, sigmoid)
and 1.7e-7 relative (erf) of the exact functions, also where they stand alone: SOFIE's code calls
libm per element) and J2S_Elementwise nodes (their expression attribute is inlined as it is).
An intermediate is inlined only when it is float32, not a graph output, read only by nodes of one
group, and of that group's output shape (so no intermediate is broadcast, and every input of the
group broadcasts to the group's output like numpy). A node that
no producer is inlined into is left as it is. A group stops growing at MAX_GROUP nodes, which keeps the
generated loop bodies readable and quick to compile (a 10,000-layer chain becomes many loops, not
one).

Runs after the dense and conv fusions, which look for the Add/Max next to their Gemm/Conv.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.operators import OPERATORS, names
from ..ops.expressions import (FASTER_ALONE, ExpressionBuilder, erf_expression, exp_expression, operand,
                               sigmoid_expression, tanh_expression)

MAX_GROUP = 32

# the expressions an operator table entry names as "@name" (the vectorisable forms of libm calls)
_NAMED_EXPRESSIONS: dict[str, Callable[[ExpressionBuilder, Sequence[str]], str]] = {
    "tanh": tanh_expression, "exp": exp_expression, "sigmoid": sigmoid_expression, "erf": erf_expression,
}


def _template(fusion: str) -> Callable[[ExpressionBuilder, Sequence[str]], str]:
    """The expression of an operator table entry's `fusion` over argument expressions."""
    if fusion.startswith("@"):
        return _NAMED_EXPRESSIONS[fusion[1:]]
    reused = [i for i in range(10) if fusion.count(f"{{{i}}}") > 1]

    def expression(b: ExpressionBuilder, a: Sequence[str]) -> str:
        args = [b.share(x) if i in reused else x for i, x in enumerate(a)]  # computed once, read twice
        return fusion.format(*args, all=", ".join(args))

    return expression


# float32 operator -> its expression over argument expressions, as SOFIE's generated code has it;
# except Tanh, Exp, Sigmoid and Erf, the vectorisable expressions of expressions.py (libm in SOFIE)
FLOAT_TEMPLATES: dict[str, Callable[[ExpressionBuilder, Sequence[str]], str]] = {
    name: _template(OPERATORS[name].fusion) for name in sorted(names(fusion=True))
}


def _fusible(node: Node) -> bool:
    if len(node.outputs) != 1:
        return False
    if node.op == "J2S_Elementwise":
        return True
    return (node.op in FLOAT_TEMPLATES and node.outputs[0].dtype == np.float32
            and all(v.dtype == np.float32 for v in node.inputs))


def fuse_elementwise(graph: Graph) -> Graph:
    consumers = graph.consumers()
    producers = graph.producers()
    graph_outputs = {id(v) for v in graph.outputs}
    # Last node first, so that a node's readers already know their group: a node joins the group of
    # its readers when they are all in one group (a DAG such as GELU's, which reads x four times,
    # fuses whole), else it starts a group of its own.
    root_of: dict[int, Node] = {}  # id(node) -> the last node of its group, which the group becomes
    size: dict[int, int] = {}  # id(root) -> nodes in its group
    for node in reversed(graph.nodes):
        if not _fusible(node):
            continue
        root = _joined_root(node, consumers.get(id(node.outputs[0]), []), root_of, graph_outputs)
        if root is not None and size[id(root)] < MAX_GROUP:
            root_of[id(node)] = root
            size[id(root)] += 1
        else:
            root_of[id(node)] = node
            size[id(node)] = 1
    inlined = {key for key, root in root_of.items() if id(root) != key}
    rewritten = [node for node in graph.nodes if size.get(id(node), 1) > 1
                 or (node.op in FASTER_ALONE and _fusible(node) and id(node) not in inlined)]
    replace = {id(node): _fused_node(node, producers, inlined) for node in rewritten}
    graph.nodes = [replace.get(id(node), node) for node in graph.nodes if id(node) not in inlined]
    return graph


def _joined_root(node: Node, readers: list[Node], root_of: dict[int, Node], graph_outputs: set[int]) -> Node | None:
    """The group `node` can be inlined into: the one all its readers belong to, if its output is a
    float32 intermediate of that group's output shape."""
    out = node.outputs[0]
    if not readers or out.dtype != np.float32 or id(out) in graph_outputs:
        return None
    if any(id(reader) not in root_of for reader in readers):
        return None
    roots = {id(root_of[id(reader)]): root_of[id(reader)] for reader in readers}
    if len(roots) != 1:
        return None
    (root,) = roots.values()
    return root if out.shape == root.outputs[0].shape else None


def _fused_node(root: Node, producers: dict[int, Node], inlined: set[int], inline_scalars: bool = True) -> Node:
    """One J2S_Elementwise computing `root` and the nodes inlined into it."""
    builder = ExpressionBuilder()
    tensors: list[Value] = []
    computed: dict[int, str] = {}  # id(value) -> its expression (a shared name if read again)

    def argument(value: Value) -> str:
        if id(value) in computed:
            return computed[id(value)]
        producer = producers.get(id(value))
        if producer is not None and id(producer) in inlined:
            expr = builder.share(expression(producer))
        else:
            expr = operand(builder, tensors, value, inline_scalars)
        computed[id(value)] = expr
        return expr

    def expression(node: Node) -> str:
        args = [argument(v) for v in node.inputs]
        if node.op == "J2S_Elementwise":
            return builder.apply(node.attrs["expression"], args)
        return FLOAT_TEMPLATES[node.op](builder, args)

    result = expression(root)
    if not tensors:  # every input a scalar constant (left by no pipeline: constant folding runs first)
        return _fused_node(root, producers, inlined, inline_scalars=False)
    out = root.outputs[0]
    return Node("J2S_Elementwise", tensors, [out], {"expression": builder.render(result),
                                                   "to": np.dtype(out.dtype).name}, root.name, root.source)
