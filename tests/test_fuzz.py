"""Property-based tests: random small programs of supported primitives are converted, compiled and
compared with JAX. Hypothesis shrinks a failure to a minimal program; keep it below as an @example
(a program is `(input shape, [(step kind, *arguments), ...])`, printed by hypothesis on failure).

CI runs a fixed, derandomized set (profile "ci"); for a longer local run:
    HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py --hypothesis-show-statistics     (300 random programs)
    HYPOTHESIS_PROFILE=long HYPOTHESIS_MAX_EXAMPLES=50 pytest tests/test_fuzz.py       (a shorter one)
("long" is not derandomized: every run draws new programs; `--hypothesis-seed=N` repeats one.)

Adding a kind of step (convolution, pooling, ... once they lower): write its `draw`, `shape` and `apply`
(and `param` if it has a weight) and add a `Step` to STEPS; nothing else changes.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jax2sofie

settings.register_profile("ci", max_examples=12, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "300")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

Shape = tuple[int, ...]
MAX_SIZE = 256  # elements of any intermediate: keeps the generated C++ small and fast to compile

UNARY = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "abs": jnp.abs, "neg": jnp.negative,
         "relu": jax.nn.relu, "exp_clipped": lambda x: jnp.exp(jnp.minimum(x, 3.0)), "square": jnp.square,
         "gelu": jax.nn.gelu, "cube": lambda x: x ** 3, "log1p_abs": lambda x: jnp.log(1.0 + jnp.abs(x)),
         "sqrt_abs": lambda x: jnp.sqrt(jnp.abs(x) + 0.5), "rsqrt_sq": lambda x: jax.lax.rsqrt(x * x + 1.0),
         "leaky_relu": lambda x: jnp.where(x > 0, x, 0.1 * x), "clip": lambda x: jnp.clip(x, -0.5, 0.5)}
# binary ops with a param; the param is transformed first (folded at conversion) so every op is safe
BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "max": jnp.maximum, "min": jnp.minimum,
          "div": lambda x, p: x / (1.5 + p * p), "pow": lambda x, p: jnp.abs(x) ** (1.0 + 0.2 * jnp.tanh(p)),
          "where_gt": lambda x, p: jnp.where(x > p, x, p)}
REDUCE = {"sum": jnp.sum, "max": jnp.max, "min": jnp.min, "mean": jnp.mean}


@dataclass(frozen=True)
class Step:
    """One kind of step. draw(draw, shape) -> its arguments, or None where it does not apply to `shape`;
    shape(shape, args) -> the output shape; apply(x, param, args) -> the output;
    param(shape, args) -> the shape of its weight, or None for a step without one."""

    draw: Callable[[Any, Shape], tuple | None]
    shape: Callable[[Shape, tuple], Shape]
    apply: Callable[[Any, Any, tuple], Any]
    param: Callable[[Shape, tuple], Shape | None] = lambda shape, args: None


def _draw_binary(draw, shape):  # a param broadcast from a random subset of trailing axes
    kept = [draw(st.booleans()) for _ in shape]
    pshape = tuple(d if k else 1 for d, k in zip(shape, kept))[draw(st.integers(0, len(shape))):]
    return draw(st.sampled_from(sorted(BINARY))), pshape


def _draw_reduce(draw, shape):
    if len(shape) < 2:
        return None
    return draw(st.sampled_from(sorted(REDUCE))), draw(st.integers(-len(shape), len(shape) - 1)), draw(st.booleans())


def _reduced(shape, args):
    _, axis, keep = args
    axis %= len(shape)
    return tuple(1 if i == axis else d for i, d in enumerate(shape)) if keep else shape[:axis] + shape[axis + 1:]


def _draw_split(draw, shape):  # reshape the last axis into two
    factors = [a for a in range(2, shape[-1]) if shape[-1] % a == 0]
    return (draw(st.sampled_from(factors)),) if factors and len(shape) < 4 else None


def _draw_broadcast(draw, shape):  # a new leading axis
    k = draw(st.integers(1, 3))
    return (k,) if len(shape) < 4 and k * math.prod(shape) <= MAX_SIZE else None


def _draw_squeeze(draw, shape):
    ones = [i for i, d in enumerate(shape) if d == 1]
    return (draw(st.sampled_from(ones)),) if ones and len(shape) >= 2 else None


STEPS: dict[str, Step] = {
    "unary": Step(draw=lambda draw, shape: (draw(st.sampled_from(sorted(UNARY))),),
                  shape=lambda shape, args: shape, apply=lambda x, p, args: UNARY[args[0]](x)),
    "binary": Step(draw=_draw_binary, shape=lambda shape, args: shape,
                   apply=lambda x, p, args: BINARY[args[0]](x, p), param=lambda shape, args: args[1]),
    "dense": Step(draw=lambda draw, shape: (shape[-1], draw(st.integers(1, 6))),
                  shape=lambda shape, args: shape[:-1] + (args[1],),
                  apply=lambda x, p, args: x @ (p / np.sqrt(args[0])), param=lambda shape, args: args),
    "reshape": Step(draw=lambda draw, shape: (shape[:-2] + (shape[-2] * shape[-1],),) if len(shape) >= 2 else None,
                    shape=lambda shape, args: tuple(args[0]), apply=lambda x, p, args: x.reshape(args[0])),
    "split": Step(draw=_draw_split, shape=lambda shape, args: shape[:-1] + (args[0], shape[-1] // args[0]),
                  apply=lambda x, p, args: x.reshape(x.shape[:-1] + (args[0], x.shape[-1] // args[0]))),
    "transpose": Step(draw=lambda draw, shape: (tuple(draw(st.permutations(range(len(shape))))),)
                      if len(shape) >= 2 else None,
                      shape=lambda shape, args: tuple(shape[i] for i in args[0]),
                      apply=lambda x, p, args: jnp.transpose(x, args[0])),
    "reduce": Step(draw=_draw_reduce, shape=_reduced,
                   apply=lambda x, p, args: REDUCE[args[0]](x, axis=args[1], keepdims=args[2])),
    "softmax": Step(draw=lambda draw, shape: (), shape=lambda shape, args: shape,
                    apply=lambda x, p, args: jax.nn.softmax(x, axis=-1)),
    "broadcast": Step(draw=_draw_broadcast, shape=lambda shape, args: (args[0],) + shape,
                      apply=lambda x, p, args: jnp.broadcast_to(x, (args[0],) + x.shape)),
    "squeeze": Step(draw=_draw_squeeze, shape=lambda shape, args: shape[:args[0]] + shape[args[0] + 1:],
                    apply=lambda x, p, args: jnp.squeeze(x, axis=args[0])),
    "expand": Step(draw=lambda draw, shape: (draw(st.integers(0, len(shape))),) if len(shape) < 4 else None,
                   shape=lambda shape, args: shape[:args[0]] + (1,) + shape[args[0]:],
                   apply=lambda x, p, args: jnp.expand_dims(x, args[0])),
}


@st.composite
def programs(draw):
    """(input shape, list of steps (kind, *arguments))."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    steps = []
    current = shape
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(sorted(STEPS)))
        args = STEPS[kind].draw(draw, current)
        if args is None:
            continue
        after = STEPS[kind].shape(current, args)
        if math.prod(after) > MAX_SIZE:
            continue
        steps.append((kind, *args))
        current = after
    return shape, steps


