"""eliminate_common_subexpressions: graphs before/after and numbers unchanged."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

import jax2sofie
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.passes.cse import eliminate_common_subexpressions


def test_repeated_nodes_and_equal_literals_are_merged():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3), np.float32)
    e1 = b.op("Exp", [x], (2, 3), np.float32)
    e2 = b.op("Exp", [x], (2, 3), np.float32)
    s1 = b.op("Mul", [e1, b.constant(np.float32(2.0))], (2, 3), np.float32)
    s2 = b.op("Mul", [e2, b.constant(np.float32(2.0))], (2, 3), np.float32)  # another literal, same value
    s3 = b.op("Mul", [e2, b.constant(np.float32(3.0))], (2, 3), np.float32)
    b.graph.outputs = [b.op("Add", [s1, s2], (2, 3), np.float32), s3]
    graph = eliminate_common_subexpressions(b.graph)
    assert [n.op for n in graph.nodes] == ["Exp", "Mul", "Mul", "Add"]
    add = graph.nodes[-1]
    assert add.inputs[0] is add.inputs[1] is s1
    assert graph.nodes[2].inputs[0] is e1
    verify(graph)


def test_different_attributes_and_graph_outputs_are_kept():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3), np.float32)
    t1 = b.op("Transpose", [x], (3, 2), np.float32, perm=[1, 0])
    r1 = b.op("ReduceSum", [x], (2, 1), np.float32, axes=[1], keepdims=1)
    r2 = b.op("ReduceSum", [x], (1, 3), np.float32, axes=[0], keepdims=1)
    t2 = b.op("Transpose", [x], (3, 2), np.float32, perm=[1, 0])
    b.graph.outputs = [t1, r1, r2, t2]  # t2 repeats t1 but is an output of its own
    graph = eliminate_common_subexpressions(b.graph)
    assert len(graph.nodes) == 4
    verify(graph)


def test_layer_norm_by_hand_numbers_unchanged():
    rng = np.random.default_rng(0)
    params = {"g": rng.standard_normal(6).astype(np.float32)}

    def fn(p, x):
        centred = x - x.mean(-1, keepdims=True)
        var = ((x - x.mean(-1, keepdims=True)) ** 2).mean(-1, keepdims=True)  # the mean written twice
        return centred / jnp.sqrt(var + 1e-5) * p["g"]

    x = rng.standard_normal((4, 6)).astype(np.float32)
    model = jax2sofie.convert(fn, params, x)
    counts = model.graph.op_counts()
    assert counts.get("ReduceSum", 0) + counts.get("J2S_Reduce", 0) == 2, counts  # mean once, variance once
    assert model.check(x).passed
