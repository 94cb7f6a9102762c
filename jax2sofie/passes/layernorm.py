"""Replace what Flax's and Keras' LayerNorm trace to, over the last axis, by one J2S_LayerNorm node.

Flax (nnx.LayerNorm, linen.LayerNorm) traces to

    m  = Div(J2S_Reduce(sum, last axis)(x), n)          the mean
    q  = Div(J2S_Reduce(sum, last axis)(Mul(x, x)), n)  the mean of the squares
    v  = Relu(Sub(q, Mul(m, m)))                        max(0, E[x^2] - E[x]^2)
    r  = Reciprocal(Sqrt(Add(Reshape(v), eps)))         rsqrt
    y  = Add(Mul(Sub(x, Reshape(m)), Mul(r, scale)), bias)

and Keras' LayerNormalization (JAX backend) to a two-pass variance with the mean folded into a bias:

    m  = Div(Reshape(J2S_Reduce(sum, last axis)(x)), n)
    v  = Div(Reshape(J2S_Reduce(sum, last axis)(Mul(d, d))), n)   d = Sub(x, m)
    r  = Reciprocal(Sqrt(Add(v, eps)))
    s  = Mul(r, gamma)
    y  = Add(Mul(x, s), Add(Mul(Neg(m), s), beta))

with the scale (Mul by scale/gamma) and the bias (Add of bias/beta) absent when the layer has none,
and Reshapes possible between any two row statistics. J2S_LayerNorm (csrc/owned/layernorm.hpp)
computes the same formula (attributes `variance`: "moments" | "centered", `output`: "centered" |
"folded"), so the numbers stay JAX's up to the order of the sums.

Fused only when every intermediate is read by the pattern alone and is no graph output, the axis is
the last one and of a static size, the divisor is that size, eps is one finite number >= 0, scale and
bias hold one value per element of a row, and everything is float32. Anything else (a normalisation
over other axes, a different eps placement, a hand-written variant) is left as it is.

Runs before fuse_elementwise, which would otherwise merge the loops into J2S_Elementwise
expressions this pass cannot read.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Value
from .softmax import _float32, _last_axis_reduction, _reshaped_source


class _NoMatch(Exception):
    pass


def fuse_layernorm(graph: Graph) -> Graph:
    producers = graph.producers()
    consumers = graph.consumers()
    graph_outputs = {id(v) for v in graph.outputs}
    replaced: dict[int, Node] = {}  # id(the pattern's last node) -> its J2S_LayerNorm
    removed: set[int] = set()
    # from the end: a layer norm's last node comes after the nodes that would end a smaller match
    # inside it (the Mul before its bias Add)
    for node in reversed(graph.nodes):
        if id(node) in removed:
            continue
        matcher = _Matcher(producers)
        try:
            fused = matcher.match(node)
        except _NoMatch:
            continue
        covered = matcher.covered
        if any(id(n) in removed for n in covered) or not _private(covered, node, consumers, graph_outputs):
            continue
        removed.update(id(n) for n in covered)
        replaced[id(node)] = Node("J2S_LayerNorm", fused.inputs, [node.outputs[0]], fused.attrs, node.name, node.source)
    if not replaced:
        return graph
    graph.nodes = [replaced.get(id(n), n) for n in graph.nodes if id(n) not in removed or id(n) in replaced]
    return graph


class _Fused:
    def __init__(self, inputs: list[Value], attrs: dict):
        self.inputs = inputs
        self.attrs = attrs


def _private(covered: list[Node], last: Node, consumers: dict[int, list[Node]], graph_outputs: set[int]) -> bool:
    """Whether every value the covered nodes make, but the last node's, is read by covered nodes alone."""
    ids = {id(n) for n in covered}
    for node in covered:
        if node is last:
            continue
        for value in node.outputs:
            if id(value) in graph_outputs or any(id(c) not in ids for c in consumers.get(id(value), [])):
                return False
    return True


