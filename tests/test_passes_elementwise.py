"""fuse_elementwise: chains (and DAGs) of elementwise nodes -> one J2S_Elementwise; graphs
before/after, what must stay apart, and numbers unchanged (compiled and checked against JAX, static
and with a dynamic batch)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie import passes
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.passes.elementwise_fusion import MAX_GROUP, fuse_elementwise


def _builder(shape=(2, 3)):
    b = GraphBuilder("g")
    return b, b.input("x", shape, np.float32)


def test_chain_with_a_shared_intermediate_becomes_one_loop():
    b, x = _builder()
    w = b.constant(np.full((2, 3), 2.0, np.float32), "w", origin="w")
    half = b.constant(np.array(0.5, np.float32), "half")
    y = b.op("Mul", [x, w], (2, 3), np.float32)
    t = b.op("Exp", [y], (2, 3), np.float32)
    s = b.op("Add", [y, t], (2, 3), np.float32)  # y read twice, both readers in the group
    out = b.op("Mul", [s, half], (2, 3), np.float32)
    b.graph.outputs = [out]
    graph = fuse_elementwise(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Elementwise"]
    fused = graph.nodes[0]
    assert fused.inputs == [x, w] and fused.outputs == [out] and fused.attrs["to"] == "float32"
    # the scalar constant is a literal; y is computed once and read twice
    assert fused.attrs["expression"] == "t0 = (x0 * x1); t1 = std::exp(t0); t2 = (t0 + t1); (t2 * 0.5f)"
    verify(graph)


def test_what_stays_apart():
    b, x = _builder()
    row = b.input("row", (1, 3), np.float32)
    e = b.op("Exp", [x], (2, 3), np.float32)
    total = b.op("ReduceSum", [e], (2, 1), np.float32, axes=[1], keepdims=1)  # e also read by a reduction
    d = b.op("Div", [e, total], (2, 3), np.float32)
    n = b.op("Neg", [row], (1, 3), np.float32)  # (1, 3) broadcast into a (2, 3) reader: not inlined
    a = b.op("Add", [d, n], (2, 3), np.float32)
    shown = b.op("Sqrt", [x], (2, 3), np.float32)  # a graph output is not inlined into its reader
    r = b.op("Relu", [shown], (2, 3), np.float32)
    b.graph.outputs = [a, shown, r, total]
    graph = fuse_elementwise(b.graph)
    # d fuses into a (its only reader, same shape); Exp, Neg, Sqrt and Relu stay as they were
    assert [n.op for n in graph.nodes] == ["Exp", "ReduceSum", "Neg", "J2S_Elementwise", "Sqrt", "Relu"]
    assert graph.nodes[3].inputs == [e, total, n]
    assert graph.nodes[3].attrs["expression"] == "t0 = (x0 / x1); (t0 + x2)"
    verify(graph)


def test_groups_stop_growing_at_max_group():
    b, x = _builder()
    value = x
    for _ in range(2 * MAX_GROUP + 3):
        value = b.op("Sin", [value], (2, 3), np.float32)
    b.graph.outputs = [value]
    graph = fuse_elementwise(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Elementwise"] * 3  # 3, then two full groups
    assert [n.attrs["expression"].count("std::sin") for n in graph.nodes] == [3, MAX_GROUP, MAX_GROUP]
    verify(graph)


def test_integer_and_bool_intermediates_are_not_inlined():
    b = GraphBuilder("g")
    i = b.input("i", (4,), np.int32)
    doubled = b.op("J2S_Elementwise", [i], (4,), np.int32, expression="(x0 * std::int32_t(2))", to="int32")
    odd = b.op("J2S_Elementwise", [doubled], (4,), np.bool_, expression="(x0 > std::int32_t(3))", to="bool")
    b.graph.outputs = [odd]
    graph = fuse_elementwise(b.graph)
    assert [n.attrs["expression"] for n in graph.nodes] == ["(x0 * std::int32_t(2))", "(x0 > std::int32_t(3))"]


def _gelu_block(params, x):
    h = x @ params["w"] + params["b"]
    g = jax.nn.gelu(h, approximate=True)
    return jnp.tanh(g * 1.5 - jnp.exp(-jnp.abs(h))) + jax.nn.sigmoid(h) * jax.nn.relu(-h)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_converted_model_is_fused_and_matches_jax(dynamic, monkeypatch):
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(size=(5, 6)).astype(np.float32), "b": rng.normal(size=(6,)).astype(np.float32)}
    x = rng.normal(size=(3, 5)).astype(np.float32)
    model = jax2sofie.convert(_gelu_block, params, x, name="gelu_block", dynamic_batch=dynamic)
    counts = model.graph.op_counts()
    assert counts == {"J2S_Dense": 1, "J2S_Elementwise": 1}, counts
    with monkeypatch.context() as patch:  # the same model without the pass: many loops
        patch.setattr(passes, "PIPELINE", [p for p in passes.PIPELINE if p is not fuse_elementwise])
        unfused = jax2sofie.convert(_gelu_block, params, x, name="unfused")
    assert sum(unfused.graph.op_counts().values()) > 10
    for batch in ([1, 3, 7] if dynamic else [3]):
        xb = rng.normal(size=(batch, 5)).astype(np.float32)
        assert model.check(xb).passed


def test_tanh_is_the_rational_function_within_4e7_of_the_exact_tanh():
    """A lone tanh becomes J2S_Elementwise too (libm's tanhf is a call per element); over a dense grid
    of floats and the special values its error stays below 3.7e-7, NaN stays NaN, -0.0 stays -0.0."""
    grid = np.concatenate([np.linspace(-12, 12, 200001), np.geomspace(1e-30, 1e-2, 2001), -np.geomspace(1e-30, 1e-2, 2001),
                           [0.0, -0.0, np.inf, -np.inf, np.nan, 9.0, -9.0, 3e38, -3e38]]).astype(np.float32)
    model = jax2sofie.convert(lambda p, x: jnp.tanh(x), None, grid, name="tanh_grid")
    assert model.graph.op_counts() == {"J2S_Elementwise": 1}
    (got,) = model.compile().run(grid)
    exact = np.tanh(grid.astype(np.float64))
    finite = ~np.isnan(grid)
    assert np.max(np.abs(got[finite] - exact[finite])) < 3.7e-7
    assert np.all(np.abs(got[finite]) <= 1.0) and np.isnan(got[~finite]).all()
    assert np.signbit(got[grid.size - 8]) and got[grid.size - 7] == 1.0 and got[grid.size - 6] == -1.0


def test_a_group_of_scalar_constants_reads_them_as_inputs():
    """Constant folding leaves no such group, but the pass alone must still give a valid node: with
    every input a scalar constant, the constants are read as tensors instead of inlined as literals."""
    b = GraphBuilder("g")
    two = b.constant(np.array([2.0], np.float32), "two")
    three = b.constant(np.array([3.0], np.float32), "three")
    product = b.op("Mul", [two, three], (1,), np.float32)
    b.graph.outputs = [b.op("Exp", [product], (1,), np.float32)]
    graph = fuse_elementwise(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Elementwise"]
    assert graph.nodes[0].inputs == [two, three]
    assert graph.nodes[0].attrs["expression"] == "t0 = (x0 * x1); std::exp(t0)"
    verify(graph)
