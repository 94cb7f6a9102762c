"""What a lowering rule works with: the graph builder plus small helpers that fold constants.

Helpers fold through the same numpy table as the constant-folding pass (ops/folding.py),
so a reshaped or transposed weight stays one named weight instead of a runtime node.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ..errors import LoweringError
from ..ir import GraphBuilder, Node, Value, belongs_in_weight_file, identifier
from ..ops.folding import fold_node


# The most steps a loop of the generated code (J2S_While) runs before it throws: a loop that does not
# converge fails loudly instead of hanging or returning an unfinished result (convert's max_while_trips).
DEFAULT_MAX_WHILE_TRIPS = 1_000_000


class LoweringContext:
    def __init__(self, builder: GraphBuilder, lower_sub: Callable[..., list[Value]],
                 const_names: dict[int, str] | None = None, max_while_trips: int = DEFAULT_MAX_WHILE_TRIPS):
        self.builder = builder
        self.max_while_trips = int(max_while_trips)
        # id(const) -> readable name of the jaxpr consts that are arrays the function closes over
        # (trace.Traced.const_names)
        self.const_names = const_names or {}
        # id(const) -> (the const, its Value): a jaxpr lowered many times (an unrolled loop's body, a
        # jitted function called twice) reads one copy of each const; the const is kept so its id stays its own
        self._closure_constants: dict[int, tuple[Any, Value]] = {}
        # the walker, so that call-like rules (jit, custom_jvp_call, ...) can inline their sub-jaxpr:
        # lower_sub(ctx, jaxpr_or_closed_jaxpr, args) -> outputs
        self._lower_sub = lower_sub
        self._literals: dict[tuple, Value] = {}
        # equations folded on constants, by (id(eqn), ids of its inputs) -> (eqn, inputs, outputs): an
        # unrolled loop body folds the same weight-only equations at every step, and must get the same
        # constants back instead of one copy of a transposed or reshaped weight per step
        self.folded_equations: dict[tuple, tuple[Any, list[Value], list[Value]]] = {}
        # id(empty constant) -> the user's line that made it: the walker's stand-ins for zero-size
        # results (walker.py), so that one reaching an output can be reported with its line
        self.zero_size_sources: dict[int, str] = {}

    def inline(self, jaxpr, args: Sequence[Value]) -> list[Value]:
        """Lower a sub-jaxpr (Jaxpr or ClosedJaxpr) in place on `args`; returns its outputs."""
        return self._lower_sub(self, jaxpr, args)

    # -- errors ---------------------------------------------------------------------------------
    def error(self, message: str) -> LoweringError:
        where = self.builder.current_source
        return LoweringError(f"{message}" + (f"\n  at {where}" if where else ""))

    # -- constants ------------------------------------------------------------------------------
    def const(self, data: Any, hint: str = "const", dtype: Any = None) -> Value:
        array = np.asarray(data, dtype=dtype)
        return self.builder.constant(array, hint)

    def closure_constant(self, data: Any) -> Value:
        """A const of a closed jaxpr: an array the function closes over rather than takes as a param.
        One that belongs in the weight file (more than LITERAL_MAX_ELEMENTS float32 elements) is a
        weight like a param, named after where the function holds it; a smaller one is a literal."""
        seen = self._closure_constants.get(id(data))
        if seen is not None:
            return seen[1]
        name = self.const_names.get(id(data))
        value = self.builder.constant(data, name or "const")
        if belongs_in_weight_file(value.const):
            value.is_weight = True
            value.origin = identifier(name) if name else value.name
        self._closure_constants[id(data)] = (data, value)
        return value

    def literal(self, value: Any, dtype: Any) -> Value:
        """A scalar constant shared by every use of the same value and dtype."""
        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._literals:
            self._literals[key] = self.builder.constant(array, "literal")
        return self._literals[key]

    def shape_tensor(self, shape: Sequence[int]) -> Value:
        """The INT64 shape operand of Reshape/Expand (a rank-0 shape is SOFIE's [1])."""
        return self.const(np.asarray(list(shape) or [1], dtype=np.int64), "shape")

    # -- nodes ----------------------------------------------------------------------------------
    def op(self, op: str, inputs: Sequence[Value], shape: Sequence[int], out_dtype: Any, hint: str | None = None,
           **attrs: Any) -> Value:
        """Add a node; when every input is constant and the op has a numpy meaning, fold it instead."""
        out = self.builder.op(op, inputs, tuple(shape), out_dtype, hint, **attrs)
        node = self.builder.graph.nodes[-1]
        folded = fold_node(node)
        if folded is None:
            return out
        self.builder.graph.nodes.pop()
        return self._folded_constant(node, folded)

    def _folded_constant(self, node: Node, data: np.ndarray) -> Value:
        return self.constant_from(data, node.inputs, node.outputs[0].name)

    def constant_from(self, data: Any, sources: Sequence[Value], hint: str = "const") -> Value:
        """A constant computed from `sources`: a weight named after the first weight among them (so a
        reshaped or sliced weight keeps its readable name), else a constant named `hint`."""
        weights = [v for v in sources if v.is_weight]
        if weights:
            return self.builder.constant(data, weights[0].name, origin=weights[0].origin)
        return self.builder.constant(data, hint)

    def reshape(self, x: Value, shape: Sequence[int]) -> Value:
        shape = tuple(int(d) for d in shape)
        if x.shape == shape:
            return x
        return self.op("Reshape", [x, self.shape_tensor(shape)], shape, x.dtype)

    def transpose(self, x: Value, perm: Sequence[int]) -> Value:
        perm = [int(p) for p in perm]
        if perm == list(range(x.rank)):
            return x
        return self.op("Transpose", [x], tuple(x.shape[p] for p in perm), x.dtype, perm=perm)

    def expand(self, x: Value, shape: Sequence[int]) -> Value:
        """Broadcast `x` (already of the target rank) to `shape`. Never folded here: a pass first
        drops the Expands whose readers broadcast anyway, so constants are not blown up."""
        shape = tuple(int(d) for d in shape)
        if x.shape == shape:
            return x
        if x.dtype == np.bool_:  # SOFIE's Expand has no bool form: broadcast as int32 0/1 (exact)
            return self.cast(self.expand(self.cast(x, np.int32), shape), np.bool_)
        out = self.builder.op("Expand", [x, self.shape_tensor(shape)], shape, x.dtype, dtype=_dtype_attr(x.dtype))
        return out

    def slice(self, x: Value, starts: Sequence[int], limits: Sequence[int],
              strides: Sequence[int] | None = None) -> Value:
        """x[starts:limits:strides] per axis (lax.slice semantics: in-range bounds, strides >= 1).

        An axis taken whole is marked as such (size -1), so slicing other axes of a batch-sized
        tensor does not depend on the batch size; slices of constants are folded."""
        strides = [1] * x.rank if strides is None else [int(s) for s in strides]
        starts, limits = [int(s) for s in starts], [int(n) for n in limits]
        if not len(starts) == len(limits) == len(strides) == x.rank:
            raise self.error(f"slice of a rank-{x.rank} tensor needs {x.rank} starts, limits and strides")
        sizes = []
        for axis, (start, limit, stride, dim) in enumerate(zip(starts, limits, strides, x.shape)):
            if stride < 1 or not 0 <= start <= limit <= dim:
                raise self.error(f"slice {start}:{limit}:{stride} of axis {axis} (size {dim}) is out of range")
            sizes.append(-(-(limit - start) // stride))
        shape = tuple(sizes)
        if 0 in shape:
            raise self.error(f"slice to the empty shape {list(shape)}: zero-size tensors are not supported")
        whole = [start == 0 and stride == 1 and size == dim
                 for start, stride, size, dim in zip(starts, strides, sizes, x.shape)]
        if all(whole):
            return x
        if x.is_const:
            index = tuple(slice(start, limit, stride) for start, limit, stride in zip(starts, limits, strides))
            return self.constant_from(np.ascontiguousarray(np.asarray(x.const)[index]), [x])
        return self.op("J2S_Slice", [x], shape, x.dtype, hint="slice", dtype=_dtype_attr(x.dtype),
                       starts=[0 if w else s for w, s in zip(whole, starts)],
                       steps=[1 if w else s for w, s in zip(whole, strides)],
                       sizes=[-1 if w else n for w, n in zip(whole, sizes)])

    def concat(self, xs: Sequence[Value], axis: int) -> Value:
        """SOFIE Concat along `axis` (folded when every part is constant)."""
        xs = list(xs)
        if len(xs) == 1:
            return xs[0]
        axis = axis % xs[0].rank
        shape = list(xs[0].shape)
        shape[axis] = sum(v.shape[axis] for v in xs)
        if all(v.is_const for v in xs):
            return self.constant_from(np.concatenate([np.asarray(v.const) for v in xs], axis=axis), xs)
        return self.op("Concat", xs, shape, xs[0].dtype, dtype=_dtype_attr(xs[0].dtype), axis=axis)

    def cast(self, x: Value, dtype: Any) -> Value:
        dtype = np.dtype(dtype)
        if x.dtype == dtype:
            return x
        return self.op("Cast", [x], x.shape, dtype, to=_dtype_attr(dtype), dtype=_dtype_attr(x.dtype))

    def unary(self, op: str, x: Value, **attrs: Any) -> Value:
        return self.op(op, [x], x.shape, x.dtype, dtype=_dtype_attr(x.dtype), **attrs)

    def binary(self, op: str, a: Value, b: Value, dtype: Any = None) -> Value:
        """An elementwise op with numpy broadcasting (SOFIE broadcasts multidirectionally)."""
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
        return self.op(op, [a, b], shape, a.dtype if dtype is None else dtype, dtype=_dtype_attr(a.dtype))


def _dtype_attr(dtype: Any) -> str:
    """The element-type name the native module dispatches on ("float32", "int64", "bool", ...)."""
    return np.dtype(dtype).name


dtype_attr = _dtype_attr
