"""fuse_dense: Gemm on a constant weight (+ bias + activation) -> J2S_Dense; graphs before/after and
numbers unchanged (compiled and checked against JAX, static and with a dynamic batch)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

import jax2sofie
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.passes.dense import fuse_dense


def _builder(shape=(2, 3)):
    b = GraphBuilder("g")
    return b, b.input("x", shape, np.float32)


def test_gemm_bias_add_and_sigmoid_become_one_dense():
    b, x = _builder((2, 5, 3))  # rank 3: SOFIE's Gemm would loop over the leading axis
    w = b.constant(np.ones((3, 4), np.float32), "w", origin="w")
    bias = b.constant(np.ones((1, 1, 4), np.float32), "b", origin="b")
    y = b.op("Gemm", [x, w], (2, 5, 4), np.float32, alpha=1.0, beta=0.0)
    z = b.op("Add", [y, bias], (2, 5, 4), np.float32)
    s = b.op("Sigmoid", [z], (2, 5, 4), np.float32)
    b.graph.outputs = [s]
    graph = fuse_dense(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Dense"]
    dense = graph.nodes[0]
    assert dense.attrs == {"dtype": "float32", "activation": "sigmoid"} and dense.outputs == [s]
    assert dense.inputs[0] is x and dense.inputs[1] is w and dense.inputs[2].shape == (4,)
    assert dense.inputs[2].origin == "b"
    verify(graph)


def test_transposed_weight_is_folded_and_relu_kept():
    b, x = _builder()
    wt = b.constant(np.arange(12, dtype=np.float32).reshape(4, 3), "w", origin="w")
    bias = b.constant(np.ones(4, np.float32), "b", origin="b")
    y = b.op("Gemm", [x, wt, bias], (2, 4), np.float32, transB=1, alpha=1.0, beta=1.0, activation="relu")
    b.graph.outputs = [b.op("Tanh", [y], (2, 4), np.float32)]  # after the relu: not fused
    graph = fuse_dense(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Dense", "Tanh"]
    dense = graph.nodes[0]
    np.testing.assert_array_equal(dense.inputs[1].const, np.arange(12, dtype=np.float32).reshape(4, 3).T)
    assert dense.inputs[2] is bias and dense.attrs["activation"] == "relu"
    verify(graph)


def test_left_alone_shared_products_and_non_constant_weights():
    b, x = _builder()
    v = b.input("v", (3, 4), np.float32)
    w = b.constant(np.ones((3, 4), np.float32), "w", origin="w")
    y = b.op("Gemm", [x, w], (2, 4), np.float32, alpha=1.0, beta=0.0)
    r = b.op("Relu", [y], (2, 4), np.float32)
    p = b.op("Gemm", [x, v], (2, 4), np.float32, alpha=1.0, beta=0.0)
    t = b.op("Gemm", [x, w], (2, 4), np.float32, alpha=2.0, beta=0.0)
    b.graph.outputs = [r, y, p, t]  # y read twice: the relu stays apart; p: weight is an input; t: alpha
    graph = fuse_dense(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Dense", "Relu", "Gemm", "Gemm"]
    assert graph.nodes[0].outputs == [y] and graph.nodes[0].attrs["activation"] == ""
    verify(graph)


def _mlp_params(rng, sizes):
    return [{"w": rng.standard_normal((a, b)).astype(np.float32) / np.sqrt(a),
             "b": rng.standard_normal(b).astype(np.float32)} for a, b in zip(sizes, sizes[1:])]


def test_mlp_numbers_unchanged_gemv_and_gemm_rows():
    """Batch 1 and 3 take the sgemv path, 9 the sgemm path; sigmoid fused, tanh its own fast loop."""
    rng = np.random.default_rng(0)
    params = _mlp_params(rng, [7, 16, 16, 5])

    def fn(p, x):
        x = jax.nn.relu(x @ p[0]["w"] + p[0]["b"])
        x = jnp.tanh(x @ p[1]["w"] + p[1]["b"])
        return jax.nn.sigmoid(x @ p[2]["w"] + p[2]["b"])

    for batch in (1, 3, 9):
        x = rng.standard_normal((batch, 7)).astype(np.float32)
        model = jax2sofie.convert(fn, params, x)
        assert model.graph.op_counts() == {"J2S_Dense": 3, "J2S_Elementwise": 1}, model.graph.op_counts()
        assert model.check(x).passed
    model = jax2sofie.convert(fn, params, x, dynamic_batch=True)
    assert model.graph.op_counts() == {"J2S_Dense": 3, "J2S_Elementwise": 1}
    for batch in (1, 7):
        xb = rng.standard_normal((batch, 7)).astype(np.float32)
        assert model.check(xb).passed


def test_per_particle_dense_rank3_numbers_unchanged():
    """(batch, particles, features) x (features, hidden): one product over batch*particles rows."""
    rng = np.random.default_rng(1)
    params = _mlp_params(rng, [4, 8, 2])

    def fn(p, x):
        h = jax.nn.relu(x @ p[0]["w"] + p[0]["b"])
        return jnp.sum(h @ p[1]["w"] + p[1]["b"], axis=1)

    x = rng.standard_normal((3, 5, 4)).astype(np.float32)
    model = jax2sofie.convert(fn, params, x, dynamic_batch=True)
    counts = model.graph.op_counts()
    assert counts.get("J2S_Dense") == 2 and "Add" not in counts and "Relu" not in counts, counts
    for batch in (1, 3):
        assert model.check(x[:batch]).passed


def test_heads_reshape_bias_and_scale_are_absorbed():
    """Dense -> reshape (N split into heads) -> + bias(heads, d) -> / sqrt(d): one J2S_Dense, then the
    reshape, which now relabels the finished output."""
    b, x = _builder((2, 3))
    w = b.constant(np.arange(24, dtype=np.float32).reshape(3, 8), "w", origin="w")
    bias = b.constant(np.arange(8, dtype=np.float32).reshape(2, 4), "b", origin="b")
    y = b.op("Gemm", [x, w], (2, 8), np.float32, alpha=1.0, beta=0.0)
    r = b.op("Reshape", [y, b.constant(np.array([2, 2, 4], np.int64))], (2, 2, 4), np.float32)
    z = b.op("Add", [r, bias], (2, 2, 4), np.float32)
    q = b.op("Div", [z, b.constant(np.float32(2.0))], (2, 2, 4), np.float32)
    b.graph.outputs = [q]
    graph = fuse_dense(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Dense", "Reshape"]
    dense, reshape = graph.nodes
    np.testing.assert_allclose(dense.inputs[1].const, np.arange(24, dtype=np.float32).reshape(3, 8) / 2)
    np.testing.assert_allclose(dense.inputs[2].const, np.arange(8, dtype=np.float32) / 2)
    assert dense.outputs == [y] and reshape.inputs[0] is y and reshape.outputs == [q]
    verify(graph)


def test_bias_added_before_the_heads_reshape_is_absorbed():
    """Dense -> + bias -> reshape into heads (a Linear whose output is split into heads): the reshape
    must read the J2S_Dense's output, not the Add it absorbed."""
    b, x = _builder((2, 5, 3))
    w = b.constant(np.arange(24, dtype=np.float32).reshape(3, 8), "w", origin="w")
    bias = b.constant(np.arange(8, dtype=np.float32), "b", origin="b")
    y = b.op("Gemm", [x, w], (2, 5, 8), np.float32, alpha=1.0, beta=0.0)
    z = b.op("Add", [y, bias], (2, 5, 8), np.float32)
    r = b.op("Reshape", [z, b.constant(np.array([2, 5, 2, 4], np.int64))], (2, 5, 2, 4), np.float32)
    b.graph.outputs = [b.op("Mul", [r, b.constant(np.float32(3.0))], (2, 5, 2, 4), np.float32)]
    graph = fuse_dense(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Dense", "Reshape"]
    dense, reshape = graph.nodes
    np.testing.assert_allclose(dense.inputs[2].const, np.arange(8, dtype=np.float32) * 3)
    assert dense.outputs == [y] and reshape.inputs[0] is y and reshape.outputs == graph.outputs
    verify(graph)


def _attention_core():
    """q, k, v from nnx.Linear layers, each reshaped into heads, then nnx.dot_product_attention: the
    bias Add of each Linear comes before its heads reshape."""
    from flax import nnx

    class Core(nnx.Module):
        def __init__(self, rngs):
            self.q, self.k, self.v = (nnx.Linear(16, 16, rngs=rngs) for _ in range(3))
            self.out = nnx.Linear(16, 16, rngs=rngs)

        def __call__(self, x, memory):
            def heads(h):
                return h.reshape(h.shape[0], h.shape[1], 4, 4)
            y = nnx.dot_product_attention(heads(self.q(x)), heads(self.k(memory)), heads(self.v(memory)))
            return self.out(y.reshape(x.shape))

    return Core(nnx.Rngs(0))


def test_attention_core_with_heads_reshape_after_bias_matches_jax():
    """Regression: fuse_dense left each heads reshape reading the bias Add it had absorbed (GraphError
    "reads 'add_2' before it is computed"). Self- and cross-attention (keys longer than queries),
    static and with a dynamic batch."""
    rng = np.random.default_rng(3)
    core = _attention_core()
    x = rng.standard_normal((2, 5, 16)).astype(np.float32)
    for memory in (x, rng.standard_normal((2, 7, 16)).astype(np.float32)):
        model = jax2sofie.convert(core, x, memory)
        assert model.graph.op_counts()["J2S_Dense"] == 4 and "Add" not in model.graph.op_counts()
        report = model.check(x, memory)
        assert report.passed, str(report)
    model = jax2sofie.convert(core, x, memory, dynamic_batch=True)
    for batch in (1, 7):
        xb, mb = (rng.standard_normal((batch,) + a.shape[1:]).astype(np.float32) for a in (x, memory))
        report = model.check(xb, mb)
        assert report.passed, f"batch {batch}:\n{report}"


def test_per_row_constants_are_not_absorbed():
    b, x = _builder((2, 3))
    w = b.constant(np.ones((3, 4), np.float32), "w", origin="w")
    y = b.op("Gemm", [x, w], (2, 4), np.float32, alpha=1.0, beta=0.0)
    b.graph.outputs = [b.op("Add", [y, b.constant(np.ones((2, 1), np.float32))], (2, 4), np.float32)]
    graph = fuse_dense(b.graph)
    assert [n.op for n in graph.nodes] == ["J2S_Dense", "Add"]


def test_attention_projections_numbers_unchanged():
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8)(x, x)

    x = np.random.default_rng(2).standard_normal((2, 5, 8)).astype(np.float32)
    variables = Block().init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(Block().apply, variables, x)
    counts = model.graph.op_counts()
    # the q/k/v/out biases and the 1/sqrt(d) scale are inside the J2S_Dense; softmax's division is the
    # only arithmetic left, a J2S_Elementwise
    assert counts["J2S_Dense"] == 4 and "Add" not in counts and "Div" not in counts, counts
    assert model.check(x).passed


