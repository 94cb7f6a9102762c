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
    t = b.op("Log", [y], (2, 3), np.float32)
    s = b.op("Add", [y, t], (2, 3), np.float32)  # y read twice, both readers in the group
    out = b.op("Mul", [s, half], (2, 3), np.float32)
    b.graph.outputs = [out]
    graph = fuse_elementwise(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Elementwise"]
    fused = graph.nodes[0]
    assert fused.inputs == [x, w] and fused.outputs == [out] and fused.attrs["to"] == "float32"
    # the scalar constant is a literal; y is computed once and read twice
    assert fused.attrs["expression"] == "t0 = (x0 * x1); t1 = std::log(t0); t2 = (t0 + t1); (t2 * 0.5f)"
    verify(graph)


def test_what_stays_apart():
    b, x = _builder()
    row = b.input("row", (1, 3), np.float32)
    e = b.op("Log", [x], (2, 3), np.float32)
    total = b.op("ReduceSum", [e], (2, 1), np.float32, axes=[1], keepdims=1)  # e also read by a reduction
    d = b.op("Div", [e, total], (2, 3), np.float32)
    n = b.op("Neg", [row], (1, 3), np.float32)  # (1, 3) broadcast into a (2, 3) reader: not inlined
    a = b.op("Add", [d, n], (2, 3), np.float32)
    shown = b.op("Sqrt", [x], (2, 3), np.float32)  # a graph output is not inlined into its reader
    r = b.op("Relu", [shown], (2, 3), np.float32)
    b.graph.outputs = [a, shown, r, total]
    graph = fuse_elementwise(b.graph)
    # d fuses into a (its only reader, same shape); Log, Neg, Sqrt and Relu stay as they were
    assert [n.op for n in graph.nodes] == ["Log", "ReduceSum", "Neg", "J2S_Elementwise", "Sqrt", "Relu"]
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
    b.graph.outputs = [b.op("Log", [product], (1,), np.float32)]
    graph = fuse_elementwise(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Elementwise"]
    assert graph.nodes[0].inputs == [two, three]
    assert graph.nodes[0].attrs["expression"] == "t0 = (x0 * x1); std::log(t0)"
    verify(graph)


def _special_values():
    return [0.0, -0.0, np.inf, -np.inf, np.nan, 88.72283, 88.72284, 89.0, -87.3, -103.9, -104.0, 3e38, -3e38]


@pytest.mark.parametrize("name, fn, exact_fn", [
    ("exp", jnp.exp, np.exp),
    ("sigmoid", jax.nn.sigmoid, lambda x: 1.0 / (1.0 + np.exp(-x))),
])
def test_exp_and_sigmoid_are_within_1_5e7_of_the_exact_functions(name, fn, exact_fn):
    """A lone exp or sigmoid becomes J2S_Elementwise (SOFIE's code calls libm's expf per element), the
    polynomial exp of ops/expressions.py: over a dense grid of floats its relative error stays
    below 1.5e-7 where the result is a normal float, subnormal results are within one subnormal
    step, overflow gives inf, -inf gives 0 and NaN stays NaN."""
    special = np.array(_special_values(), np.float32)
    grid = np.concatenate([np.linspace(-110, 90, 400001), np.linspace(-1, 1, 40001), np.geomspace(1e-30, 1e-2, 2001),
                           -np.geomspace(1e-30, 1e-2, 2001), special]).astype(np.float32)
    model = jax2sofie.convert(lambda p, x: fn(x), None, grid, name=f"{name}_grid")
    assert model.graph.op_counts() == {"J2S_Elementwise": 1}
    assert "std::exp" not in model.graph.nodes[0].attrs["expression"]
    (got,) = model.compile().run(grid)
    with np.errstate(over="ignore"):
        exact = exact_fn(grid.astype(np.float64))
    normal = np.isfinite(grid) & (np.abs(exact) >= np.finfo(np.float32).tiny) & (exact <= np.finfo(np.float32).max)
    assert np.max(np.abs(got[normal] - exact[normal]) / exact[normal]) < 1.5e-7
    tiny = np.isfinite(grid) & (np.abs(exact) < np.finfo(np.float32).tiny)
    assert np.max(np.abs(got[tiny] - exact[tiny])) < 3e-39  # sigmoid: 0 where exp(-x) overflows
    at = {v: g for v, g in zip(_special_values(), got[-len(special):]) if not np.isnan(v)}
    assert np.isnan(got[-len(special) + 4])
    if name == "exp":
        assert at[np.inf] == np.inf and at[-np.inf] == 0.0 and at[3e38] == np.inf and at[-3e38] == 0.0
        assert np.isfinite(at[88.72283]) and at[88.72284] == np.inf
    else:
        assert at[np.inf] == 1.0 and at[-np.inf] == 0.0 and at[3e38] == 1.0 and at[-3e38] == 0.0


# the J2S_Elementwise loops of these models must vectorise under each set of flags (GCC): -O2 is what
# ConvertedModel.check and the standalone Makefile use, and its cost model allows no overlap checks.
# Each loop is compiled once per instruction-set level the build can run (the kernel functions
# j2s_kernel_<op>_<level>) and must use that level's vectors: a plain -O2 build holds AVX-512 code too.
_VECTOR_MODELS = {
    "gates": lambda p, x: jax.nn.sigmoid(x) * jnp.tanh(x) + jnp.exp(x * 0.5),
    # over the batch axis: a softmax over the last one is a J2S_Softmax (passes/softmax.py), not loops
    "softmax": lambda p, x: jax.nn.softmax(x, axis=0),
    "gelu": lambda p, x: jax.nn.gelu(x, approximate=True),
}
_VECTOR_BYTES = {"avx512": 64, "avx2": 32, "base": 16}


@pytest.mark.parametrize("flags, levels", [(["-O2"], {"avx512", "avx2", "base"}),
                                           (["-O3", "-mavx2", "-mfma"], {"avx512", "avx2"}),
                                           (["-O3", "-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq"], {"avx512"})],
                         ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_elementwise_loops_vectorise(flags, levels, tmp_path):
    import re
    import shutil
    import subprocess
    if shutil.which("g++") is None:
        pytest.fail("g++ is needed: apt-get install g++")
    for name, fn in _VECTOR_MODELS.items():
        model = jax2sofie.convert(fn, None, np.zeros((64, 32), np.float32), name=name)
        model.write(tmp_path / name)
        header = tmp_path / name / f"{name}.hxx"
        lines = header.read_text().splitlines()
        loops = {}  # line of an innermost J2S_Elementwise loop -> the level of the kernel holding it
        level = None
        for i, line in enumerate(lines):
            kernel = re.search(r"static void j2s_kernel_\w+_(avx512|avx2|base)\(", line)
            if kernel:
                level = kernel.group(1)
            if line.lstrip().startswith("for (std::size_t i") and lines[i - 1].strip() == "#endif":
                loops[i + 1] = level
        assert set(loops.values()) == {"avx512", "avx2", "base"}, (name, loops)
        source = tmp_path / name / "use.cpp"
        source.write_text(f'#include "{name}.hxx"\nint main() {{ SOFIE_{name}::Session s; std::vector<float> x(2048);'
                          ' return static_cast<int>(s.infer(x.data())[0]); }\n')
        report = subprocess.run(["g++", *flags, "-std=c++17", "-fopt-info-vec-optimized", "-c", str(source), "-o",
                                 str(tmp_path / name / "use.o")], capture_output=True, text=True, check=True).stderr
        vectorised = {int(line): int(size) for line, size in re.findall(
            rf"{name}\.hxx:([0-9]+):[0-9]+: optimized: loop vectorized using ([0-9]+) byte vectors", report)}
        expected = {line: _VECTOR_BYTES[lvl] for line, lvl in loops.items() if lvl in levels}
        assert {line: vectorised.get(line) for line in expected} == expected, (name, loops, report)
