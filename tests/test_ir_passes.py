"""The IR verifier and each pass: graphs before/after, and numbers unchanged (compiled and checked)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie.errors import GraphError
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.passes import PIPELINE, eliminate_broadcasts, fold_constants
from jax2sofie.passes.dce import eliminate_dead_code
from jax2sofie.passes.gemm_bias import fuse_gemm_bias
from jax2sofie.passes.naming import name_weights


def _graph_with_input():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3), np.float32)
    return b, x


def test_verifier_rejects_use_before_definition():
    b, x = _graph_with_input()
    y = b.op("Relu", [x], (2, 3), np.float32)
    z = b.op("Tanh", [y], (2, 3), np.float32)
    b.graph.nodes.reverse()
    b.graph.outputs = [z]
    with pytest.raises(GraphError, match="reads 'relu_1' before it is computed"):
        verify(b.graph)


def test_verifier_rejects_bad_reshape_and_transpose():
    b, x = _graph_with_input()
    b.graph.outputs = [b.op("Reshape", [x, b.constant(np.array([4, 2]))], (4, 2), np.float32)]
    with pytest.raises(GraphError, match=r"reshape of \[2, 3\] to \[4, 2\] changes the number of elements"):
        verify(b.graph)
    b, x = _graph_with_input()
    b.graph.outputs = [b.op("Transpose", [x], (2, 3), np.float32, perm=[1, 0])]
    with pytest.raises(GraphError, match=r"output shape \[2, 3\] should be \[3, 2\]"):
        verify(b.graph)


def test_verifier_rejects_duplicate_names_and_missing_outputs():
    b, x = _graph_with_input()
    y = b.op("Relu", [x], (2, 3), np.float32)
    y.name = "x"
    b.graph.outputs = [y]
    with pytest.raises(GraphError, match="two different tensors are both named 'x'"):
        verify(b.graph)
    b, x = _graph_with_input()
    with pytest.raises(GraphError, match="has no outputs"):
        verify(b.graph)


def test_verifier_rejects_unknown_ops_and_names_the_source():
    b, x = _graph_with_input()
    with b.source("model.py:12 (f)"):
        b.graph.outputs = [b.op("Frobnicate", [x], (2, 3), np.float32)]
    with pytest.raises(GraphError, match=r"node 'frobnicate_op1' \(Frobnicate\) from model.py:12 \(f\): unknown"):
        verify(b.graph, known_ops={"Relu"})


def test_eliminate_broadcasts_then_fold_keeps_constants_small():
    b, x = _graph_with_input()
    one = b.constant(np.ones((1, 1), np.float32), "one")
    shape = b.constant(np.array([2, 3], np.int64), "shape")
    wide = b.op("Expand", [one, shape], (2, 3), np.float32)
    b.graph.outputs = [b.op("Add", [x, wide], (2, 3), np.float32)]
    graph = eliminate_broadcasts(b.graph)
    graph = eliminate_dead_code(fold_constants(graph))
    assert [n.op for n in graph.nodes] == ["Add"]
    assert graph.nodes[0].inputs[1] is one  # the 1x1 constant, not a folded 2x3 copy


def test_fold_constants_folds_transposed_weight_and_keeps_its_name():
    b, x = _graph_with_input()
    w = b.constant(np.arange(12, dtype=np.float32).reshape(4, 3), "Dense_kernel", origin="Dense_kernel")
    wt = b.op("Transpose", [w], (3, 4), np.float32, perm=[1, 0])
    b.graph.outputs = [b.op("Gemm", [x, wt], (2, 4), np.float32)]
    graph = name_weights(eliminate_dead_code(fold_constants(b.graph)))
    assert [n.op for n in graph.nodes] == ["Gemm"]
    folded = graph.nodes[0].inputs[1]
    assert folded.is_weight and folded.name == "Dense_kernel"
    np.testing.assert_array_equal(folded.const, np.arange(12, dtype=np.float32).reshape(4, 3).T)


def test_fuse_gemm_bias_before_after():
    b, x = _graph_with_input()
    w = b.constant(np.ones((3, 4), np.float32), "w", origin="w")
    bias = b.constant(np.ones((1, 4), np.float32), "b", origin="b")
    y = b.op("Gemm", [x, w], (2, 4), np.float32, alpha=1.0, beta=0.0)
    b.graph.outputs = [b.op("Add", [y, bias], (2, 4), np.float32)]
    out = b.graph.outputs[0]
    graph = eliminate_dead_code(fuse_gemm_bias(b.graph))
    assert [n.op for n in graph.nodes] == ["Gemm"]
    gemm = graph.nodes[0]
    assert gemm.inputs[2] is bias and gemm.attrs["beta"] == 1.0 and gemm.outputs == [out]
    verify(graph)


def test_fuse_gemm_bias_leaves_shared_products_alone():
    b, x = _graph_with_input()
    w = b.constant(np.ones((3, 4), np.float32), "w", origin="w")
    y = b.op("Gemm", [x, w], (2, 4), np.float32, alpha=1.0, beta=0.0)
    z = b.op("Add", [y, b.constant(np.ones(4, np.float32))], (2, 4), np.float32)
    b.graph.outputs = [z, y]  # y is read twice: fusing would lose it
    graph = fuse_gemm_bias(b.graph)
    assert [n.op for n in graph.nodes] == ["Gemm", "Add"]


def test_dead_code_is_removed():
    b, x = _graph_with_input()
    b.op("Exp", [x], (2, 3), np.float32)
    b.graph.outputs = [b.op("Relu", [x], (2, 3), np.float32)]
    assert [n.op for n in eliminate_dead_code(b.graph).nodes] == ["Relu"]


def test_pipeline_order_is_documented():
    assert [p.__name__ for p in PIPELINE] == ["eliminate_broadcasts", "fold_constants",
                                              "eliminate_common_subexpressions", "sink_transposes",
                                              "fold_product_transposes", "fuse_conv_affine", "fuse_gemm_bias", "fuse_relu", "fuse_dense",
                                              "fuse_softmax", "fuse_layernorm", "fold_gather_index_wrap", "fuse_elementwise", "fold_concat_into_conv", "eliminate_dead_code", "block_conv_kernels", "store_large_constants",
                                              "name_weights"]


def test_passes_do_not_change_numbers_softmax_dense():
    """Softmax's broadcasts are dropped and the bias fused; the compiled model still matches JAX."""
    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((8, 5)).astype(np.float32), "b": rng.standard_normal(5).astype(np.float32)}

    def fn(p, x):
        return jax.nn.softmax(x @ p["w"] + p["b"])

    x = rng.standard_normal((3, 8)).astype(np.float32)
    model = jax2sofie.convert(fn, params, x)
    counts = model.graph.op_counts()
    assert "Expand" not in counts and "Add" not in counts and counts["J2S_Dense"] == 1
    assert model.check(x).passed