def test_weights_of_many_row_layers_are_stored_in_panels():
    """From 5 rows, a weight with N a multiple of 32 is packed into panels of 32 columns for the
    register-tiled product (panel=32), however many rows and however large the weight; one row, or
    N = 4, keeps the row-major weight."""
    from jax2sofie.passes.dense import PANEL, in_panels
    w = np.arange(6 * 64, dtype=np.float32).reshape(6, 64)
    packed = in_panels(w)
    assert packed.shape == w.shape and np.array_equal(packed.reshape(2, 6, 32)[1], w[:, 32:])
    for rows, n, expected in ((7, 64, PANEL), (1, 64, None), (7, 4, None)):
        b, x = _builder((rows, 6))
        weight = b.constant(w[:, :n].copy(), "w", origin="w")
        b.graph.outputs = [b.op("Gemm", [x, weight], (rows, n), np.float32, alpha=1.0, beta=0.0)]
        (dense,) = fuse_dense(b.graph).nodes
        assert dense.attrs.get("panel") == expected
        stored = dense.inputs[1].const
        assert np.array_equal(stored, in_panels(w[:, :n]) if expected else w[:, :n])
        assert dense.inputs[1].origin == "w"
    # many rows of a large weight go into panels too (the tiles beat BLAS there, see PANEL), in a
    # static graph as in a trace of a symbolic batch
    big = np.ones((6, 4096), np.float32)
    for traced_batch in (False, True):
        b, x = _builder((300, 6))
        b.graph.traced_batch = traced_batch
        weight = b.constant(big, "big", origin="big")
        b.graph.outputs = [b.op("Gemm", [x, weight], (300, 4096), np.float32, alpha=1.0, beta=0.0)]
        (dense,) = fuse_dense(b.graph).nodes
        assert dense.attrs.get("panel") == PANEL


def test_many_rows_of_large_weights_in_panels_numbers_unchanged():
    """A jet-tagger-like MLP (64 -> 256 -> 256 -> 1) over 259 rows: its 256 x 256 weight goes into
    panels like the first layer's (the 12-row tiles and the 4-, 2- and 1-row rest, 259 = 21 * 12 + 7),
    compiled and checked against JAX, with a static batch and with a dynamic one run at 259."""
    rng = np.random.default_rng(3)
    params = _mlp_params(rng, [64, 256, 256, 1])

    def fn(p, x):
        x = jax.nn.relu(x @ p[0]["w"] + p[0]["b"])
        x = jax.nn.relu(x @ p[1]["w"] + p[1]["b"])
        return jax.nn.sigmoid(x @ p[2]["w"] + p[2]["b"])

    x = rng.standard_normal((259, 64)).astype(np.float32)
    for dynamic in (False, True):
        model = jax2sofie.convert(fn, params, x, dynamic_batch=dynamic)
        dense = [n for n in model.graph.nodes if n.op == "J2S_Dense"]
        assert [n.attrs.get("panel") for n in dense] == [32, 32, None], dynamic
        assert model.check(x).passed, dynamic
