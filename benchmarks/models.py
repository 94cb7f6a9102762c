"""The benchmark models, as Flax linen modules with their input shapes (without the batch).

Each entry of MODELS is a BenchModel: a module, the per-example input shape and a short family tag
(which of the issue's targets applies to it). Weights are initialised from a fixed seed; batch-norm
statistics are set to non-trivial values so that folding them is actually exercised.
"""
from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class TinyMLP(nn.Module):
    """16 -> 64 -> 64 -> 4 with ReLU."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(64)(x))
        x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(4)(x)


class JetTagger(nn.Module):
    """64 -> 4 x 256 ReLU -> 1 sigmoid."""

    @nn.compact
    def __call__(self, x):
        for _ in range(4):
            x = nn.relu(nn.Dense(256)(x))
        return nn.sigmoid(nn.Dense(1)(x))


class SmallCNN(nn.Module):
    """28x28x1 -> two (conv 3x3 + ReLU + 2x2 max-pool) -> dense 10."""

    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(8, (3, 3), padding="SAME")(x)), window_shape=(2, 2), strides=(2, 2))
        x = nn.max_pool(nn.relu(nn.Conv(16, (3, 3), padding="SAME")(x)), window_shape=(2, 2), strides=(2, 2))
        return nn.Dense(10)(x.reshape(x.shape[0], -1))


class ResNetBlock(nn.Module):
    """32x32x16: conv-BN-ReLU-conv-BN + skip, ReLU (inference-mode batch norm)."""

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(16, (3, 3), padding="SAME", use_bias=False)(x)
        y = nn.relu(nn.BatchNorm(use_running_average=True)(y))
        y = nn.Conv(16, (3, 3), padding="SAME", use_bias=False)(y)
        y = nn.BatchNorm(use_running_average=True)(y)
        return nn.relu(x + y)


class LSTMTagger(nn.Module):
    """A sequence of 20 steps x 8 features -> LSTM(32) -> last state -> 1 sigmoid."""

    @nn.compact
    def __call__(self, x):
        h = nn.RNN(nn.LSTMCell(32))(x)
        return nn.sigmoid(nn.Dense(1)(h[:, -1]))


class TransformerBlock(nn.Module):
    """Pre-norm encoder block: seq 16, d 64, 4 heads, MLP 128 with GELU."""

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=4, qkv_features=64)(y, y)
        y = nn.LayerNorm()(x)
        y = nn.Dense(64)(nn.gelu(nn.Dense(128)(y)))
        return x + y


class DeepSets(nn.Module):
    """30 particles x 4 features: phi (64, 64 ReLU) per particle, sum, rho (64 ReLU, 1)."""

    @nn.compact
    def __call__(self, x):
        h = nn.relu(nn.Dense(64)(x))
        h = nn.relu(nn.Dense(64)(h))
        h = jnp.sum(h, axis=1)
        h = nn.relu(nn.Dense(64)(h))
        return nn.Dense(1)(h)


@dataclass(frozen=True)
class BenchModel:
    name: str
    module: nn.Module
    input_shape: tuple  # per example, without the batch dimension
    family: str  # "mlp" (dense chains), "conv", "rnn", "attention"

    def variables(self, seed: int = 0):
        x = jnp.zeros((1,) + self.input_shape, jnp.float32)
        variables = self.module.init(jax.random.PRNGKey(seed), x)
        if "batch_stats" in variables:  # non-trivial running statistics
            rng = np.random.default_rng(seed)
            stats = jax.tree_util.tree_map(lambda a: np.asarray(a), variables["batch_stats"])
            for layer in stats.values():
                layer["mean"] = rng.normal(0, 0.1, layer["mean"].shape).astype(np.float32)
                layer["var"] = rng.uniform(0.5, 1.5, layer["var"].shape).astype(np.float32)
            variables = {**variables, "batch_stats": stats}
        return variables

    def example(self, batch: int, seed: int = 1) -> np.ndarray:
        return np.random.default_rng(seed).normal(size=(batch,) + self.input_shape).astype(np.float32)


MODELS = [
    BenchModel("tiny_mlp", TinyMLP(), (16,), "mlp"),
    BenchModel("jet_tagger", JetTagger(), (64,), "mlp"),
    BenchModel("small_cnn", SmallCNN(), (28, 28, 1), "conv"),
    BenchModel("resnet_block", ResNetBlock(), (32, 32, 16), "conv"),
    BenchModel("lstm_tagger", LSTMTagger(), (20, 8), "rnn"),
    BenchModel("transformer_block", TransformerBlock(), (16, 64), "attention"),
    BenchModel("deep_sets", DeepSets(), (30, 4), "mlp"),
]


def deep_chain(n_equations: int):
    """A synthetic deep model of about `n_equations` jaxpr equations: repeated dense-free
    elementwise layers `x = tanh(x * w + b)` over a (1, 16) input (3 equations per layer: w and b
    have the input's shape, so no broadcast_in_dim is traced between them)."""
    layers = max(1, n_equations // 3)
    rng = np.random.default_rng(0)
    params = {"w": rng.normal(0, 0.5, size=(1, 16)).astype(np.float32),
              "b": rng.normal(size=(1, 16)).astype(np.float32)}

    def fn(params, x):
        for _ in range(layers):
            x = jnp.tanh(x * params["w"] + params["b"])
        return x

    return fn, params, np.zeros((1, 16), np.float32)
