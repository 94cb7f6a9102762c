"""passes/gather_index_wrap.py: numpy's negative-index wrap select(i < 0, i + n, i) before a gather
becomes J2S_Gather's wrap_negative flag, and only where its constant is the indexed operand dim."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import jax2sofie

TABLE = np.random.default_rng(0).standard_normal((11, 4)).astype(np.float32)
IDS = np.array([[0, 3, -1, -11, 10], [-12, 12, 5, -4, 2]], np.int32)  # in range, wrapped, out of range both ways


def _gathers(model):
    return [n for n in model.graph.nodes if n.op == "J2S_Gather"]


def test_embedding_lookup_wrap_folds_into_the_gather():
    model = jax2sofie.convert(lambda p, ids: p[ids], jnp.asarray(TABLE), IDS, name="wrap_fold")
    ops = model.graph.op_counts()
    assert "Less" not in ops and "Add" not in ops and ops.get("J2S_Elementwise", 0) == 0, ops
    (gather,) = _gathers(model)
    assert gather.attrs["wrap_negative"] == 1
    report = model.check(IDS)
    assert report.passed, report


def test_select_with_another_constant_is_not_folded():
    # the user's own wrap adds 5, not the axis length 11: it stays a select; jnp's wrap after it folds
    fn = lambda p, ids: jnp.take(p, jnp.where(ids < 0, ids + 5, ids), axis=0)  # noqa: E731
    model = jax2sofie.convert(fn, jnp.asarray(TABLE), IDS, name="wrap_other")
    selects = [n for n in model.graph.nodes if n.op == "J2S_Elementwise" and "?" in n.attrs["expression"]]
    assert len(selects) == 1
    (gather,) = _gathers(model)
    assert gather.attrs["wrap_negative"] == 1
    # the gather reads the user's select (reshaped), not the raw ids
    producers = model.graph.producers()
    reshape = producers[id(gather.inputs[1])]
    assert reshape.op == "Reshape" and producers[id(reshape.inputs[0])] is selects[0]
    report = model.check(IDS)
    assert report.passed, report


def test_top_k_neighbours_gather_reads_top_k_indices():
    # edgeconv's pattern: the gather reads J2S_TopK's int32 indices (through a Reshape) with no Cast,
    # Less, Add or select between them
    x = np.random.default_rng(1).standard_normal((2, 6, 3)).astype(np.float32)
    fn = lambda p, x: jax.vmap(lambda q, i: q[i])(x, lax.top_k(-jnp.sum(x * x, axis=-1)[:, None, :] + x[..., 0:1], 3)[1])  # noqa: E731
    model = jax2sofie.convert(fn, None, x, name="wrap_topk")
    assert set(model.graph.op_counts()) & {"Cast", "Less", "Add", "TopK"} == set(), model.graph.op_counts()
    (gather,) = _gathers(model)
    assert gather.attrs["wrap_negative"] == 1
    report = model.check(x)
    assert report.passed, report
