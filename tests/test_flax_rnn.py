"""Flax recurrent networks (linen and nnx): nn.RNN over every cell, reversed and bidirectional RNNs and an
LSTM tagger. Each converts (the scan is unrolled), compiles, runs and matches JAX at batch 1 and 16,
with static shapes and with a dynamic batch."""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np
import pytest
from flax import nnx

import jax2sofie

BATCHES = [1, 16]
SEQ, FEATURES, HIDDEN = 6, 3, 5  # odd sizes on purpose


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _perturbed(variables):
    """Zero-initialised biases would hide a bias that is dropped: give every param a random offset."""
    return jax.tree_util.tree_map(lambda v: v + 0.2 * _x(v.shape, 11).astype(v.dtype), variables)


def _convert_linen(module, x, name, dynamic_batch=False):
    variables = _perturbed(module.init(jax.random.PRNGKey(0), x))
    return jax2sofie.convert(lambda v, x: module.apply(v, x), variables, x, name=name, dynamic_batch=dynamic_batch)


def _check_dynamic(model, name, shape_after_batch):
    assert model.batch_param == "bs"
    for batch in BATCHES:
        x = _x((batch,) + shape_after_batch, seed=batch)
        report = model.check(x)
        assert report.passed, f"{name} at batch {batch}:\n{report}"


LINEN_CELLS = {
    "lstm": lambda: nn.LSTMCell(HIDDEN),
    "optimized_lstm": lambda: nn.OptimizedLSTMCell(HIDDEN),
    "gru": lambda: nn.GRUCell(HIDDEN),
    "simple": lambda: nn.SimpleCell(HIDDEN),
}


@pytest.mark.parametrize("cell", sorted(LINEN_CELLS))
def test_linen_rnn(cell):
    # static shapes at batch 16 (batch 1 is covered by the dynamic-batch test and the tagger)
    x = _x((16, SEQ, FEATURES))
    model = _convert_linen(nn.RNN(LINEN_CELLS[cell]()), x, f"linen_rnn_{cell}")
    report = model.check(x)
    assert report.passed, f"{cell}:\n{report}"


@pytest.mark.parametrize("cell", sorted(LINEN_CELLS))
def test_linen_rnn_dynamic_batch(cell):
    model = _convert_linen(nn.RNN(LINEN_CELLS[cell]()), _x((2, SEQ, FEATURES)), f"linen_rnn_{cell}_dyn",
                           dynamic_batch=True)
    _check_dynamic(model, cell, (SEQ, FEATURES))


class _ReverseWithCarry(nn.Module):
    @nn.compact
    def __call__(self, x):
        carry, ys = nn.RNN(nn.GRUCell(HIDDEN), reverse=True, keep_order=True, return_carry=True)(x)
        return ys, carry


class _Bidirectional(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Bidirectional(nn.RNN(nn.LSTMCell(HIDDEN)), nn.RNN(nn.GRUCell(4)))(x)


@pytest.mark.parametrize("module", [_ReverseWithCarry, _Bidirectional], ids=["reverse_carry", "bidirectional"])
def test_linen_rnn_variants(module):
    x = _x((16, SEQ, FEATURES))
    report = _convert_linen(module(), x, f"linen_{module.__name__.strip('_').lower()}").check(x)
    assert report.passed, str(report)
    model = _convert_linen(module(), x, f"linen_{module.__name__.strip('_').lower()}_dyn", dynamic_batch=True)
    _check_dynamic(model, module.__name__, (SEQ, FEATURES))


NNX_CELLS = {
    "lstm": lambda rngs: nnx.LSTMCell(FEATURES, HIDDEN, rngs=rngs),
    "optimized_lstm": lambda rngs: nnx.OptimizedLSTMCell(FEATURES, HIDDEN, rngs=rngs),
    "gru": lambda rngs: nnx.GRUCell(FEATURES, HIDDEN, rngs=rngs),
    "simple": lambda rngs: nnx.SimpleCell(FEATURES, HIDDEN, rngs=rngs),
}


def _nnx_perturb(module):
    state = nnx.state(module, nnx.Param)
    nnx.update(module, jax.tree_util.tree_map(lambda v: v + 0.2 * _x(v.shape, 5), state))
    return module


@pytest.mark.parametrize("cell", sorted(NNX_CELLS))
def test_nnx_rnn(cell):
    module = _nnx_perturb(nnx.RNN(NNX_CELLS[cell](nnx.Rngs(0))))
    for batch in BATCHES:
        x = _x((batch, SEQ, FEATURES), seed=batch)
        report = jax2sofie.convert(module, x, name=f"nnx_rnn_{cell}").check(x)
        assert report.passed, f"{cell} at batch {batch}:\n{report}"
    _check_dynamic(jax2sofie.convert(module, _x((2, SEQ, FEATURES)), name=f"nnx_rnn_{cell}_dyn", dynamic_batch=True),
                   cell, (SEQ, FEATURES))


def test_nnx_bidirectional():
    rngs = nnx.Rngs(1)
    module = _nnx_perturb(nnx.Bidirectional(nnx.RNN(nnx.LSTMCell(FEATURES, HIDDEN, rngs=rngs)),
                                            nnx.RNN(nnx.GRUCell(FEATURES, HIDDEN, rngs=rngs)), rngs=rngs))
    x = _x((16, SEQ, FEATURES))
    report = jax2sofie.convert(module, x, name="nnx_bidirectional").check(x)
    assert report.passed, str(report)
    _check_dynamic(jax2sofie.convert(module, x, name="nnx_bidirectional_dyn", dynamic_batch=True), "bidirectional",
                   (SEQ, FEATURES))


class LSTMTagger(nn.Module):
    """Per-step tags from a float sequence: LSTM (hidden 32) + dense head + log-softmax."""

    tags: int = 7

    @nn.compact
    def __call__(self, x):
        h = nn.RNN(nn.LSTMCell(32))(x)
        return nn.log_softmax(nn.Dense(self.tags)(h))


TAGGER_SEQ, TAGGER_FEATURES = 20, 8


def _tagger_node_budget(model):
    # unrolling costs a fixed number of operators per step: keep it small (no copies of weights either)
    nodes = len(model.graph.nodes)
    assert nodes <= 40 * TAGGER_SEQ, f"{nodes} operators for a {TAGGER_SEQ}-step LSTM"
    weights = sum(v.size for v in model.graph.constants() if v.is_weight)
    params = 4 * (TAGGER_FEATURES * 32 + 32 * 32 + 32) + 32 * 7 + 7
    # the first step sees a zero state: its four gate biases fold into one derived bias each (4 x 32)
    assert weights <= params + 4 * 32, f"{weights} weight values for {params} params: weights are copied per step"


@pytest.mark.parametrize("batch", BATCHES)
def test_lstm_tagger(batch):
    x = _x((batch, TAGGER_SEQ, TAGGER_FEATURES))
    model = _convert_linen(LSTMTagger(), x, "lstm_tagger")
    _tagger_node_budget(model)
    report = model.check(x)
    assert report.passed, str(report)


def test_lstm_tagger_dynamic_batch():
    model = _convert_linen(LSTMTagger(), _x((2, TAGGER_SEQ, TAGGER_FEATURES)), "lstm_tagger_dyn", dynamic_batch=True)
    _tagger_node_budget(model)
    _check_dynamic(model, "lstm_tagger", (TAGGER_SEQ, TAGGER_FEATURES))
