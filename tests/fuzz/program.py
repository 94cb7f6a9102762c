"""Random programs: what a program is, the kinds of steps it is made of, and how it becomes a function.

A program is a chain of steps applied to one input whose dimension 0 is a batch: `Program(shape, steps,
dtype, captured)`, each step `(kind, *arguments)`; its repr is Python that rebuilds it (paste a failing
one into tests/test_fuzz.py as a regression example). Every step keeps the batch a batch: it never
reduces, contracts, indexes or gives a weight along the batch axis (it may move it, or merge it with
another axis), so every program also converts with a symbolic batch. A step's weights (random arrays
drawn when the program is built) are params of the function, or, for the steps listed in `captured`,
jnp arrays the function closes over.

Kinds of steps live in the steps_*.py modules, each registered with `kind(...)` under a family (a
family is one group of lowering rules: dense, conv, pooling, ...).
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

MAX_ELEMENTS = 1024  # elements of any value at the input's own batch: keeps the generated C++ small


@dataclass(frozen=True)
class Val:
    """A value of the program as the generator sees it: shape (at the input's batch), dtype and the axis
    holding the batch (None once a legacy step has reduced it away: the program is then static only)."""

    shape: tuple[int, ...]
    dtype: str
    batch: int | None = 0

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def free_axes(self) -> list[int]:
        """The axes a step may reduce, index or weight: all but the batch."""
        return [a for a in range(self.rank) if a != self.batch]

    def with_shape(self, shape, batch="same", dtype=None) -> "Val":
        return Val(tuple(shape), dtype or self.dtype, self.batch if batch == "same" else batch)


@dataclass(frozen=True)
class Weight:
    """A random array a step uses: normal floats, integers in [lo, hi] (never 0 when nonzero) or bools."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    lo: int = -4
    hi: int = 4
    nonzero: bool = False

    def make(self, rng: np.random.Generator) -> np.ndarray:
        if self.dtype == "bool":
            return rng.random(self.shape) < 0.5
        if self.dtype == "int32":
            values = rng.integers(self.lo, self.hi + 1, self.shape)
            if self.nonzero:
                values = np.where(values == 0, self.hi, values)
            return values.astype(np.int32)
        return rng.standard_normal(self.shape).astype(np.float32)


def _no_weights(val: Val, args: tuple) -> list[Weight]:
    return []


@dataclass(frozen=True)
class Kind:
    """One kind of step. draw(draw, val) -> its arguments, or None where it does not apply to `val`;
    out(val, args) -> the Val it makes; apply(x, weights, args) -> the JAX computation (weights: the
    arrays of weights(val, args), in order)."""

    family: str
    dtypes: tuple[str, ...]  # the dtypes of values it applies to
    draw: Callable[[Any, Val], tuple | None]
    out: Callable[[Val, tuple], Val]
    apply: Callable[[Any, list, tuple], Any]
    weights: Callable[[Val, tuple], list[Weight]] = _no_weights
    frequency: int = 1  # how often it is drawn, relative to the other kinds of its family


KINDS: dict[str, Kind] = {}
LEGACY_ONLY = {"reshape"}  # kinds kept for regression examples of earlier versions, not drawn any more


def kind(name: str, family: str, dtypes=("float32",), weights=_no_weights, frequency: int = 1):
    """Register the decorated apply(x, weights, args) with its draw and out: @kind(...)(draw, out)."""
    def register(draw, out):
        def with_apply(apply):
            KINDS[name] = Kind(family, tuple(dtypes), draw, out, apply, weights, frequency)
            return apply
        return with_apply
    return register


# ----------------------------------------------------------------------------------------------------
# programs
# ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Program:
    shape: tuple[int, ...]  # of the input; axis 0 is the batch
    steps: tuple[tuple, ...]  # (kind, *arguments)
    dtype: str = "float32"  # of the input
    captured: tuple[int, ...] = ()  # the steps whose weights the function closes over (else params)

    def vals(self) -> list[Val]:
        """The Val before each step, and after the last."""
        vals = [Val(tuple(self.shape), self.dtype, 0)]
        for name, *args in self.steps:
            vals.append(KINDS[name].out(vals[-1], tuple(args)))
        return vals

    @property
    def dynamic(self) -> bool:
        """Whether the batch stays a batch to the end (every generated program; not some legacy ones)."""
        return all(v.batch is not None for v in self.vals())

    def families(self) -> list[str]:
        found = [KINDS[name].family for name, *_ in self.steps]
        if self.captured:
            found.append("closure")
        return found


@dataclass
class Built:
    fn: Callable  # fn(params, x)
    params: dict
    program: Program
    seed: int = field(default=0)

    def input(self, batch: int | None = None, seed: int = 0) -> np.ndarray:
        """A random input; `batch` replaces the program's own batch size."""
        shape = tuple(self.program.shape)
        if batch is not None:
            shape = (batch,) + shape[1:]
        rng = np.random.default_rng(self.seed + 7919 * seed + (batch or 0))
        dtype = self.program.dtype
        if dtype == "bool":
            return rng.random(shape) < 0.5
        if dtype == "int32":
            return rng.integers(-6, 7, shape).astype(np.int32)
        return rng.standard_normal(shape).astype(np.float32)


def build(program: Program) -> Built:
    """The program as fn(params, x), with its params (weights are drawn from the program's own seed)."""
    seed = zlib.crc32(repr(program).encode())
    rng = np.random.default_rng(seed)
    vals = program.vals()
    params: dict[str, list] = {}
    closed: dict[int, list] = {}
    for i, (name, *args) in enumerate(program.steps):
        arrays = [w.make(rng) for w in KINDS[name].weights(vals[i], tuple(args))]
        if not arrays:
            continue
        if i in program.captured:
            closed[i] = [jnp.asarray(a) for a in arrays]
        else:
            params[f"step{i}"] = arrays

    def fn(p, x):
        for i, (name, *args) in enumerate(program.steps):
            weights = closed.get(i) or p.get(f"step{i}", [])
            x = KINDS[name].apply(x, weights, tuple(args))
        return x

    return Built(fn, params, program, seed)


def shape_errors(program: Program, batches=(1,)) -> list[str]:
    """Where JAX disagrees with the generator about the program (JAX only, no conversion): each step's
    shape and dtype at the program's own batch, and that it traces at each of `batches`."""
    built = build(program)
    vals = program.vals()
    errors = []

    def check_steps(p, x):
        for i, (name, *args) in enumerate(program.steps):
            weights = [jnp.asarray(a) for a in p.get(f"step{i}", [])] or [
                jnp.asarray(w.make(np.random.default_rng(0))) for w in KINDS[name].weights(vals[i], tuple(args))]
            x = KINDS[name].apply(x, weights, tuple(args))
            want = vals[i + 1]
            if tuple(x.shape) != want.shape or str(x.dtype) != want.dtype:
                errors.append(f"step {i} {name}{tuple(args)}: JAX gives {x.dtype}{list(x.shape)}, the generator "
                              f"{want.dtype}{list(want.shape)}")
        return x

    try:
        jax.eval_shape(check_steps, built.params, built.input())
        if program.dynamic:
            for batch in batches:
                jax.eval_shape(built.fn, built.params, built.input(batch))
    except Exception as exc:  # noqa: BLE001 - any JAX error is what is reported
        errors.append(f"{type(exc).__name__}: {str(exc)[:300]}")
    return errors


# ----------------------------------------------------------------------------------------------------
# drawing programs
# ----------------------------------------------------------------------------------------------------

def draw_step(draw, val: Val, family: str | None = None, tries: int = 12):
    """A step (kind, *args) that applies to `val` (of `family`, if given), or None if none was found."""
    names = [n for n, k in sorted(KINDS.items()) if val.dtype in k.dtypes and n not in LEGACY_ONLY
             and (family is None or k.family == family) for _ in range(k.frequency)]
    for _ in range(tries if names else 0):
        name = draw.choice(names)
        args = KINDS[name].draw(draw, val)
        if args is None:
            continue
        after = KINDS[name].out(val, args)
        if 0 < after.size <= MAX_ELEMENTS and min(after.shape, default=1) > 0 and after.rank <= 5:
            return (name, *args)
    return None


def draw_program(draw, family: str | None = None) -> Program:
    """A program of 1 to 6 steps; with `family`, one of them is of that family (the input is made to suit
    it: the families' INPUTS)."""
    from .families import input_for

    shape, dtype = input_for(draw, family)
    val = Val(shape, dtype, 0)
    n_steps = draw.integer(1, 6)
    focus_at = draw.integer(0, n_steps - 1) if family else -1
    steps: list[tuple] = []
    for position in range(n_steps):
        want = family if position >= focus_at and family and not any(
            KINDS[s[0]].family == family for s in steps) else None
        step = draw_step(draw, val, want)
        if step is None and want:
            step = draw_step(draw, val)
        if step is None:
            continue
        steps.append(step)
        val = KINDS[step[0]].out(val, tuple(step[1:]))
    if family and not any(KINDS[s[0]].family == family for s in steps):
        # the steps before it took the value where the family does not apply: start with it instead
        first = draw_step(draw, Val(shape, dtype, 0), family, tries=40)
        if first is not None:
            steps = [first]
    program = Program(shape, tuple(steps), dtype)
    vals = program.vals()
    with_weights = [i for i, (name, *args) in enumerate(steps) if KINDS[name].weights(vals[i], tuple(args))]
    return replace(program, captured=tuple(i for i in with_weights if draw.integer(0, 2) == 0))  # a third closed over