def build(shape, steps):
    """The program as fn(params, x), its params and an input."""
    rng = np.random.default_rng(len(steps) * 31 + sum(shape))
    current, params = shape, {}
    for i, (kind, *args) in enumerate(steps):
        param_shape = STEPS[kind].param(current, tuple(args))
        if param_shape is not None:
            params[f"p{i}"] = rng.standard_normal(param_shape).astype(np.float32)
        current = STEPS[kind].shape(current, tuple(args))

    def fn(p, x):
        for i, (kind, *args) in enumerate(steps):
            x = STEPS[kind].apply(x, p.get(f"p{i}"), tuple(args))
        return x

    x = rng.standard_normal(shape).astype(np.float32)
    return fn, params, x


@given(programs())
# regression cases kept from shrunk failures:
@example(((3, 1), [("reduce", "sum", 0, False), ("softmax",)]))  # a reduction to rank 1, then softmax
@example(((2, 3), [("binary", "mul", (1, 3)), ("dense", 3, 4), ("binary", "add", (4,)), ("unary", "relu")]))
def test_random_programs_match_jax(program):
    shape, steps = program
    fn, params, x = build(shape, steps)
    model = jax2sofie.convert(fn, params, x, name="fuzz")
    report = model.check(x)
    assert report.passed, f"{steps}\n{report}\n{model.graph}"


def test_every_step_kind_builds_and_matches_its_shape():
    """Each step kind's `shape` agrees with what its `apply` computes (cheap: JAX only, no compile)."""
    examples = {"unary": ("tanh",), "binary": ("div", (1, 4)), "dense": (4, 3), "reshape": ((6, 4),),
                "split": (2,), "transpose": ((2, 0, 1),), "reduce": ("mean", -1, True), "softmax": (),
                "broadcast": (2,), "squeeze": (0,), "expand": (1,)}
    assert set(examples) == set(STEPS)
    for kind, args in examples.items():
        shape = (1, 6, 4) if kind != "reshape" else (2, 3, 4)
        fn, params, x = build(shape, [(kind, *args)])
        assert fn(params, x).shape == STEPS[kind].shape(shape, args), kind
