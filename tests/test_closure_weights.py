"""Arrays a converted function closes over are weights like params: they go to the weight file (text,
safetensors), not into the header, and keep readable names; in the embedded format the header holds
them. Large constants folded at conversion time go to the weight file too; small ones stay literals.

Two models of over a million parameters, neither taking params: a Flax MLP through
`functools.partial(module.apply, variables)` and a lambda over jnp arrays. Each is compiled and
checked against JAX in all three weight formats (the embedded headers are the two large compiles).
"""
from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax import nnx

import jax2sofie
from jax2sofie.ir import LITERAL_MAX_ELEMENTS, GraphBuilder
from jax2sofie.passes.weights import store_large_constants

SMALL_HEADER = 200_000  # bytes: the code of a few layers, without their weights
WEIGHT_FILES = {"text": ".dat", "safetensors": ".safetensors", "embedded": None}


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x):
        x = nn.gelu(nn.Dense(1024)(x))
        x = nn.gelu(nn.Dense(768)(x))
        return nn.Dense(10)(x)


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _flax_closure():
    x = _x((2, 256))
    variables = MLP().init(jax.random.PRNGKey(0), x)
    apply = functools.partial(MLP().apply, variables)  # the variables are closed over, not params
    n_params = sum(v.size for v in jax.tree_util.tree_leaves(variables))
    return jax2sofie.convert(lambda _, x: apply(x), None, x, name="flax_closure"), x, n_params


def _lambda_closure():
    x = _x((2, 512))
    w_in, b_in = jnp.asarray(_x((512, 1024), 1) / 20), jnp.asarray(_x((1024,), 2))
    w_out = jnp.asarray(_x((1024, 640), 3) / 30)
    fn = lambda _, x: jnp.tanh(x @ w_in + b_in) @ w_out  # noqa: E731 - the closure is the point
    n_params = w_in.size + b_in.size + w_out.size
    return jax2sofie.convert(fn, None, x, name="lambda_closure"), x, n_params


MODELS = {"flax_partial": _flax_closure, "jnp_lambda": _lambda_closure}


@pytest.fixture(scope="module", params=sorted(MODELS))
def closure_model(request):
    return MODELS[request.param]()


def _weight_values(model) -> int:
    return sum(v.size for v in model.graph.constants() if v.is_weight)


@pytest.mark.parametrize("weights", list(WEIGHT_FILES))
def test_closed_over_arrays_go_to_the_weight_file(closure_model, weights, tmp_path):
    model, x, n_params = closure_model
    assert n_params >= 1_000_000
    # every parameter is a weight, but for the Flax MLP's last bias (10 values: a literal)
    assert _weight_values(model) >= n_params - LITERAL_MAX_ELEMENTS
    paths = {p.suffix: p for p in model.write(tmp_path, weights=weights)}
    header = paths.pop(".hxx").stat().st_size
    if WEIGHT_FILES[weights] is None:
        assert not paths and header >= 4 * n_params  # the header holds the weights
    else:
        assert list(paths) == [WEIGHT_FILES[weights]]
        assert header < SMALL_HEADER, f"{weights}: a {header}-byte header holds weights"
        assert paths[WEIGHT_FILES[weights]].stat().st_size >= 4 * n_params
    report = model.check(x, weights=weights)
    assert report.passed, f"{weights}:\n{report}"


def test_closed_over_arrays_keep_readable_names():
    model, _, _ = _flax_closure()
    names = {v.name for v in model.graph.constants() if v.is_weight}
    assert {"Dense_0_kernel", "Dense_0_bias", "Dense_1_kernel", "Dense_2_kernel"} <= names
    assert "Dense_2_bias" not in names  # 10 values: a literal in the header
    model, _, _ = _lambda_closure()
    assert {"w_in", "b_in", "w_out"} == {v.name for v in model.graph.constants() if v.is_weight}
    assert "weights: 3 tensors" in model.summary()


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Linear:
    """An Equinox-style module: a pytree of its arrays with a __call__."""

    weight: jax.Array
    bias: jax.Array

    def __call__(self, x):
        return x @ self.weight + self.bias


