"""Test cases declared next to the rules: each is a JAX function + params + inputs.

Rule modules call `case(...)` below their rules; tests/test_catalog.py converts every case, compiles
the generated C++, runs it and compares with JAX. Inputs and params are given as specs (shape,
dtype, value range) and made from a fixed seed when a case runs, so importing the rules stays cheap.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

import jax
import numpy as np


@dataclass(frozen=True)
class Spec:
    shape: tuple[int, ...]
    dtype: str = "float32"
    kind: str = "normal"  # normal | positive (0.5..2, for log/sqrt/pow) | int (0..high) | bool

    def make(self, rng: np.random.Generator, high: int = 8) -> np.ndarray:
        if self.kind == "bool":
            return rng.random(self.shape) < 0.5
        if self.kind == "int":
            return rng.integers(0, high, self.shape).astype(self.dtype)
        if self.kind == "positive":
            return rng.uniform(0.5, 2.0, self.shape).astype(self.dtype)
        return rng.standard_normal(self.shape).astype(self.dtype)


def f32(*shape: int) -> Spec:
    return Spec(tuple(shape))


def positive(*shape: int) -> Spec:
    return Spec(tuple(shape), kind="positive")


def i32(*shape: int) -> Spec:
    return Spec(tuple(shape), "int32", "int")


def boolean(*shape: int) -> Spec:
    return Spec(tuple(shape), "bool", "bool")


@dataclass
class Case:
    name: str
    fn: Callable  # fn(params, *inputs)
    inputs: tuple[Spec, ...]
    params: Any = None  # a pytree whose leaves are Specs
    rtol: float = 1e-4
    atol: float = 1e-5
    notes: str = ""
    # whether dimension 0 of every input is a batch dimension: the case then also runs with a
    # symbolic batch (tests/test_catalog.py, at several batch sizes)
    batch: bool = True
    module: str = field(default="")

    def materialize(self, batch: int | None = None) -> tuple[Any, list[np.ndarray]]:
        """(params, inputs) from a seed derived from the case name; `batch` replaces dim 0 of inputs."""
        rng = np.random.default_rng(zlib.crc32(self.name.encode()))
        params = jax.tree_util.tree_map(lambda s: s.make(rng), self.params,
                                        is_leaf=lambda x: isinstance(x, Spec))
        inputs = []
        for spec in self.inputs:
            if batch is not None and spec.shape:
                spec = Spec((batch,) + spec.shape[1:], spec.dtype, spec.kind)
            inputs.append(spec.make(rng))
        return params, inputs


CASES: dict[str, Case] = {}


def case(name: str, fn: Callable, *inputs: Spec, params: Any = None, rtol: float = 1e-4, atol: float = 1e-5,
         notes: str = "", batch: bool = True) -> None:
    if name in CASES:
        raise ValueError(f"catalog case '{name}' is declared twice")
    module = getattr(fn, "__module__", "") or ""
    CASES[name] = Case(name, fn, tuple(inputs), params, rtol, atol, notes, batch, module)
