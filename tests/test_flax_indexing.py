"""Embedding lookups as Flax writes them (linen nn.Embed, nnx.Embed, with int32 token ids), at batch 1
and 16 and with a dynamic batch; and structural checks of the indexing lowering (iota folds)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jax2sofie

BATCHES = [1, 16]
VOCAB, FEATURES, TOKENS = 13, 8, 6


def _ids(batch, seed=0, high=VOCAB):
    return np.random.default_rng(seed).integers(0, high, (batch, TOKENS)).astype(np.int32)


class LinenTagger(nn.Module):
    """Embed + Dense over the tokens, mean-pooled with the mask of non-padding tokens (id 0)."""

    @nn.compact
    def __call__(self, ids):
        h = nn.Embed(VOCAB, FEATURES)(ids)
        mask = (ids != 0)[..., None]
        pooled = jnp.sum(jnp.where(mask, h, 0.0), axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1)
        return nn.Dense(3)(pooled), h


@pytest.mark.parametrize("batch", BATCHES)
def test_linen_embed(batch):
    ids = _ids(batch)
    module = nn.Embed(VOCAB, FEATURES)
    variables = module.init(jax.random.PRNGKey(0), ids)
    model = jax2sofie.convert(module.apply, variables, ids, name="linen_embed")
    report = model.check(ids)
    assert report.passed, f"{report}\n{model.graph}"


def test_linen_embed_out_of_range_ids_give_nan_like_jax():
    ids = _ids(2, seed=1)
    ids[0, 0], ids[1, 3] = VOCAB, VOCAB + 5  # nn.Embed uses jnp.take: out-of-range rows are NaN
    module = nn.Embed(VOCAB, FEATURES)
    variables = module.init(jax.random.PRNGKey(0), ids)
    expected = np.asarray(module.apply(variables, ids))
    assert np.isnan(expected[0, 0]).all() and np.isnan(expected[1, 3]).all()
    model = jax2sofie.convert(module.apply, variables, ids, name="linen_embed_oob")
    report = model.check(ids)  # NaN where JAX has NaN, the other rows equal
    assert report.passed, f"{report}\n{model.graph}"


def _gather_codes(header_text: str) -> list[str]:
    """The generated statements of each J2S_Gather in a header (each up to the next operator)."""
    codes, start = [], header_text.find("J2S_Gather (")
    while start >= 0:
        end = header_text.find("//---", start + 1)
        codes.append(header_text[start:end if end >= 0 else len(header_text)])
        start = header_text.find("J2S_Gather (", start + 1)
    return codes


@pytest.mark.parametrize("dynamic", [False, True])
def test_embedding_rows_are_one_copy_and_keep_jax_out_of_range_semantics(tmp_path, dynamic):
    # the embedding classifier of the benchmarks (tokens -> rows -> mean over the sequence -> Dense);
    # each row of the table is one std::copy, out-of-range ids still follow the gather's mode:
    # NaN rows for jnp.take's default "fill", an explicit fill value, or clamped rows with "clip"
    def fn(p, ids):
        table = jnp.asarray(p["table"])
        rows = jnp.take(table, ids, axis=0)  # as nn.Embed: mode fill, NaN rows
        filled = jnp.take(table, ids, axis=0, mode="fill", fill_value=-2.5)
        clipped = jnp.take(table, ids, axis=0, mode="clip")
        return jnp.mean(rows, axis=1) @ p["w"], filled, clipped

    rng = np.random.default_rng(5)
    params = {"table": rng.normal(size=(VOCAB, FEATURES)).astype(np.float32),
              "w": rng.normal(size=(FEATURES, 5)).astype(np.float32)}
    ids = _ids(3, seed=4)
    ids[0, 0], ids[1, 2], ids[2, 5] = VOCAB, VOCAB + 7, -VOCAB - 3  # past the end; before the start after wrapping
    model = jax2sofie.convert(fn, params, ids, name="embed_rows", dynamic_batch=dynamic)
    expected = fn(params, ids)
    assert np.isnan(np.asarray(expected[1])[0, 0]).sum() == 0 and (np.asarray(expected[1])[0, 0] == -2.5).all()
    assert np.isnan(np.asarray(expected[0])[0]).all()  # one NaN row poisons its mean
    for batch_ids in [ids] + ([np.concatenate([ids, _ids(4, seed=6)])] if dynamic else []):
        report = model.check(batch_ids)
        assert report.passed, f"{report}\n{model.graph}"
    header = model.write(tmp_path, weights="embedded")[0].read_text()
    codes = _gather_codes(header)
    assert len(codes) == 3, header
    for code in codes:
        assert code.count("std::copy(") == 1, code
        assert "for (size_t w0" not in code, code  # no loop over the elements of a row
    assert sum(code.count("std::fill(") for code in codes) == 2  # the two gathers with mode fill


@pytest.mark.parametrize("batch", BATCHES)
def test_linen_embed_tagger(batch):
    ids = _ids(batch, seed=2)
    module = LinenTagger()
    variables = module.init(jax.random.PRNGKey(0), ids)
    model = jax2sofie.convert(module.apply, variables, ids, name="linen_tagger")
    report = model.check(ids)
    assert report.passed, f"{report}\n{model.graph}"


class NnxEmbedModel(nnx.Module):
    """nnx.Embed, a Linear on the embeddings and the tied read-out `embed.attend`."""

    def __init__(self, rngs):
        self.embed = nnx.Embed(VOCAB, FEATURES, rngs=rngs)
        self.linear = nnx.Linear(FEATURES, FEATURES, rngs=rngs)

    def __call__(self, ids):
        h = jnp.tanh(self.linear(self.embed(ids)))
        return self.embed.attend(h)


@pytest.mark.parametrize("batch", BATCHES)
def test_nnx_embed(batch):
    module = NnxEmbedModel(nnx.Rngs(0))
    ids = _ids(batch, seed=3)
    model = jax2sofie.convert(module, ids)
    report = model.check(ids)
    assert report.passed, f"{report}\n{model.graph}"


def test_nnx_embed_dynamic_batch():
    module = NnxEmbedModel(nnx.Rngs(1))
    model = jax2sofie.convert(module, _ids(4), dynamic_batch=True)
    for batch in BATCHES:
        ids = _ids(batch, seed=batch)
        report = model.check(ids)
        assert report.passed, f"batch {batch}:\n{report}\n{model.graph}"


def test_iota_folds_into_a_constant():
    # jnp.arange and one_hot's iota are evaluated at conversion time: no operator computes them; the
    # product and the sum are one loop over two constants
    model = jax2sofie.convert(lambda p, x: x * jnp.arange(5, dtype=jnp.float32) + jax.nn.one_hot(2, 5), None,
                              np.ones((3, 5), np.float32), name="iota_fold")
    assert model.graph.op_counts() == {"J2S_Elementwise": 1}, str(model.graph)
    assert all(v.is_const for v in model.graph.nodes[0].inputs[1:])
    assert model.check(np.ones((3, 5), np.float32)).passed


def test_scatter_with_a_custom_update_function_is_refused():
    with pytest.raises(jax2sofie.errors.LoweringError, match="apply"):
        jax2sofie.convert(lambda p, x, i: x.at[i].apply(jnp.abs), None, np.ones(4, np.float32),
                          np.array([1, 2], np.int32))
