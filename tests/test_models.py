"""Whole models through the public API: Flax linen, Flax nnx and a plain JAX function, each converted,
compiled and checked against JAX at batch 1 and batch 64 (rtol 1e-4, atol 1e-5) and within the error budget
of a whole model (max |error| <= 1e-5 max |output|, SCALE_BUDGET in jax2sofie/runtime/compare.py)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax2sofie


class LinenMLP(nn.Module):
    """16 -> 64 relu -> 64 tanh -> 4 softmax."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(64)(x))
        x = jnp.tanh(nn.Dense(64)(x))
        return nn.softmax(nn.Dense(4)(x))


class JetTagger(nn.Module):
    """64 -> 4 x 256 relu -> 1 sigmoid."""

    @nn.compact
    def __call__(self, x):
        for _ in range(4):
            x = nn.relu(nn.Dense(256)(x))
        return nn.sigmoid(nn.Dense(1)(x))


class NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(16, 64, rngs=rngs)
        self.out = nnx.Linear(64, 4, rngs=rngs)
        self.dropout = nnx.Dropout(0.3, rngs=rngs)

    def __call__(self, x):
        return jax.nn.log_softmax(self.out(self.dropout(nnx.gelu(self.hidden(x)))))


def layer_norm_mlp(params, x):
    """Plain jax.numpy: a hand-written layer norm, a dense layer and a log-softmax."""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    h = (x - mean) / jnp.sqrt(var + 1e-5) * params["ln"]["scale"] + params["ln"]["bias"]
    h = jnp.maximum(h @ params["dense"]["w"] + params["dense"]["b"], 0.0)
    return jax.nn.log_softmax(h @ params["head"]["w"])


def _inputs(batch, features, seed=0):
    return np.random.default_rng(seed).standard_normal((batch, features)).astype(np.float32)


@pytest.mark.parametrize("batch", [1, 64])
def test_linen_mlp(batch):
    module = LinenMLP()
    x = _inputs(batch, 16)
    variables = module.init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(module.apply, variables, x)
    assert model.name == "LinenMLP"
    report = model.check(x)
    assert report.passed and report.within_budget, str(report)
    # the C++ of a different input still matches (the check is not tied to the example input)
    other = _inputs(batch, 16, seed=1)
    assert model.check(other).passed
    # weights keep their Flax names
    weight_names = {v.name for v in model.graph.constants() if v.is_weight}
    assert {"Dense_0_kernel", "Dense_0_bias", "Dense_2_kernel"} <= weight_names


@pytest.mark.parametrize("batch", [1, 64, 256])
def test_jet_tagger(batch):
    module = JetTagger()
    x = _inputs(batch, 64)
    variables = module.init(jax.random.PRNGKey(1), x)
    model = jax2sofie.convert(module.apply, variables, x, name="jet_tagger")
    report = model.check(x)
    assert report.passed and report.within_budget, str(report)
    # dense + bias + activation (relu, and the final sigmoid) fuse into one J2S_Dense each
    assert model.graph.op_counts() == {"J2S_Dense": 5}


@pytest.mark.parametrize("batch", [1, 64])
def test_nnx_mlp(batch):
    module = NnxMLP(nnx.Rngs(0))
    module.eval()  # dropout is the identity at inference; its PRNG key is closed over, never used
    x = _inputs(batch, 16)
    model = jax2sofie.convert(module, x)
    assert model.graph.inputs[0].name == "x"
    report = model.check(x)
    assert report.passed and report.within_budget, str(report)
    assert {"hidden_kernel", "out_bias"} <= {v.name for v in model.graph.constants() if v.is_weight}


@pytest.mark.parametrize("batch", [1, 64])
def test_plain_function(batch):
    rng = np.random.default_rng(3)
    params = {
        "ln": {"scale": rng.uniform(0.5, 1.5, 32).astype(np.float32), "bias": rng.normal(size=32).astype(np.float32)},
        "dense": {"w": rng.normal(size=(32, 48)).astype(np.float32) / 6, "b": rng.normal(size=48).astype(np.float32)},
        "head": {"w": rng.normal(size=(48, 10)).astype(np.float32) / 7},
    }
    x = _inputs(batch, 32)
    model = jax2sofie.convert(layer_norm_mlp, params, x)
    report = model.check(x)
    assert report.passed and report.within_budget, str(report)


def test_shape_dtype_struct_inputs_and_random_check():
    module = LinenMLP()
    spec = jax.ShapeDtypeStruct((8, 16), jnp.float32)
    variables = module.init(jax.random.PRNGKey(0), jnp.zeros(spec.shape))
    model = jax2sofie.convert(module.apply, variables, spec)
    report = model.check()  # random inputs of the traced shape
    assert report.passed, str(report)
    assert "J2S_Dense" in model.summary()


