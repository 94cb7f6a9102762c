"""Transpose sinking: move Transposes down through layout-agnostic ops and cancel inverse pairs.

Convolutions are lowered as Transpose(NHWC -> NCHW) -> J2S_Conv -> Transpose(NCHW -> NHWC) (see
lowering/conv.py), so a CNN starts with two Transposes per layer. This pass walks the graph once in
execution order and keeps every Transpose *pending* (not yet emitted) while what reads it does not
care about the layout:
- element-wise ops (unary; broadcasting binary/Where, whose other inputs are constants, size-1
  values, or values whose inverse-transposed copy already exists) run on the untransposed tensor,
  constants permuted at conversion time;
- J2S_Pool runs on the untransposed tensor with its per-axis attributes permuted;
- a Transpose of a pending Transpose composes with it; the identity composition disappears.
A pending Transpose is emitted only where something layout-specific reads it (a conv, a reshape
before a Dense, a graph output), once per (tensor, permutation). So conv-relu-pool-conv-relu-pool-
flatten-dense keeps one Transpose at the input and one before the flatten.

Nodes are rebuilt, never changed in place; if the result moves more data through Transposes than
the graph did before (a value read both by an agnostic op and by a layout-specific one can need
two), the original graph is kept.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value
from ..ir.operators import ELEMENTWISE_BROADCASTING_KINDS, names

# one input, output of the same shape, element by element
UNARY_OPS = names("unary")
# element-wise with numpy broadcasting of all inputs (not J2S_Elementwise, which is left in place)
BROADCASTING_OPS = names(*ELEMENTWISE_BROADCASTING_KINDS)


def inverse(perm) -> list[int]:
    inv = [0] * len(perm)
    for j, p in enumerate(perm):
        inv[p] = j
    return inv


def _permuted(shape, perm) -> tuple:
    return tuple(shape[p] for p in perm)


class _Sinker:
    def __init__(self, graph: Graph):
        self.graph = graph
        self.nodes: list[Node] = []
        # id(value) -> (source, perm): value == Transpose(source, perm), not emitted yet
        self.pending: dict[int, tuple[Value, list[int]]] = {}
        self.pending_value: dict[int, Value] = {}
        # (id(source), perm) -> the emitted transposed value
        self.emitted: dict[tuple[int, tuple[int, ...]], Value] = {}
        self.sources: dict[int, str] = {}
        self.taken = {v.name for v in graph.inputs + graph.constants()}
        self.taken |= {v.name for node in graph.nodes for v in node.outputs}
        self.taken |= {node.name for node in graph.nodes}

    def unique(self, base: str) -> str:
        name, k = base, 0
        while name in self.taken:
            k += 1
            name = f"{base}_{k}"
        self.taken.add(name)
        return name

    # -- pending transposes ---------------------------------------------------------------------------------
    def defer(self, value: Value, source: Value, perm) -> None:
        self.pending[id(value)] = (source, list(perm))
        self.pending_value[id(value)] = value

    def resolve(self, value: Value, source_line: str = "") -> Value:
        """The value to read in place of `value`: emits its pending Transpose (once) if it has one."""
        if id(value) not in self.pending:
            return value
        source, perm = self.pending[id(value)]
        if perm == list(range(len(perm))):
            return source
        key = (id(source), tuple(perm))
        if key not in self.emitted:
            out = self.pending_value[id(value)]
            if any(out is v for v in self.emitted.values()):  # the same view reached two ways
                out = Value(self.unique(out.name + "_t"), out.shape, out.dtype)
            self.nodes.append(Node("Transpose", [source], [out], {"perm": list(perm)},
                                   self.unique(f"transpose_{out.name}"), source_line))
            self.emitted[key] = out
        return self.emitted[key]

    # -- rewrites -------------------------------------------------------------------------------------------
    def visit(self, node: Node) -> None:
        if node.op == "Transpose" and not node.inputs[0].is_const:
            self.sink_transpose(node)
        elif node.op in UNARY_OPS and len(node.inputs) == 1 and len(node.outputs) == 1 \
                and id(node.inputs[0]) in self.pending:
            source, perm = self.pending[id(node.inputs[0])]
            self.emit_sunk(node, [source], perm)
        elif node.op in BROADCASTING_OPS and len(node.outputs) == 1 and self.try_broadcasting(node):
            pass
        elif node.op == "J2S_Pool" and id(node.inputs[0]) in self.pending:
            source, perm = self.pending[id(node.inputs[0])]
            attrs = dict(node.attrs)
            rank = len(perm)
            for key in ("window", "strides", "dilations"):
                attrs[key] = [node.attrs[key][j] for j in inverse(perm)]
            pads = node.attrs["pads"]
            attrs["pads"] = [pads[j] for j in inverse(perm)] + [pads[rank + j] for j in inverse(perm)]
            self.emit_sunk(node, [source], perm, attrs)
        else:
            self.keep(node)

    def keep(self, node: Node) -> None:
        inputs = [self.resolve(v, node.source) for v in node.inputs]
        self.nodes.append(Node(node.op, inputs, list(node.outputs), dict(node.attrs), node.name, node.source))

    def sink_transpose(self, node: Node) -> None:
        x, out = node.inputs[0], node.outputs[0]
        perm = list(node.attrs["perm"])
        if id(x) in self.pending:  # Transpose(Transpose(s, p), q) = Transpose(s, p o q)
            source, inner = self.pending[id(x)]
            self.defer(out, source, [inner[q] for q in perm])
        else:
            self.defer(out, x, perm)
            self.sources[id(out)] = node.source

    def emit_sunk(self, node: Node, inputs: list[Value], perm, attrs=None) -> None:
        """`node` on untransposed inputs; its output becomes a pending Transpose with `perm`."""
        out = node.outputs[0]
        new_out = Value(self.unique(out.name + "_t"), _permuted(out.shape, inverse(perm)), out.dtype)
        self.nodes.append(Node(node.op, inputs, [new_out], dict(node.attrs if attrs is None else attrs),
                               node.name, node.source))
        self.defer(out, new_out, perm)

    def try_broadcasting(self, node: Node) -> bool:
        out = node.outputs[0]
        perms = [self.pending[id(v)][1] for v in node.inputs if id(v) in self.pending]
        if not perms or any(p != perms[0] for p in perms) or len(perms[0]) != out.rank:
            return False
        perm = perms[0]
        inv = inverse(perm)
        inputs = []
        for v in node.inputs:
            if id(v) in self.pending:
                source, _ = self.pending[id(v)]
                if source.rank != out.rank:
                    return False
                inputs.append(source)
            elif v.size == 1 and v.rank <= out.rank:
                inputs.append(v)
            elif v.is_const and v.rank <= out.rank:
                full = np.asarray(v.const).reshape((1,) * (out.rank - v.rank) + tuple(v.shape))
                data = np.ascontiguousarray(np.transpose(full, inv))
                inputs.append(Value(self.unique(v.name + "_t"), data.shape, v.dtype, const=data,
                                    is_weight=v.is_weight, origin=v.origin))
            elif v.rank == out.rank and (id(v), tuple(inv)) in self.emitted:
                inputs.append(self.emitted[(id(v), tuple(inv))])  # its inverse-transposed copy exists
            else:
                return False
        self.emit_sunk(node, inputs, perm)
        return True

    def finish(self) -> list[Value]:
        outputs = []
        for value in self.graph.outputs:
            resolved = self.resolve(value)
            if resolved is not value and (resolved.is_const or any(resolved is v for v in self.graph.inputs)):
                # the output must be computed by a node (docs/sofie_workarounds.md: no operator-less outputs)
                self.nodes.append(Node("Identity", [resolved], [value], {"dtype": np.dtype(value.dtype).name},
                                       self.unique(f"identity_{value.name}")))
                resolved = value
            outputs.append(resolved)
        return outputs


def _transposed_elements(nodes: list[Node]) -> int:
    return sum(node.outputs[0].size for node in nodes if node.op == "Transpose" and not node.inputs[0].is_const)


def sink_transposes(graph: Graph) -> Graph:
    sinker = _Sinker(graph)
    for node in graph.nodes:
        sinker.visit(node)
    outputs = sinker.finish()
    if _transposed_elements(sinker.nodes) > _transposed_elements(graph.nodes):
        return graph
    graph.nodes = sinker.nodes
    graph.outputs = outputs
    return graph
