"""fuse_layernorm: what Flax's and Keras' layer norms trace to over the last axis -> one J2S_LayerNorm
with the variance and output forms the model computes; which forms stay as they are (another axis, an
intermediate read elsewhere, eps outside the square root), the transformer benchmark models, and
numbers unchanged (compiled and checked against JAX, static and with a dynamic batch; the catalog
cases of lowering/row_fusions.py cover tiny and large values and every scale/bias combination)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax2sofie
from jax2sofie.ir import verify
from jax2sofie.lowering.row_fusions import keras_layer_norm


def _x(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _layer_norm_nodes(graph):
    return [n for n in graph.nodes if n.op == "J2S_LayerNorm"]


@pytest.mark.parametrize("use_scale, use_bias", [(True, True), (True, False), (False, True), (False, False)])
def test_nnx_layer_norm_is_one_node_of_the_moments_form(use_scale, use_bias):
    x = _x(3, 4, 20)
    norm = nnx.LayerNorm(20, use_scale=use_scale, use_bias=use_bias, epsilon=1e-4, rngs=nnx.Rngs(0))
    if use_scale:
        norm.scale[...] = jnp.asarray(_x(20, seed=1))
    if use_bias:
        norm.bias[...] = jnp.asarray(_x(20, seed=2))
    model = jax2sofie.convert(norm, x)
    assert model.graph.op_counts() == {"J2S_LayerNorm": 1}, model.graph
    [node] = model.graph.nodes
    assert node.inputs[0] is model.graph.inputs[0] and node.outputs == model.graph.outputs
    assert len(node.inputs) == 1 + use_scale + use_bias
    assert {k: node.attrs[k] for k in ("variance", "output", "has_scale", "has_bias")} == {
        "variance": "moments", "output": "centered", "has_scale": int(use_scale), "has_bias": int(use_bias)}
    assert node.attrs["eps"] == pytest.approx(1e-4, rel=1e-6)
    verify(model.graph)
    assert model.check(x).passed


@pytest.mark.parametrize("scale, center", [(True, True), (True, False), (False, True), (False, False)])
def test_keras_layer_normalization_is_one_node_of_the_folded_form(scale, center):
    import keras_frontend  # noqa: F401  (before Keras: Keras then runs on JAX)
    import keras

    inputs = keras.Input((5, 13))
    layer = keras.layers.LayerNormalization(scale=scale, center=center, epsilon=1e-3)
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(3)
    layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) for w in layer.get_weights()])
    x = _x(2, 5, 13)
    converted = keras_frontend.convert(model, example_input=[x], name=f"keras_ln_{int(scale)}{int(center)}")
    assert converted.graph.op_counts() == {"J2S_LayerNorm": 1}, converted.graph
    [node] = converted.graph.nodes
    assert (node.attrs["variance"], node.attrs["output"]) == ("centered", "folded")
    assert (node.attrs["has_scale"], node.attrs["has_bias"]) == (int(scale), int(center))
    np.testing.assert_allclose(converted.run(x)[0], keras.ops.convert_to_numpy(model(x)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("epsilon", [1.0, 0.5, 1e-12])
def test_eps_is_written_as_a_float_literal(epsilon):
    """A whole-number eps too (1.0 must be written 1.0...f, not 1f, which is no C++ literal)."""
    x = 3.0 * _x(2, 3, 9)
    norm = nnx.LayerNorm(9, epsilon=epsilon, rngs=nnx.Rngs(0))
    model = jax2sofie.convert(norm, x)
    [node] = _layer_norm_nodes(model.graph)
    assert node.attrs["eps"] == pytest.approx(epsilon, rel=1e-6)
    assert model.check(x).passed


def test_dynamic_batch_layer_norm_rows_are_counted_at_run_time():
    x = _x(3, 4, 20)
    variables = nn.LayerNorm().init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(nn.LayerNorm().apply, variables, x, dynamic_batch=True)
    assert model.graph.op_counts() == {"J2S_LayerNorm": 1}, model.graph
    for batch in (1, 6):
        assert model.check(_x(batch, 4, 20, seed=batch)).passed


@pytest.mark.parametrize("fn", [
    # the mean is an output too: the row sums stay for it
    pytest.param(lambda p, x: (keras_layer_norm(x, p), x.mean(-1)), id="mean_read_elsewhere"),
    # jnp.var's mean is the norm's mean (one node after common subexpressions), which it reads too
    pytest.param(lambda p, x: (nn.LayerNorm(use_scale=False, use_bias=False).apply({}, x), jnp.var(x, -1) * 2.0),
                 id="mean_shared_with_a_variance"),
    pytest.param(lambda p, x: nn.LayerNorm(reduction_axes=-2, use_scale=False, use_bias=False).apply({}, x),
                 id="middle_axis"),
    pytest.param(lambda p, x: (x - x.mean(-1, keepdims=True)) / (jnp.sqrt(jnp.var(x, -1, keepdims=True)) + 1e-5),
                 id="eps_outside_the_root"),
    # an RMS norm: no mean subtracted
    pytest.param(lambda p, x: x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * p, id="rms_norm"),
    # a scale that differs per row, not per column
    pytest.param(lambda p, x: keras_layer_norm(x, x[:, :, :1]), id="per_row_scale"),
])
def test_other_forms_stay_as_they_are(fn):
    x = _x(2, 5, 6)
    p = _x(6, seed=4)
    model = jax2sofie.convert(fn, p, x)
    assert "J2S_LayerNorm" not in model.graph.op_counts(), model.graph
    assert model.check(x).passed


def test_a_layer_norm_after_a_residual_add_reads_the_sum():
    """The transformer's norm(x + f(x)): the norm reads the Add's output; the GELU before it stays an
    elementwise loop."""
    x = _x(2, 7, 16)

    def fn(p, x):
        h = x + jax.nn.gelu(x @ p["w"])
        return nn.LayerNorm().apply({"params": {"scale": p["scale"], "bias": p["bias"]}}, h)

    params = {"w": _x(16, 16, seed=5) / 4, "scale": _x(16, seed=6), "bias": _x(16, seed=7)}
    model = jax2sofie.convert(fn, params, x)
    [node] = _layer_norm_nodes(model.graph)
    assert node.outputs == model.graph.outputs
    assert model.check(x).passed


@pytest.mark.parametrize("name, norms", [("transformer_block", 2), ("bert_encoder", 5), ("keras_mha", 1)])
def test_benchmark_transformers_fuse_every_layer_norm(name, norms):
    """Every LayerNorm of the transformer benchmark models becomes one J2S_LayerNorm and no row
    reduction is left (vit_tiny's is built in test_benchmark_models only with J2S_LONG_TESTS)."""
    import os
    import sys
    from pathlib import Path
    os.environ.setdefault("KERAS_BACKEND", "jax")
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from models import MODELS

    [bm] = [m for m in MODELS if m.name == name]
    built = bm.build()
    xs = bm.examples(2)
    model = jax2sofie.convert(built.apply, built.variables, *xs)
    counts = model.graph.op_counts()
    assert counts.get("J2S_LayerNorm") == norms and "J2S_Reduce" not in counts, counts
    assert model.check(*xs).passed