def test_write_names_header_and_weights_consistently(tmp_path):
    module = LinenMLP()
    x = _inputs(2, 16)
    variables = module.init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(module.apply, variables, x, name="my_mlp")
    paths = model.write(tmp_path / "out")
    assert sorted(p.name for p in paths) == ["my_mlp.dat", "my_mlp.hxx"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["my_mlp.dat", "my_mlp.hxx"]  # no leftovers
    header = (tmp_path / "out" / "my_mlp.hxx").read_text()
    assert 'Session(std::string filename ="my_mlp.dat"' in header
    assert "tensor_Dense_0_kernel" in header
    # the weight file holds the Flax weights under their names, with their values
    weights = (tmp_path / "out" / "my_mlp.dat").read_text().split()
    at = weights.index("tensor_Dense_0_kernel")
    values = np.array(weights[at + 2: at + 2 + 16 * 64], dtype=np.float32)
    np.testing.assert_allclose(values, np.asarray(variables["params"]["Dense_0"]["kernel"]).ravel(), rtol=1e-6)


@pytest.mark.parametrize("weights", ["text", "safetensors", "embedded"])
def test_standalone_cpp_reference_check(tmp_path, weights):
    """write(test=True) gives a C++ check that passes, and fails when the weights are wrong."""
    import subprocess

    module = LinenMLP()
    x = _inputs(3, 16)
    variables = module.init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(module.apply, variables, x, name="mlp_ref")
    out = tmp_path / weights
    paths = model.write(out, weights=weights, test=True)
    expected_files = {"text": "mlp_ref.dat", "safetensors": "mlp_ref.safetensors", "embedded": None}[weights]
    names = sorted(p.name for p in paths)
    assert names == sorted(filter(None, ["Makefile", "mlp_ref.hxx", "mlp_ref_test.cpp", expected_files]))
    run = subprocess.run(["make", "-s", "test"], cwd=out, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mlp_ref: OK" in run.stdout
    if weights == "text":  # corrupt one weight: the C++ check must fail
        dat = out / "mlp_ref.dat"
        lines = dat.read_text().splitlines()
        at = next(i for i, line in enumerate(lines) if line.startswith("tensor_Dense_0_kernel ")) + 1
        values = lines[at].split()
        values[0] = "7.5"
        lines[at] = " ".join(values)
        dat.write_text("\n".join(lines) + "\n")
        bad = subprocess.run(["./mlp_ref_test"], cwd=out, capture_output=True, text=True)
        assert bad.returncode == 1 and "MISMATCH" in bad.stdout, bad.stdout


def test_write_refuses_to_overwrite_without_force(tmp_path):
    model = jax2sofie.convert(lambda p, x: x * p["w"], {"w": np.ones(3, np.float32)}, np.ones(3, np.float32),
                              name="scale")
    model.write(tmp_path)
    before = (tmp_path / "scale.hxx").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="scale.hxx"):
        model.write(tmp_path)
    assert (tmp_path / "scale.hxx").stat().st_mtime_ns == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scale.dat", "scale.hxx"]  # no staging leftovers
    assert len(model.write(tmp_path, force=True)) == 2


def test_dynamic_batch_models():
    """Symbolic batch from jax.export.symbolic_shape and from dynamic_batch=True; one compiled model runs
    at batch 1, 7 and 64."""
    module = JetTagger()
    variables = module.init(jax.random.PRNGKey(1), _inputs(1, 64))
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("b, 64"), jnp.float32)
    tagger = jax2sofie.convert(module.apply, variables, spec, name="jet_tagger_dyn")
    nnx_module = NnxMLP(nnx.Rngs(0))
    nnx_module.eval()
    nnx_model = jax2sofie.convert(nnx_module, _inputs(2, 16), dynamic_batch=True)
    rng = np.random.default_rng(3)
    params = {
        "ln": {"scale": rng.uniform(0.5, 1.5, 32).astype(np.float32), "bias": rng.normal(size=32).astype(np.float32)},
        "dense": {"w": rng.normal(size=(32, 48)).astype(np.float32) / 6, "b": rng.normal(size=48).astype(np.float32)},
        "head": {"w": rng.normal(size=(48, 10)).astype(np.float32) / 7},
    }
    plain = jax2sofie.convert(layer_norm_mlp, params, _inputs(3, 32), dynamic_batch=True)
    for model, features in ((tagger, 64), (nnx_model, 16), (plain, 32)):
        assert [str(d) for d in model.graph.inputs[0].shape] == ["bs", str(features)]
        for batch in (1, 7, 64):
            report = model.check(_inputs(batch, features, seed=batch))
            assert report.passed and report.within_budget, f"{model.name} at batch {batch}: {report}"
    header = tagger.rmodel.return_generated()
    assert "size_t bs" in header


