"""J2S_Reduce's vector kernels (csrc/owned/reduce_vector.hpp) at every instruction-set level, against an
exact reference of the semantics: max/min propagate NaN and rank -0.0 below +0.0 (lax.max's), sums
within rtol 1e-4.

The reference is numpy, not JAX: XLA's CPU reductions keep those semantics for small inputs only
(for a [64, 19, 8] input its jnp.max drops NaNs and returns -0.0 next to +0.0),
while the generated code must give the same answer at every size. Rows of 4 to 100 values (whole
vectors, a partial last one, fewer than a vector) and columns (a middle axis with 4 to 100 kept
values after it), with a dynamic batch run at several sizes: blocks of rows and the rows after them.
"""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie.runtime.check import TensorSpec, compile_model

ROWS = (4, 7, 8, 12, 16, 32, 36, 64, 100)
COLUMNS = (4, 12, 32, 100)
LEVELS = (0, 1, 2)  # J2S_MAX_ISA: the build's own flags (SSE2), AVX2, AVX-512 (where the CPU has them)


def special(x):
    """x with NaN where x > 2.2 and, elsewhere, -|x| or a zero of x's sign where |x| < 0.4: a row's
    max is then often +0.0 or -0.0, and which one depends on every zero in it."""
    y = jnp.where(jnp.abs(x) < 0.4, x * 0.0, -jnp.abs(x))
    return jnp.where(x > 2.2, jnp.nan, y)


def reductions(p, x):
    y = special(x)
    outs = []
    for n in ROWS:
        outs += [jnp.max(y[:, :, :n], axis=-1), jnp.min(-y[:, :, :n], axis=-1), jnp.sum(x[:, :, :n], axis=-1)]
    for n in COLUMNS:
        outs += [jnp.max(y[:, :, :n], axis=1), jnp.min(-y[:, :, :n], axis=1), jnp.sum(x[:, :, :n], axis=1)]
    return outs


def _extreme(y: np.ndarray, axis: int, mode: str) -> np.ndarray:
    """np.max/np.min (NaN propagates) with -0.0 < +0.0: a zero result is +0.0 for max when any +0.0
    is there, -0.0 for min when any -0.0 is."""
    m = np.max(y, axis=axis) if mode == "max" else np.min(y, axis=axis)
    zeros = (y == 0) & (np.signbit(y) == (mode == "min"))
    winner = np.float32(0.0) if mode == "max" else np.float32(-0.0)
    return np.where((m == 0) & np.any(zeros, axis=axis), winner, m)


def reference(x: np.ndarray) -> list[np.ndarray]:
    y = np.asarray(jax.jit(special)(x))
    outs = []
    for axis, sizes in ((-1, ROWS), (1, COLUMNS)):
        for n in sizes:
            outs += [_extreme(y[:, :, :n], axis, "max"), _extreme(-y[:, :, :n], axis, "min"),
                     np.sum(x[:, :, :n].astype(np.float64), axis=axis).astype(np.float32)]
    return outs


def _same(expected: np.ndarray, got: np.ndarray) -> bool:
    """Equal values, NaN where NaN is expected (of either sign) and the same sign of every zero."""
    numbers = ~np.isnan(expected)
    return (np.array_equal(expected, got, equal_nan=True)
            and np.array_equal(np.signbit(expected[numbers]), np.signbit(got[numbers])))


def _inputs(batch: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, 19, 100)).astype(np.float32)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[jax2sofie.Model, Path]:
    model = jax2sofie.convert(reductions, {}, _inputs(3), name="reduce_vector", dynamic_batch=True)
    counts = model.graph.op_counts()
    assert counts.get("J2S_Reduce") == 3 * (len(ROWS) + len(COLUMNS)) and "ReduceSum" not in counts, counts
    directory = tmp_path_factory.mktemp("reduce_vector")
    paths = model.write(directory)
    header = next(p for p in paths if p.suffix == ".hxx")
    text = header.read_text()
    # every reduction is a kernel: J2S_SHUFFLE is the rows' transpose-reduce
    assert text.count("jax2sofie J2S_Reduce") == 3 * (len(ROWS) + len(COLUMNS))
    assert "J2S_SHUFFLE(j2s_vi16" in text and "J2S_SHUFFLE(j2s_vi4" in text
    return model, header


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_matches_the_exact_reference(written, level):
    model, header = written
    inputs = [TensorSpec(v.name, v.dtype, v.shape) for v in model.graph.inputs]
    outputs = [TensorSpec(v.name, v.dtype, v.shape) for v in model.graph.outputs]
    compiled = compile_model(header, None, model.name, inputs, outputs, extra_flags=[f"-DJ2S_MAX_ISA={level}"])
    for batch in (1, 5, 64):
        x = _inputs(batch)
        expected = reference(x)
        got = compiled.run(x)
        names = [f"{kind} {mode} {n}" for kind, sizes in (("rows", ROWS), ("columns", COLUMNS))
                 for n in sizes for mode in ("max", "min", "sum")]
        for name, e, g in zip(names, expected, got):
            if name.split()[1] == "sum":
                np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5, err_msg=f"{name} at batch {batch}")
            else:
                assert _same(e, g), f"{name} at batch {batch}, level {level}:\n{e}\n{g}"


def test_the_data_has_nans_and_both_zeros_as_results():
    """The reference's max results hold NaN, +0.0 and -0.0 (else the test would not test them)."""
    out = reference(_inputs(64))[0]  # rows of 4
    assert np.isnan(out).any() and ((out == 0) & np.signbit(out)).any() and ((out == 0) & ~np.signbit(out)).any()


def test_xla_agrees_with_the_reference_at_batch_1():
    """At a small size JAX gives these semantics too (what the catalog cases compare with)."""
    x = _inputs(1)
    for e, g in zip(reference(x), jax.jit(reductions)(None, x)):
        assert _same(e, np.asarray(g)) or np.allclose(e, np.asarray(g), rtol=1e-4, atol=1e-5)
