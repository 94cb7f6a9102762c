"""Small whole models people actually deploy, written the way they are written in Flax and plain
jax.numpy: converted, compiled and checked against JAX at batch 1 and 16, with a static and with a
dynamic batch (one compiled Session run at several batch sizes). Each stays within the error budget
of a whole model (max |error| <= 1e-5 max |output|, SCALE_BUDGET in jax2sofie/runtime/compare.py), deep
ones (a 4-block transformer encoder, a 24-block residual MLP) included."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax2sofie

BATCHES = [1, 16]


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


class EncoderBlock(nn.Module):
    """Post-norm transformer encoder block (seq 16, d 64, 4 heads) with a key padding mask."""
    d_model: int = 64
    heads: int = 4

    @nn.compact
    def __call__(self, x, key_mask):
        mask = nn.make_attention_mask(jnp.ones(x.shape[:2], bool), key_mask)
        h = nn.MultiHeadDotProductAttention(num_heads=self.heads, deterministic=True)(x, x, mask=mask)
        x = nn.LayerNorm()(x + h)
        h = nn.Dense(self.d_model)(nn.gelu(nn.Dense(4 * self.d_model)(x)))
        return nn.LayerNorm()(x + h)


class NnxEncoderBlock(nnx.Module):
    """Pre-norm encoder block in nnx (causal mask), with an exact-gelu MLP."""

    def __init__(self, d: int, heads: int, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(d, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=d, decode=False, rngs=rngs)
        self.norm2 = nnx.LayerNorm(d, rngs=rngs)
        self.up = nnx.Linear(d, 2 * d, rngs=rngs)
        self.down = nnx.Linear(2 * d, d, rngs=rngs)

    def __call__(self, x):
        causal = nnx.make_causal_mask(x[..., 0])
        x = x + self.attn(self.norm1(x), mask=causal)
        return x + self.down(jax.nn.gelu(self.up(self.norm2(x)), approximate=False))


def deep_sets(params, particles, mask):
    """Deep sets over 30 particles in plain jax.numpy: per-particle MLP, masked sum and mean, head."""
    h = jax.nn.relu(particles @ params["phi1"]["w"] + params["phi1"]["b"])
    h = jax.nn.relu(h @ params["phi2"]["w"] + params["phi2"]["b"])
    m = mask[..., None].astype(h.dtype)
    pooled_sum = jnp.sum(h * m, axis=1)
    count = jnp.maximum(jnp.sum(m, axis=1), 1.0)
    pooled = pooled_sum / count
    z = jax.nn.relu(pooled @ params["rho1"]["w"] + params["rho1"]["b"])
    return jax.nn.sigmoid(z @ params["rho2"]["w"] + params["rho2"]["b"])


def _deep_sets_params(features=4, hidden=32, seed=0):
    rng = np.random.default_rng(seed)

    def dense(n_in, n_out):
        return {"w": (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32),
                "b": (0.1 * rng.standard_normal(n_out)).astype(np.float32)}

    return {"phi1": dense(features, hidden), "phi2": dense(hidden, hidden), "rho1": dense(hidden, hidden),
            "rho2": dense(hidden, 1)}


def _padding_mask(batch, length, seed=0):
    """A key mask with 1..length valid positions per row (never all masked)."""
    valid = np.random.default_rng(seed).integers(1, length + 1, batch)
    return np.arange(length)[None, :] < valid[:, None]


def _check(model, *inputs):
    report = model.check(*inputs)
    assert report.passed, f"{model.name}:\n{report}"
    # the error budget of a whole model (jax2sofie.runtime.compare.SCALE_BUDGET): max |error| <= 1e-5 max |output|
    assert report.within_budget, f"{model.name} exceeds the error budget:\n{report}"
    return report


@pytest.mark.parametrize("batch", BATCHES)
def test_linen_transformer_encoder_block(batch):
    module = EncoderBlock()
    x, key_mask = _x((batch, 16, 64)), _padding_mask(batch, 16)
    variables = module.init(jax.random.PRNGKey(0), x, key_mask)
    _check(jax2sofie.convert(module.apply, variables, x, key_mask, name="encoder_block"), x, key_mask)


def test_linen_transformer_encoder_block_dynamic_batch():
    module = EncoderBlock()
    x, key_mask = _x((2, 16, 64)), _padding_mask(2, 16)
    variables = module.init(jax.random.PRNGKey(0), x, key_mask)
    model = jax2sofie.convert(module.apply, variables, x, key_mask, name="encoder_block_dyn", dynamic_batch=True)
    for batch in (1, 7, 16):
        _check(model, _x((batch, 16, 64), batch), _padding_mask(batch, 16, batch))


@pytest.mark.parametrize("batch", BATCHES)
def test_nnx_transformer_encoder_block(batch):
    module = NnxEncoderBlock(32, 4, nnx.Rngs(0))
    x = _x((batch, 8, 32))
    _check(jax2sofie.convert(module, x, name="nnx_encoder_block"), x)


@pytest.mark.parametrize("batch", BATCHES)
def test_deep_sets_with_masking(batch):
    params = _deep_sets_params()
    particles, mask = _x((batch, 30, 4)), _padding_mask(batch, 30, seed=batch)
    model = jax2sofie.convert(deep_sets, params, particles, mask, name="deep_sets")
    _check(model, particles, mask)
    # the masked-out particles really do not count: changing them leaves the C++ output unchanged
    noisy = np.where(mask[..., None], particles, 100.0 * _x(particles.shape, 9)).astype(np.float32)
    (clean_out,), (noisy_out,) = model.run(particles, mask), model.run(noisy, mask)
    np.testing.assert_allclose(noisy_out, clean_out, rtol=1e-5, atol=1e-6)


def test_deep_sets_dynamic_batch():
    model = jax2sofie.convert(deep_sets, _deep_sets_params(), _x((2, 30, 4)), _padding_mask(2, 30),
                              name="deep_sets_dyn", dynamic_batch=True)
    for batch in (1, 7, 16):
        _check(model, _x((batch, 30, 4), batch), _padding_mask(batch, 30, batch))


class DeepEncoder(nn.Module):
    """Four post-norm encoder blocks (seq 16, d 64) and a mean-pooled linear head."""

    @nn.compact
    def __call__(self, x, key_mask):
        for _ in range(4):
            x = EncoderBlock()(x, key_mask)
        return nn.Dense(8)(x.mean(axis=1))


class DeepResidualMLP(nn.Module):
    """24 pre-norm residual blocks (LayerNorm, 64 -> 128 gelu -> 64) and a final LayerNorm: the depth at
    which rounding could add up."""

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(64)(x)
        for _ in range(24):
            x = x + nn.Dense(64)(nn.gelu(nn.Dense(128)(nn.LayerNorm()(x))))
        return nn.LayerNorm()(x)


def test_deep_encoder_within_the_error_budget():
    module = DeepEncoder()
    x, key_mask = _x((4, 16, 64)), _padding_mask(4, 16)
    variables = module.init(jax.random.PRNGKey(0), x, key_mask)
    _check(jax2sofie.convert(module.apply, variables, x, key_mask, name="deep_encoder"), x, key_mask)


def test_deep_residual_mlp_within_the_error_budget():
    module = DeepResidualMLP()
    x = _x((16, 32))
    variables = module.init(jax.random.PRNGKey(0), x)
    _check(jax2sofie.convert(module.apply, variables, x, name="deep_residual_mlp"), x)