def test_fuse_relu_into_gemm_and_standalone_relu():
    from jax2sofie.passes.activations import fuse_relu

    b, x = _graph_with_input()
    w = b.constant(np.ones((3, 4), np.float32), "w", origin="w")
    zero = b.constant(np.zeros((), np.float32), "zero")
    y = b.op("Gemm", [x, w], (2, 4), np.float32, alpha=1.0, beta=0.0)
    r = b.op("Max", [y, zero], (2, 4), np.float32)
    s = b.op("Max", [zero, x], (2, 3), np.float32)  # max(0, input): no Gemm to fuse into
    b.graph.outputs = [r, s]
    graph = fuse_relu(b.graph)
    assert [n.op for n in graph.nodes] == ["Gemm", "Relu"]
    assert graph.nodes[0].attrs["activation"] == "relu" and graph.nodes[0].outputs == [r]
    assert graph.nodes[1].inputs == [x]
    verify(graph)


def test_relu_mlp_numbers_unchanged_after_fusion():
    rng = np.random.default_rng(1)
    params = {"w1": rng.standard_normal((6, 8)).astype(np.float32), "b1": rng.standard_normal(8).astype(np.float32),
              "w2": rng.standard_normal((8, 3)).astype(np.float32)}

    def fn(p, x):
        return jax.nn.relu(jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"]) + jnp.maximum(x @ p["w2"][:6], 0.0)

    x = rng.standard_normal((4, 6)).astype(np.float32)
    model = jax2sofie.convert(fn, params, x)
    counts = model.graph.op_counts()
    assert "Max" not in counts and "Relu" not in counts and counts["J2S_Dense"] == 3, counts
    assert all(n.attrs.get("activation") == "relu" for n in model.graph.nodes if n.op == "J2S_Dense")
    assert model.check(x).passed


def test_constant_stack_is_folded_before_sofie():
    """A Concat of constants is folded here: SOFIE would fold it reading bool data as int64."""
    b = GraphBuilder("g")
    x = b.input("x", (3, 2), np.int32)
    parts = [b.constant(np.array([[True, False]])), b.constant(np.array([[False, True]]))]
    stacked = b.op("Concat", parts, (2, 2), np.bool_, dtype="bool", axis=0)
    b.graph.outputs = [b.op("Cast", [stacked], (2, 2), np.int32, to="int32", dtype="bool")]
    folded = fold_constants(b.graph)
    assert folded.nodes == []
    np.testing.assert_array_equal(folded.outputs[0].const, [[1, 0], [0, 1]])


def test_emit_refuses_what_sofie_would_fold_as_int64():
    """The guard behind the folding: a constant bool Concat that reached SOFIE is an error, not a
    read past its 2-byte buffers."""
    from jax2sofie.emit import emit
    b = GraphBuilder("g")
    parts = [b.constant(np.array([True, False])), b.constant(np.array([False, True]))]
    out = b.op("Concat", parts, (4,), np.bool_, dtype="bool", axis=0)
    b.graph.outputs = [b.op("Cast", [out], (4,), np.float32, to="float32", dtype="bool")]
    with pytest.raises(jax2sofie.ConversionError, match=r"Concat\) has only constant inputs of dtype bool: SOFIE "
                                                        r"would fold it reading the data as int64"):
        emit(b.graph)


def test_emit_refuses_constant_data_of_another_dtype_or_size():
    from jax2sofie.emit import emit
    from jax2sofie.ir import Value
    b = GraphBuilder("g")
    x = b.input("x", (2,), np.float32)
    wrong_dtype = Value("w", (2,), np.dtype(np.float32), const=np.array([True, False]))
    b.graph.outputs = [b.op("Add", [x, wrong_dtype], (2,), np.float32)]
    with pytest.raises(jax2sofie.ConversionError, match="constant 'w' holds bool data but is declared float32"):
        emit(b.graph)
    b = GraphBuilder("g")
    x = b.input("x", (2,), np.float32)
    short = Value("s", (2,), np.dtype(np.float32), const=np.array([1.0], np.float32))
    b.graph.outputs = [b.op("Add", [x, short], (2,), np.float32)]
    with pytest.raises(jax2sofie.ConversionError, match=r"constant 's' holds 4 bytes, but its shape \[2\] of float32 needs 8"):
        emit(b.graph)


def test_folding_cache_never_takes_a_new_equation_for_a_freed_one_at_the_same_address():
    """Equations folded on constants are cached by address. A jaxpr traced for one rule is freed after
    it is lowered, so a later equation can sit at the same address: an input-free iota of another shape
    must not get the old result back (tridiagonal's masks of several sizes did, depending on when
    Python reused the memory)."""
    from jax2sofie.lowering.context import LoweringContext
    from jax2sofie.lowering.walker import _fold_once, lower_sub_jaxpr

    def iota_eqn(n):
        return jax.make_jaxpr(lambda: jax.lax.broadcasted_iota(np.int32, (n, n), 1))().jaxpr.eqns[0]

    ctx = LoweringContext(GraphBuilder("cache"), lower_sub_jaxpr)
    old, new = iota_eqn(4), iota_eqn(6)
    [stale] = _fold_once(ctx, old, [])
    # what the cache holds once `old` is freed and `new` is allocated where it was
    ctx.folded_equations[(id(new), ())] = ctx.folded_equations.pop((id(old), ()))
    [folded] = _fold_once(ctx, new, [])
    assert stale.shape == (4, 4) and folded.shape == (6, 6)
    np.testing.assert_array_equal(folded.const, np.broadcast_to(np.arange(6, dtype=np.int32), (6, 6)))
    assert _fold_once(ctx, new, [])[0] is folded  # the same equation still reuses its result
