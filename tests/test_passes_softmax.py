"""fuse_softmax: what jax.nn.softmax traces to over the last axis -> one J2S_Softmax; which softmaxes
stay as they are (another axis, an intermediate read elsewhere), the attention models of Flax and
Keras, and numbers unchanged (compiled and checked against JAX, static and with a dynamic batch; the
catalog cases of lowering/row_fusions.py cover NaN and -inf rows)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax2sofie
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.passes.softmax import exp_attribute, fuse_softmax


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_a_last_axis_softmax_becomes_one_node_reading_its_input():
    x = _x(3, 4, 10)
    graph = jax2sofie.convert(lambda p, x: jax.nn.softmax(2.0 * x, axis=-1), None, x).graph
    assert graph.op_counts() == {"J2S_Elementwise": 1, "J2S_Softmax": 1}, graph
    scale, softmax = graph.nodes
    assert softmax.inputs == scale.outputs and softmax.outputs == graph.outputs
    assert softmax.attrs == {"exp": exp_attribute(), "dtype": "float32"}
    verify(graph)


def test_the_exp_is_the_elementwise_one():
    """J2S_Softmax's exp is the expression J2S_Elementwise computes for jnp.exp."""
    graph = jax2sofie.convert(lambda p, x: jnp.exp(x), None, _x(2, 3)).graph
    assert graph.nodes[0].attrs["expression"] == exp_attribute()


@pytest.mark.parametrize("fn", [
    pytest.param(lambda x: jax.nn.softmax(x, axis=1), id="middle_axis"),
    pytest.param(lambda x: jax.nn.softmax(x, axis=(1, 2)), id="two_axes"),
])
def test_other_axes_stay_as_they_are(fn):
    x = _x(2, 5, 6)
    model = jax2sofie.convert(lambda p, x: fn(x), None, x)
    assert "J2S_Softmax" not in model.graph.op_counts(), model.graph
    assert model.check(x).passed


def _softmax_graph(extra_reader: str | None, reciprocal: bool = False):
    """The IR jax.nn.softmax lowers to over [2, 5, 6], with one more reader (a graph output) of the
    intermediate named `extra_reader`; `reciprocal`: the divide written as a multiply by 1 / sum."""
    b = GraphBuilder("g")
    x = b.input("x", (2, 5, 6), np.float32)
    values = {"max": b.op("J2S_Reduce", [x], (2, 5), np.float32, mode="max", axes=[2], keepdims=0, dtype="float32")}
    minus_inf = b.constant(np.array(-np.inf, np.float32), "minus_inf")
    values["clamped"] = b.op("Max", [minus_inf, values["max"]], (2, 5), np.float32, dtype="float32")
    values["max_b"] = b.op("Reshape", [values["clamped"], b.constant(np.array([2, 5, 1], np.int64), "shape")], (2, 5, 1),
                           np.float32)
    values["d"] = b.op("Sub", [x, values["max_b"]], (2, 5, 6), np.float32, dtype="float32")
    values["e"] = b.op("Exp", [values["d"]], (2, 5, 6), np.float32, dtype="float32")
    values["sum"] = b.op("J2S_Reduce", [values["e"]], (2, 5), np.float32, mode="sum", axes=[2], keepdims=0,
                         dtype="float32")
    values["sum_b"] = b.op("Reshape", [values["sum"], b.constant(np.array([2, 5, 1], np.int64), "shape")], (2, 5, 1),
                           np.float32)
    if reciprocal:
        values["inverse"] = b.op("Reciprocal", [values["sum_b"]], (2, 5, 1), np.float32, dtype="float32")
        y = b.op("Mul", [values["e"], values["inverse"]], (2, 5, 6), np.float32, dtype="float32")
    else:
        y = b.op("Div", [values["e"], values["sum_b"]], (2, 5, 6), np.float32, dtype="float32")
    b.graph.outputs = [y] + ([values[extra_reader]] if extra_reader else [])
    verify(b.graph)
    return b.graph


@pytest.mark.parametrize("reciprocal", [False, True])
def test_the_pattern_alone_is_fused(reciprocal):
    graph = _softmax_graph(None, reciprocal)
    x, y = graph.inputs[0], graph.outputs[0]
    graph = fuse_softmax(graph)
    assert [n.op for n in graph.nodes] == ["J2S_Softmax"], graph
    assert graph.nodes[0].inputs == [x] and graph.nodes[0].outputs == [y]
    verify(graph)


@pytest.mark.parametrize("intermediate, reciprocal", [
    *((name, False) for name in ("max", "clamped", "max_b", "d", "e", "sum", "sum_b")), ("inverse", True)])
def test_an_intermediate_read_elsewhere_stops_the_fusion(intermediate, reciprocal):
    graph = fuse_softmax(_softmax_graph(intermediate, reciprocal))
    assert "J2S_Softmax" not in {n.op for n in graph.nodes}, graph


def test_a_softmax_with_a_where_argument_is_left_alone():
    """jax.nn.softmax(where=...) takes the max and sum over the selected elements only: not the pattern."""
    x = _x(2, 5, 6)
    fn = lambda p, x: jax.nn.softmax(x, axis=-1, where=x > -0.5)  # noqa: E731
    model = jax2sofie.convert(fn, None, x)
    assert "J2S_Softmax" not in model.graph.op_counts(), model.graph
    assert model.check(x).passed


def test_dynamic_batch_softmax_rows_are_counted_at_run_time():
    x = _x(3, 4, 20)
    model = jax2sofie.convert(lambda p, x: jax.nn.softmax(x, axis=-1), None, x, dynamic_batch=True)
    assert model.graph.op_counts() == {"J2S_Softmax": 1}, model.graph
    for batch in (1, 6):
        xb = _x(batch, 4, 20, seed=batch)
        assert model.check(xb).passed


class _LinenAttention(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=16)(x, x)


def test_flax_linen_and_nnx_attention_fuse_their_softmax():
    x = _x(2, 7, 16)
    variables = _LinenAttention().init(jax.random.PRNGKey(0), x)
    linen = jax2sofie.convert(_LinenAttention().apply, variables, x)
    assert linen.graph.op_counts().get("J2S_Softmax") == 1, linen.graph
    assert linen.check(x).passed
    attention = nnx.MultiHeadAttention(num_heads=2, in_features=16, decode=False, rngs=nnx.Rngs(0))
    module = jax2sofie.convert(attention, x)
    assert module.graph.op_counts().get("J2S_Softmax") == 1, module.graph
    assert module.check(x).passed


def test_keras_causal_attention_fuses_its_softmax():
    import keras_frontend  # noqa: F401  (before Keras: Keras then runs on JAX)
    import keras

    inputs = keras.Input((6, 8))
    outputs = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)(inputs, inputs, use_causal_mask=True)
    model = keras.Model(inputs, outputs)
    x = _x(2, 6, 8)
    converted = keras_frontend.convert(model, example_input=[x], name="keras_causal")
    assert converted.graph.op_counts().get("J2S_Softmax") == 1, converted.graph
    assert converted.check(x).passed
