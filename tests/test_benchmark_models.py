"""The benchmark's models and C++ timer (benchmarks/): every model builds and runs in JAX on the
inputs the benchmark draws, those inputs are valid (token ids in range, masks with real padding), and
the timing program feeds a model several inputs of their own types.

Converting and checking every model in C++ is what `python benchmarks/run.py --quick` does (columns
A and B with their errors); one C++ build per model would make this file slow, so only the timer's
own program is compiled here, on a small model of an int32 and a float input.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")  # the Keras benchmark models run on Keras' JAX backend

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import jax2sofie  # noqa: E402
from cpp_timer import Timed, build_flags, time_headers  # noqa: E402
from models import MODELS, VOCAB, Input  # noqa: E402

BY_NAME = {bm.name: bm for bm in MODELS}


def test_model_names_are_unique():
    assert len(BY_NAME) == len(MODELS)


# Initialising every model's weights takes about a minute of CPU (ResNet-18's alone a quarter of it):
# the models of the architectures deployed now are built here only with J2S_LONG_TESTS=1 (not
# collected otherwise); the small ones of before and the token models always.
ALWAYS_BUILT = ["tiny_mlp", "jet_tagger", "lstm_tagger", "transformer_block", "deep_sets", "bert_encoder",
                "keras_mha", "embed_classifier", "edgeconv"]
BUILT = [bm.name for bm in MODELS] if os.environ.get("J2S_LONG_TESTS") else ALWAYS_BUILT


@pytest.mark.parametrize("name", BUILT)
def test_model_builds_and_traces_at_batch_2(name):
    """Each model builds and traces on the inputs the benchmark draws (jax.eval_shape: no XLA compile),
    giving an output per example."""
    bm = BY_NAME[name]
    built = bm.build()
    xs = bm.examples(2)
    assert [x.shape[1:] for x in xs] == [spec.shape for spec in bm.inputs]
    assert [x.dtype.name for x in xs] == [spec.dtype for spec in bm.inputs]
    y = jax.eval_shape(built.apply, built.variables, *xs)
    assert y.shape[0] == 2 and y.dtype == jnp.float32


def test_float_inputs_are_the_seeded_normals_of_before():
    """A float input draws the same values as the one-input models did (so their tables stay comparable)."""
    [x] = BY_NAME["tiny_mlp"].examples(4)
    np.testing.assert_array_equal(x, np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32))


def test_tokens_and_masks_are_valid():
    rng = np.random.default_rng(0)
    tokens = Input((32,), "int32", "tokens").sample(rng, 64)
    assert tokens.dtype == np.int32 and tokens.min() >= 0 and tokens.max() < VOCAB
    mask = Input((32,), "float32", "mask").sample(rng, 64)
    assert mask.dtype == np.float32 and set(np.unique(mask)) == {0.0, 1.0}
    lengths = mask.sum(axis=1)
    assert np.all(lengths >= 8) and np.all(lengths < 32), "every example holds tokens and some padding"
    assert np.all(mask == (np.arange(32) < lengths[:, None])), "padding follows the tokens"
    with pytest.raises(ValueError, match="unknown kind 'uniform'"):
        Input((4,), values="uniform").sample(rng, 1)


def test_bert_encoder_ignores_padded_tokens():
    """The mask input is used: changing the tokens under padding leaves the other positions' outputs."""
    bm = BY_NAME["bert_encoder"]
    built = bm.build()
    tokens, mask = bm.examples(1)
    padded = mask[0] == 0
    assert padded.any()
    other = tokens.copy()
    other[0, padded] = (other[0, padded] + 1) % VOCAB
    apply = jax.jit(built.apply)
    y, y_other = np.asarray(apply(built.variables, tokens, mask)), np.asarray(apply(built.variables, other, mask))
    np.testing.assert_allclose(y_other[0, ~padded], y[0, ~padded], rtol=1e-4, atol=1e-5)
    assert not np.allclose(y_other[0, padded], y[0, padded], rtol=1e-4, atol=1e-5)


def test_timer_feeds_int32_and_float_inputs(tmp_path):
    """The timing program reads each input with its own element type, in infer's order, and returns
    the model's output: an embedding lookup (int32 ids) scaled by a float input."""
    table = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)

    def fn(params, ids, scale):
        return jnp.take(params["table"], ids, axis=0).sum(axis=1) * scale

    ids = np.random.default_rng(1).integers(0, 50, size=(3, 5)).astype(np.int32)
    scale = np.random.default_rng(2).normal(size=(3, 8)).astype(np.float32)
    ref = np.asarray(fn({"table": table}, ids, scale))
    model = jax2sofie.convert(fn, {"table": table}, ids, scale, name="timer_inputs")
    header = next(Path(p) for p in model.write(tmp_path / "out", weights="text") if str(p).endswith(".hxx"))
    [(median, minimum, y, blocks)] = time_headers([Timed(header, header.with_suffix(".dat"))], [[ids, scale]],
                                                  tmp_path, build_flags("O2"), 100.0, 3, ref.size)
    np.testing.assert_allclose(y.reshape(ref.shape), ref, rtol=1e-4, atol=1e-5)
    assert 0 < minimum <= median and blocks == 3


def test_timer_feeds_the_input_sets_in_turn_and_returns_the_first_sets_output(tmp_path):
    """With several input sets, each call takes the next one; the output written is set 0's. A Session
    keeps nothing between calls, so the turn shows in the time of a model whose cost depends on its
    input: a while loop of n iterations. Fed n = 1 and n = 20000 in turn, a call takes about half of
    what n = 20000 alone takes."""
    def fn(_, n):
        return jax.lax.while_loop(lambda c: c[0] < n[0, 0], lambda c: (c[0] + 1, jnp.sin(c[1])),
                                  (jnp.int32(0), jnp.float32(1.0)))[1].reshape(1, 1)

    small, large = np.array([[1]], np.int32), np.array([[20000]], np.int32)
    model = jax2sofie.convert(fn, None, small, name="timer_sets")
    header = next(Path(p) for p in model.write(tmp_path / "out", weights="text") if str(p).endswith(".hxx"))
    timed = [Timed(header, header.with_suffix(".dat"))]

    def per_call(sets):
        [(median, minimum, y, _)] = time_headers(timed, sets, tmp_path, build_flags("O2"), 2000.0, 5, 1)
        return minimum, y
    only_small, y_small = per_call([[small]])
    only_large, _ = per_call([[large]])
    in_turn, y_turn = per_call([[small], [large]])
    assert y_turn == y_small == np.float32(np.sin(1.0))  # set 0's output
    assert only_large > 50 * only_small
    assert 0.3 * only_large < in_turn < 0.7 * only_large
    with pytest.raises(ValueError, match="every input set must have the shapes and dtypes of the first"):
        time_headers(timed, [[small], [np.zeros((1, 2), np.int32)]], tmp_path, build_flags("O2"), 100.0, 3, 1)