def test_dynamic_batch_rank3_dense_and_batch_products():
    """A dense layer over (b, t, f) keeps b apart and works; so does an explicit (b*t, f) reshape and
    back (J2S_BatchReshape), at batch 1, 7 and 64, each the maximum of its Session."""
    w = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    model = jax2sofie.convert(lambda p, x: jnp.tanh(x @ p["w"]).sum(axis=1), {"w": w},
                              _inputs(2, 18).reshape(2, 3, 6), dynamic_batch=True)
    for batch in (1, 5):
        assert model.check(_inputs(batch * 3, 6, seed=batch).reshape(batch, 3, 6)).passed

    def merged(p, x):
        b, t, f = x.shape
        return jnp.tanh(x.reshape(b * t, f) @ p["w"]).reshape(b, t, 4).sum(axis=1)

    model = jax2sofie.convert(merged, {"w": w}, _inputs(2, 18).reshape(2, 3, 6), dynamic_batch=True)
    assert model.graph.op_counts()["J2S_BatchReshape"] == 2, model.graph  # (b*t, f) and back to (b, t, 4)
    for batch in (1, 7, 64):
        report = model.check(_inputs(batch * 3, 6, seed=batch).reshape(batch, 3, 6))
        assert report.passed, f"batch {batch}: {report}"


def test_dynamic_batch_reshape_of_a_size_quadratic_in_the_batch_is_refused():
    """(b, b) -> (b*b,): 25 and 49 elements at the traced sizes fit 12*bs - 35, which is not b*b; the
    reshape's sizes are compared at more batch sizes than were traced, and it is refused."""
    with pytest.raises(jax2sofie.ConversionError, match="keeps the number of elements only at some batch sizes"):
        jax2sofie.convert(lambda p, x: (x[:, :1] * x[:, 0]).reshape(-1), None, _inputs(2, 3), dynamic_batch=True)


class PerObjectModel(nnx.Module):
    """Objects of an event through an nnx.Linear as rows of (b*n, f), regrouped per event for a
    masked-free mean, then a head: how per-object (deep sets) models are often written."""

    def __init__(self, rngs):
        self.embed = nnx.Linear(5, 16, rngs=rngs)
        self.head = nnx.Linear(16, 3, rngs=rngs)

    def __call__(self, x):
        b, n, f = x.shape
        h = nnx.relu(self.embed(x.reshape(b * n, f)))
        return self.head(h.reshape(b, n, -1).mean(axis=1))


def test_dynamic_batch_per_object_model_merges_the_batch():
    model = jax2sofie.convert(PerObjectModel(nnx.Rngs(0)), _inputs(2, 40).reshape(2, 8, 5), dynamic_batch=True)
    assert "J2S_BatchReshape" in model.graph.op_counts(), model.graph
    for batch in (1, 7, 64):
        report = model.check(_inputs(batch * 8, 5, seed=batch).reshape(batch, 8, 5))
        assert report.passed, f"batch {batch}: {report}"


def test_structure_depending_on_batch_is_refused():
    def fn(p, x):
        return x * x.shape[0] if x.shape[0] > 6 else x  # a different program at batch 5 and 7

    with pytest.raises(jax2sofie.ConversionError, match="structure depends on the batch size"):
        jax2sofie.convert(fn, None, _inputs(2, 3), dynamic_batch=True)


def test_dropout_left_in_training_mode_warns():
    module = NnxMLP(nnx.Rngs(0))  # not .eval(): dropout draws random numbers with its stored key
    with pytest.warns(RuntimeWarning, match=r"random numbers drawn with a fixed key .* training mode"):
        jax2sofie.convert(module, _inputs(2, 16))


class RowsTransformerBlock(nnx.Module):
    """A pre-norm transformer block written over rows: every Linear on (b*t, f), the heads and the
    residual stream regrouped as (b, t, ...) in between."""

    def __init__(self, rngs):
        self.norm = nnx.LayerNorm(16, rngs=rngs)
        self.qkv, self.out = nnx.Linear(16, 48, rngs=rngs), nnx.Linear(16, 16, rngs=rngs)
        self.up, self.down = nnx.Linear(16, 32, rngs=rngs), nnx.Linear(32, 16, rngs=rngs)

    def __call__(self, x):
        b, t, f = x.shape
        q, k, v = (a.reshape(b, t, 4, 4) for a in jnp.split(self.qkv(self.norm(x).reshape(b * t, f)), 3, axis=-1))
        h = x + self.out(nnx.dot_product_attention(q, k, v).reshape(b * t, f)).reshape(b, t, f)
        return h + self.down(nnx.gelu(self.up(h.reshape(b * t, f)))).reshape(b, t, f)


def test_dynamic_batch_transformer_block_over_rows():
    model = jax2sofie.convert(RowsTransformerBlock(nnx.Rngs(0)), _inputs(2, 96).reshape(2, 6, 16),
                              dynamic_batch=True)
    assert model.graph.op_counts()["J2S_BatchReshape"] >= 4, model.graph.op_counts()
    for batch in (1, 7, 32):
        report = model.check(_inputs(batch * 6, 16, seed=batch).reshape(batch, 6, 16))
        assert report.passed, f"batch {batch}: {report}"
