"""GraphBuilder: the one place that creates values and nodes.

It gives every value a unique C++-safe name (SOFIE prefixes them with `tensor_` in the generated
code), stamps shapes and dtypes, and stamps each node with the user's source line of the JAX
equation being lowered, so errors from later stages can still point at the user's code.
"""
from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from .graph import Graph, Node, Shape, Value

_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9_]+")


def identifier(text: str) -> str:
    """A readable C++ identifier for `text`: `Dense_0/kernel` -> `Dense_0_kernel`."""
    name = _NOT_IDENTIFIER.sub("_", text).strip("_")
    return name or "t"


def _is_extended(data: Any) -> bool:
    dtype = getattr(data, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.extended)


class GraphBuilder:
    def __init__(self, name: str):
        self.graph = Graph(name=identifier(name))
        self._used_names: set[str] = set()
        # per base name, the first suffix not yet tried: without it every "shape" would probe
        # shape, shape_1, ... shape_k again, quadratic in the size of the model
        self._next_suffix: dict[str, int] = {}
        self._node_counter = 0
        self._source = ""

    # -- naming ---------------------------------------------------------------------------------
    def unique_name(self, hint: str) -> str:
        base = identifier(hint)
        k = self._next_suffix.get(base, 0)
        name = base if k == 0 else f"{base}_{k}"
        while name in self._used_names:
            k += 1
            name = f"{base}_{k}"
        self._next_suffix[base] = k + 1
        self._used_names.add(name)
        return name

    @contextlib.contextmanager
    def source(self, location: str) -> Iterator[None]:
        """Nodes created inside this block are stamped with the user's `location` (file:line)."""
        previous, self._source = self._source, location
        try:
            yield
        finally:
            self._source = previous

    @property
    def current_source(self) -> str:
        return self._source

    # -- values ---------------------------------------------------------------------------------
    def input(self, name: str, shape: Shape, dtype: Any) -> Value:
        value = Value(self.unique_name(name), tuple(shape), np.dtype(dtype))
        self.graph.inputs.append(value)
        return value

    def constant(self, data: Any, hint: str = "const", *, origin: str | None = None) -> Value:
        """A constant tensor; with `origin` (a param's readable name) it is a weight of the model.

        PRNG key arrays (an extended JAX dtype numpy cannot hold) stay JAX arrays: they only ever feed
        equations that are folded too; the verifier refuses one that reaches a SOFIE operator."""
        array = data if _is_extended(data) else np.asarray(data)
        return Value(self.unique_name(hint), array.shape, array.dtype, const=array,
                     is_weight=origin is not None, origin=origin)

    # -- nodes ----------------------------------------------------------------------------------
    def op(self, op: str, inputs: Sequence[Value], shape: Shape, out_dtype: Any, hint: str | None = None,
           **attrs: Any) -> Value:
        """Add a one-output node and return its output."""
        (out,) = self.op_multi(op, inputs, [(tuple(shape), out_dtype)], hint, **attrs)
        return out

    def op_multi(self, op: str, inputs: Sequence[Value], outputs: Sequence[tuple[Shape, Any]],
                 hint: str | None = None, **attrs: Any) -> list[Value]:
        self._node_counter += 1
        node_name = self.unique_name(f"{hint or op.lower()}_op{self._node_counter}")
        outs = [
            Value(self.unique_name(f"{hint or op.lower()}_{self._node_counter}" + (f"_{i}" if len(outputs) > 1 else "")),
                  tuple(int(d) for d in shape), np.dtype(dtype))
            for i, (shape, dtype) in enumerate(outputs)
        ]
        self.graph.nodes.append(Node(op, list(inputs), outs, dict(attrs), node_name, self._source))
        return outs