class NnxMLP(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(16, 80, rngs=rngs)
        self.out = nnx.Linear(80, 4, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def _closures():
    """(function closing over arrays, the weight names it should convert to) per way of holding them."""
    linear = Linear(jnp.asarray(_x((16, 80), 7)), jnp.asarray(_x((80,), 8)))
    graphdef, state = nnx.split(NnxMLP(nnx.Rngs(0)))
    w_np = _x((16, 80), 9)  # numpy: JAX makes the const a view of it
    jitted = jax.jit(lambda x: x @ jnp.asarray(_x((16, 70), 10)) * 2.0)
    return {
        "bound module": (linear.__call__, {"weight", "bias"}),
        "nnx split inside": (lambda x: nnx.merge(graphdef, state)(x), {"state_hidden_kernel", "state_hidden_bias",
                                                                      "state_out_kernel"}),
        "numpy array": (lambda x: x @ w_np, {"w_np"}),
        "inside jit": (lambda x: jitted(x), {"const"}),  # made inside the jitted function: nowhere to find a name
    }


@pytest.mark.parametrize("how", sorted(_closures()))
def test_captured_arrays_are_named_where_the_function_holds_them(how):
    fn, names = _closures()[how]
    model = jax2sofie.convert(lambda _, x: fn(x), None, _x((2, 16)), name="named")
    assert {v.name for v in model.graph.constants() if v.is_weight} == names


def test_large_folded_constants_become_weights(tmp_path):
    """A table and a -inf mask computed from literals alone are folded, then stored in the weight file;
    a small captured array stays a literal."""
    n = 96
    scale = jnp.asarray(_x((8,), 4))  # small: stays a literal

    def fn(_, x):
        table = jnp.sin(jnp.arange(n * n, dtype=jnp.float32).reshape(n, n) / 7.0)
        mask = jnp.where(jnp.arange(n)[:, None] >= jnp.arange(n)[None, :], 0.0, -jnp.inf)
        scores = x @ table + mask
        return jax.nn.softmax(scores, axis=-1)[:, :8] * scale

    x = _x((n, n), 5)
    model = jax2sofie.convert(fn, None, x, name="folded", strict=True)  # strict: the -inf is no error
    weights = [v for v in model.graph.constants() if v.is_weight]
    assert sorted(v.size for v in weights) == [n * n, n * n]
    assert all(v.size <= LITERAL_MAX_ELEMENTS for v in model.graph.constants() if not v.is_weight)
    paths = {p.suffix: p for p in model.write(tmp_path)}
    assert paths[".hxx"].stat().st_size < SMALL_HEADER
    stored = paths[".dat"].read_text()
    assert all(f"tensor_{v.name} {n * n}\n" in stored for v in weights) and "-inf" in stored
    report = model.check(x)
    assert report.passed, str(report)


def test_loop_body_reads_one_copy_of_a_closed_over_array():
    w = jnp.asarray(_x((64, 64), 6) / 8)

    def fn(_, x):
        return jax.lax.scan(lambda h, _: (jnp.tanh(h @ w), None), x, None, length=5)[0]

    model = jax2sofie.convert(fn, None, _x((2, 64)), name="scanned")
    assert [(v.name, v.size) for v in model.graph.constants() if v.is_weight] == [("w", 64 * 64)]


def test_only_large_float_constants_with_several_values_become_weights():
    builder = GraphBuilder("g")
    size = LITERAL_MAX_ELEMENTS + 1
    constants = {
        "large": builder.constant(np.arange(size, dtype=np.float32), "large"),
        "small": builder.constant(np.arange(size - 1, dtype=np.float32), "small"),
        "one_value": builder.constant(np.zeros(size, np.float32), "one_value"),
        "integer": builder.constant(np.arange(size, dtype=np.int32), "integer"),
    }
    builder.graph.outputs = [builder.op("Identity", [v], v.shape, v.dtype) for v in constants.values()]
    store_large_constants(builder.graph)
    assert {name for name, v in constants.items() if v.is_weight} == {"large"}
    assert constants["large"].name == "large" and constants["large"].origin is None
