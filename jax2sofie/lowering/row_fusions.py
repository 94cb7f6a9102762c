"""Catalog cases for the row fusions of the passes (passes/softmax.py: J2S_Softmax): softmaxes as
jax.nn.softmax traces them, over rows of several lengths (a vector and a part, one full vector, too
short for one), behind the masks attention puts before them, and rows that must come out NaN as in
JAX (all -inf, a NaN, +inf)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .catalog import boolean, case, f32


def _special_rows(x):
    """Row 1 all -inf (JAX: NaN), row 2 with one NaN (NaN), row 3 with one +inf (NaN: inf - inf), row 4
    with one -inf (a 0 there); x is [batch, 5, n]."""
    row = jnp.arange(x.shape[1])[None, :, None]
    col = jnp.arange(x.shape[2])
    x = jnp.where(row == 1, -jnp.inf, x)
    x = jnp.where((row == 2) & (col == 3), jnp.nan, x)
    x = jnp.where((row == 3) & (col == 0), jnp.inf, x)
    return jnp.where((row == 4) & (col == 2), -jnp.inf, x)


case("softmax_rows_of_37_16_3", lambda p, x, y, z: (jax.nn.softmax(x, axis=-1), jax.nn.softmax(8.0 * y, axis=-1),
                                                    jax.nn.softmax(z, axis=2)), f32(2, 5, 37), f32(2, 16), f32(2, 4, 3))
case("softmax_nan_and_inf_rows", lambda p, x: jax.nn.softmax(_special_rows(x), axis=-1), f32(2, 5, 21))
# BERT's additive mask ((mask - 1) * 1e9 on the logits) and Keras' where(mask, logits, -1e9)
case("softmax_after_masks", lambda p, x, m: (
    jax.nn.softmax(x + (m.astype(jnp.float32)[:, None, :] - 1.0) * 1e9, axis=-1),
    jax.nn.softmax(jnp.where(m[:, None, :], x, -1e9), axis=-1)), f32(3, 4, 24), boolean(3, 24))
# attention scores through heads (nnx's size-1 axis), a softmax the next product reads
case("softmax_attention_core", lambda p, q, k: jnp.einsum(
    "bhqk,bkhd->bqhd", jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / 4.0, axis=-1), k),
     f32(2, 9, 3, 8), f32(2, 9, 3, 8))
