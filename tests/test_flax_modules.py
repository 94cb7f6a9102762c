"""Flax modules (linen and nnx), each as a small model: convert, compile, run, compare with JAX at
batch 1 and 16."""
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


def _check_linen(module, x, name, **init_kwargs):
    variables = module.init(jax.random.PRNGKey(0), x, **init_kwargs)
    # perturb batch statistics so that inference-mode normalisation is not the identity
    variables = jax.tree_util.tree_map(lambda v: v + 0.1 * np.abs(_x(v.shape, 7)).astype(v.dtype), variables)
    model = jax2sofie.convert(lambda v, x: module.apply(v, x, **init_kwargs), variables, x, name=name)
    report = model.check(x)
    assert report.passed, f"{name}:\n{report}\n{model.graph}"
    return model


LINEN_CASES = {
    "dense": (lambda: nn.Dense(7), (10,)),
    "dense_no_bias": (lambda: nn.Dense(5, use_bias=False), (6,)),
    "dense_general": (lambda: nn.DenseGeneral(features=(2, 3), axis=-1), (4, 5)),
    "dense_general_two_axes": (lambda: nn.DenseGeneral(features=4, axis=(-2, -1)), (3, 5)),
    "einsum": (lambda: nn.Einsum((5, 3, 4), "nta,hab->nthb"), (2, 3)),
    "layer_norm": (lambda: nn.LayerNorm(), (12,)),
    "layer_norm_no_scale": (lambda: nn.LayerNorm(use_scale=False, epsilon=1e-3), (3, 8)),
    "rms_norm": (lambda: nn.RMSNorm(), (9,)),
    "group_norm": (lambda: nn.GroupNorm(num_groups=3), (5, 6)),
    "batch_norm_inference": (lambda: nn.BatchNorm(use_running_average=True), (6,)),
    "dropout_deterministic": (lambda: nn.Sequential([nn.Dense(4), nn.Dropout(0.5, deterministic=True)]), (3,)),
    "sequential": (lambda: nn.Sequential([nn.Dense(8), nn.relu, nn.Dense(8), nn.tanh, nn.Dense(2), nn.softmax]),
                   (5,)),
    "self_attention": (lambda: nn.SelfAttention(num_heads=2, qkv_features=8, deterministic=True), (4, 8)),
    "multi_head_attention": (lambda: nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8,
                                                                      deterministic=True), (5, 6)),
}


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("case", sorted(LINEN_CASES))
def test_linen_module(case, batch):
    make, feature_shape = LINEN_CASES[case]
    _check_linen(make(), _x((batch,) + feature_shape), f"linen_{case}")


class NnxBlock(nnx.Module):
    """Linear + LayerNorm + RMSNorm + BatchNorm (eval) + Dropout (eval) + attention."""

    def __init__(self, rngs):
        self.linear = nnx.Linear(6, 8, rngs=rngs)
        self.norm = nnx.LayerNorm(8, rngs=rngs)
        self.rms = nnx.RMSNorm(8, rngs=rngs)
        self.group = nnx.GroupNorm(8, num_groups=4, rngs=rngs)
        self.bn = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=2, in_features=8, qkv_features=8, decode=False, rngs=rngs)

    def __call__(self, x):
        h = self.drop(self.bn(self.group(self.rms(self.norm(self.linear(x))))))
        return self.attn(h) + h


@pytest.mark.parametrize("batch", BATCHES)
def test_nnx_block(batch):
    module = NnxBlock(nnx.Rngs(0))
    module.bn.mean[...] = jnp.asarray(0.1 * _x((8,), 3))
    module.bn.var[...] = jnp.asarray(1.0 + 0.5 * np.abs(_x((8,), 4)))
    module.eval()
    x = _x((batch, 4, 6))
    model = jax2sofie.convert(module, x)
    report = model.check(x)
    assert report.passed, str(report)


def test_masked_attention():
    mha = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8, deterministic=True)
    x = _x((2, 5, 8))
    mask = np.tril(np.ones((5, 5), bool))[None, None]
    variables = mha.init(jax.random.PRNGKey(0), x, x, mask=mask)
    model = jax2sofie.convert(lambda v, x, m: mha.apply(v, x, x, mask=m), variables, x,
                              np.broadcast_to(mask, (2, 1, 5, 5)).copy())
    report = model.check(x, np.broadcast_to(mask, (2, 1, 5, 5)).copy())
    assert report.passed, str(report)