class _Matcher:
    """Reads one layer norm backwards from its last node; `covered` collects the nodes it replaces."""

    def __init__(self, producers: dict[int, Node]):
        self.producers = producers
        self.covered: list[Node] = []

    # ---- helpers ----------------------------------------------------------------------------
    def node(self, value: Value, *ops: str) -> Node:
        node = self.producers.get(id(value))
        if node is None or node.op not in ops or not _float32(node):
            raise _NoMatch
        self.covered.append(node)
        return node

    def try_node(self, value: Value, *ops: str) -> Node | None:
        node = self.producers.get(id(value))
        return node if node is not None and node.op in ops and _float32(node) else None

    def through_reshapes(self, value: Value) -> Value:
        while (node := self.producers.get(id(value))) is not None and node.op == "Reshape":
            self.covered.append(node)
            value = node.inputs[0]
        return value

    def row_statistic(self, value: Value) -> None:
        """`value` holds one number per row of x, broadcast along the last axis."""
        if value.shape != self.x.shape[:-1] + (1,):
            raise _NoMatch

    def same_rows(self, value: Value) -> None:
        """`value` is x, or x through Reshapes that keep its rows."""
        if value is self.x:
            return
        if value.shape[-1:] != self.x.shape[-1:] or value.size != self.x.size \
                or _reshaped_source(value, self.producers) is not _reshaped_source(self.x, self.producers):
            raise _NoMatch

    def row_mean(self, value: Value, of=None) -> Node:
        """The Div node of sum(of(x)) / n over the last axis that `value` is (through Reshapes);
        `of`: checks the reduced value (default: it is x's rows)."""
        div = self.node(self.through_reshapes(value), "Div")
        total, n = div.inputs
        if not (n.is_const and n.size == 1 and float(np.asarray(n.const).reshape(())) == float(self.x.shape[-1])):
            raise _NoMatch
        reduce = self.node(self.through_reshapes(total), "J2S_Reduce")
        source = reduce.inputs[0]
        if not _last_axis_reduction(reduce, "sum", source):
            raise _NoMatch
        (of or self.same_rows)(source)
        return div

    def pair(self, node: Node, first_test) -> tuple[Value, Value]:
        """node's two inputs as (a, b) with first_test(a) true, trying both orders (Add and Mul)."""
        a, b = node.inputs
        if first_test(a):
            return a, b
        if first_test(b):
            return b, a
        raise _NoMatch

    # ---- the pattern --------------------------------------------------------------------------
    def match(self, last: Node) -> _Fused:
        if last.op not in ("Add", "Mul") or not _float32(last) or last.outputs[0].rank == 0:
            raise _NoMatch
        self.covered.append(last)
        if self._match_folded(last) or self._match_centered(last):
            return self.fused
        raise _NoMatch

    def _per_column(self, value: Value) -> bool:
        """Whether `value` holds one number per element of a row (broadcast over the rows)."""
        shape = value.shape
        return value.dtype == np.float32 and len(shape) <= self.x.rank and len(shape) >= 1 \
            and shape[-1] == self.x.shape[-1] and all(d == 1 for d in shape[:-1]) and value.size == self.x.shape[-1]

    def _scaled_rsqrt(self, value: Value) -> tuple[Node, Value | None]:
        """(the Reciprocal of the rsqrt, the scale or None) of r or Mul(r, scale)."""
        node = self.try_node(value, "Reciprocal", "Mul")
        if node is None:
            raise _NoMatch
        self.covered.append(node)
        if node.op == "Reciprocal":
            self.row_statistic(value)
            return node, None
        if value.shape != self.x.shape:
            raise _NoMatch
        r, scale = self.pair(node, lambda v: (p := self.try_node(v, "Reciprocal")) is not None and p.outputs[0].shape
                             == self.x.shape[:-1] + (1,))
        if not self._per_column(scale):
            raise _NoMatch
        self.covered.append(self.producers[id(r)])
        return self.producers[id(r)], scale

    def _rsqrt_variance(self, reciprocal: Node) -> tuple[Value, float]:
        """(the variance before eps, eps) of Reciprocal(Sqrt(Add(v, eps)))."""
        sqrt = self.node(reciprocal.inputs[0], "Sqrt")
        add = self.node(sqrt.inputs[0], "Add")
        eps, variance = self.pair(add, lambda v: v.is_const and v.size == 1)
        value = float(np.asarray(eps.const).reshape(()))
        if not (np.isfinite(value) and value >= 0):
            raise _NoMatch
        self.row_statistic(variance)
        return variance, value

    def _finish(self, r: Node, scale: Value | None, bias: Value | None, output: str, mean_div: Node) -> bool:
        variance, eps = self._rsqrt_variance(r)
        self._variance(self.through_reshapes(variance), mean_div)
        inputs = [self.x] + ([scale] if scale is not None else []) + ([bias] if bias is not None else [])
        self.fused = _Fused(inputs, {"variance": self.variance, "output": output, "eps": eps,
                                     "has_scale": int(scale is not None), "has_bias": int(bias is not None),
                                     "dtype": "float32"})
        return True

    def _variance(self, value: Value, mean_div: Node) -> None:
        node = self.try_node(value, "Relu", "Div")
        if node is None:
            raise _NoMatch
        if node.op == "Relu":  # Flax: max(0, E[x^2] - E[x]^2)
            self.covered.append(node)
            sub = self.node(node.inputs[0], "Sub")
            squares, mean_squared = sub.inputs
            mm = self.node(mean_squared, "Mul")
            if not all(self.try_node(v, "Div") is mean_div for v in mm.inputs):
                raise _NoMatch

            def squares_of_x(v: Value) -> None:
                sq = self.node(v, "Mul")
                if sq.inputs[0] is not sq.inputs[1]:
                    raise _NoMatch
                self.same_rows(sq.inputs[0])

            self.row_mean(squares, squares_of_x)
            self.variance = "moments"
            return

        # Keras: E[(x - m)^2]
        def centered_squares(v: Value) -> None:
            sq = self.node(v, "Mul")
            if sq.inputs[0] is not sq.inputs[1]:
                raise _NoMatch
            sub = self.node(sq.inputs[0], "Sub")
            if sub.inputs[0] is not self.x or self._mean_of(sub.inputs[1]) is not mean_div:
                raise _NoMatch

        self.row_mean(value, centered_squares)
        self.variance = "centered"

    def _mean_of(self, value: Value) -> Node | None:
        """The Div node that `value` is through Reshapes (those join `covered`), or None."""
        return self.try_node(self.through_reshapes(value), "Div")

    def _match_centered(self, last: Node) -> bool:
        """Flax: [Add(] Mul(Sub(x, m), r or Mul(r, scale)) [, bias)]."""
        self.covered = [last]
        try:
            bias = None
            product = last
            if last.op == "Add":
                product_value, bias = self.pair(last, lambda v: self.try_node(v, "Mul") is not None
                                                and v.shape == last.outputs[0].shape)
                product = self.node(product_value, "Mul")
            if product.op != "Mul":
                return False
            centered, factor = self.pair(product, lambda v: self.try_node(v, "Sub") is not None
                                         and v.shape == product.outputs[0].shape)
            sub = self.node(centered, "Sub")
            self.x = sub.inputs[0]
            if self.x.rank == 0 or not isinstance(self.x.shape[-1], int) or self.x.shape != last.outputs[0].shape:
                return False
            self.row_statistic(sub.inputs[1])
            mean_div = self.row_mean(sub.inputs[1])
            if bias is not None and not self._per_column(bias):
                return False
            r, scale = self._scaled_rsqrt(factor)
            return self._finish(r, scale, bias, "centered", mean_div)
        except _NoMatch:
            return False

    def _match_folded(self, last: Node) -> bool:
        """Keras: Add(Mul(x, s), [Add(] Mul(Neg(m), s) [, beta)]), s = r or Mul(r, gamma)."""
        self.covered = [last]
        try:
            if last.op != "Add":
                return False

            def scaled_input(v: Value) -> bool:
                mul = self.try_node(v, "Mul")
                return mul is not None and v.shape == last.outputs[0].shape and any(
                    self.try_node(i, "Neg") is None and i.shape == v.shape for i in mul.inputs)

            def is_shift(v: Value) -> bool:
                node = self.try_node(v, "Mul", "Add")
                return node is not None and (node.op == "Add" or any(self.try_node(i, "Neg") for i in node.inputs))

            shift, scaled = self.pair(last, is_shift)
            if not scaled_input(scaled):
                return False
            mul = self.node(scaled, "Mul")
            bias = None
            shift_node = self.node(shift, "Mul", "Add")
            if shift_node.op == "Add":
                shift_mul, bias = self.pair(shift_node, lambda v: self.try_node(v, "Mul") is not None
                                            and any(self.try_node(i, "Neg") for i in self.producers[id(v)].inputs))
                shift_node = self.node(shift_mul, "Mul")
            negated, s = self.pair(shift_node, lambda v: self.try_node(v, "Neg") is not None)
            x, s_again = self.pair(mul, lambda v: v is not s)
            if s_again is not s:
                return False
            self.x = x
            if x.rank == 0 or not isinstance(x.shape[-1], int) or x.shape != last.outputs[0].shape:
                return False
            if bias is not None and not self._per_column(bias):
                return False
            neg = self.node(negated, "Neg")
            self.row_statistic(neg.inputs[0])
            mean_div = self.row_mean(neg.inputs[0])
            r, scale = self._scaled_rsqrt(s)
            return self._finish(r, scale, bias, "folded", mean_div)
        except _NoMatch:
            return False
