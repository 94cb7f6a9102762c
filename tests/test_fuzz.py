"""Property-based tests: random small programs of supported primitives are converted, compiled and
compared with JAX. Hypothesis shrinks a failure to a minimal program; keep it below as an @example.

CI runs a fixed, derandomized set (profile "ci"); for a longer local run:
    HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jax2sofie

settings.register_profile("ci", max_examples=12, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

UNARY = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "abs": jnp.abs, "neg": jnp.negative,
         "relu": jax.nn.relu, "exp_clipped": lambda x: jnp.exp(jnp.minimum(x, 3.0)), "square": jnp.square,
         "gelu": jax.nn.gelu}
BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "max": jnp.maximum}


@st.composite
def programs(draw):
    """(input shape, list of steps). A step transforms the current shape; params are created per step."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    steps = []
    current = shape
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(["unary", "binary", "dense", "reshape", "transpose", "reduce", "softmax"]))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY)))))
        elif kind == "binary":  # with a param broadcast from a random subset of trailing axes
            kept = [draw(st.booleans()) for _ in current]
            pshape = tuple(d if k else 1 for d, k in zip(current, kept))[draw(st.integers(0, len(current))):]
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY))), pshape))
        elif kind == "dense":
            out = draw(st.integers(1, 6))
            steps.append(("dense", current[-1], out))
            current = current[:-1] + (out,)
        elif kind == "reshape" and len(current) >= 2:
            current = current[:-2] + (current[-2] * current[-1],)
            steps.append(("reshape", current))
        elif kind == "transpose" and len(current) >= 2:
            perm = tuple(draw(st.permutations(range(len(current)))))
            steps.append(("transpose", perm))
            current = tuple(current[p] for p in perm)
        elif kind == "reduce" and len(current) >= 2:
            axis = draw(st.integers(-len(current), len(current) - 1))
            keep = draw(st.booleans())
            op = draw(st.sampled_from(["sum", "max", "mean"]))
            steps.append(("reduce", op, axis, keep))
            current = tuple(1 if i == axis % len(current) else d for i, d in enumerate(current)) if keep else \
                tuple(d for i, d in enumerate(current) if i != axis % len(current))
        elif kind == "softmax":
            steps.append(("softmax",))
    return shape, steps


def build(shape, steps):
    rng = np.random.default_rng(len(steps) * 31 + sum(shape))
    params = {}
    for i, step in enumerate(steps):
        if step[0] == "binary":
            params[f"p{i}"] = rng.standard_normal(step[2]).astype(np.float32)
        elif step[0] == "dense":
            params[f"p{i}"] = (rng.standard_normal((step[1], step[2])) / np.sqrt(step[1])).astype(np.float32)

    def fn(p, x):
        for i, step in enumerate(steps):
            if step[0] == "unary":
                x = UNARY[step[1]](x)
            elif step[0] == "binary":
                x = BINARY[step[1]](x, p[f"p{i}"])
            elif step[0] == "dense":
                x = x @ p[f"p{i}"]
            elif step[0] == "reshape":
                x = x.reshape(step[1])
            elif step[0] == "transpose":
                x = jnp.transpose(x, step[1])
            elif step[0] == "reduce":
                x = {"sum": jnp.sum, "max": jnp.max, "mean": jnp.mean}[step[1]](x, axis=step[2], keepdims=step[3])
            elif step[0] == "softmax":
                x = jax.nn.softmax(x, axis=-1)
        return x

    x = rng.standard_normal(shape).astype(np.float32)
    return fn, params, x


@given(programs())
@example(((3, 1), [("reduce", "sum", 0, False), ("softmax",)]))  # a reduction to rank 1, then softmax
@example(((2, 3), [("binary", "mul", (1, 3)), ("dense", 3, 4), ("binary", "add", (4,)), ("unary", "relu")]))
def test_random_programs_match_jax(program):
    shape, steps = program
    fn, params, x = build(shape, steps)
    model = jax2sofie.convert(fn, params, x, name="fuzz")
    report = model.check(x)
    assert report.passed, f"{steps}\n{report}\n{model.graph}"
