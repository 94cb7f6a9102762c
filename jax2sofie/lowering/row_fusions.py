"""Catalog cases for the row fusions of the passes (passes/softmax.py: J2S_Softmax): softmaxes as
jax.nn.softmax traces them, over rows of several lengths (a vector and a part, one full vector, too
short for one), behind the masks attention puts before them, and rows that must come out NaN as in
JAX (all -inf, a NaN, +inf); and (passes/layernorm.py: J2S_LayerNorm) the layer norms of Flax (nnx,
linen) and Keras, with and without scale and bias, over rows that are and are not a multiple of the
vector width, on tiny and large values, and forms the pass must leave alone."""
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


# ---- layer norms (J2S_LayerNorm) ----

def _nnx_layer_norm(p, x, use_scale: bool = True, use_bias: bool = True):
    """flax.nnx.LayerNorm over the last axis with p's scale and bias (max(0, E[x^2] - E[x]^2))."""
    from flax import nnx
    norm = nnx.LayerNorm(x.shape[-1], use_scale=use_scale, use_bias=use_bias, rngs=nnx.Rngs(0))
    if use_scale:
        norm.scale[...] = p["scale"]
    if use_bias:
        norm.bias[...] = p["bias"]
    return norm(x)


def _linen_layer_norm(p, x, **options):
    import flax.linen as nn
    return nn.LayerNorm(**options).apply({"params": p}, x)


def keras_layer_norm(x, gamma=None, beta=None, epsilon: float = 1e-3):
    """What keras.layers.LayerNormalization computes on the JAX backend (keras.ops.layer_normalization:
    a two-pass variance, the mean folded into a bias), written in jax.numpy so that this module needs
    no Keras; tests/test_layernorm_fusion.py converts the Keras layer itself."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    variance = jnp.mean(jnp.square(x - jax.lax.stop_gradient(mean)), axis=-1, keepdims=True)
    inv = jax.lax.rsqrt(variance + epsilon)
    if gamma is not None:
        inv = inv * gamma
    res = -mean * inv
    if beta is not None:
        res = res + beta
    return x * inv + res


case("layernorm_nnx_rows_of_37_and_16", lambda p, x, y: (
    _nnx_layer_norm(p["a"], x), _nnx_layer_norm(p["b"], y, use_scale=False)),
     f32(2, 5, 37), f32(2, 3, 16), params={"a": {"scale": f32(37), "bias": f32(37)}, "b": {"bias": f32(16)}})
# each layer norm has an input of its own: two norms of one tensor share its row sums (common
# subexpressions), which the pass then leaves alone
case("layernorm_linen_rows_of_20_and_3", lambda p, x, y, z: (
    _linen_layer_norm(p["a"], x), _linen_layer_norm(p["b"], y, use_bias=False),
    _linen_layer_norm({}, z, use_scale=False, use_bias=False)),
     f32(2, 20), f32(2, 4, 3), f32(2, 7), params={"a": {"scale": f32(20), "bias": f32(20)}, "b": {"scale": f32(3)}})
case("layernorm_keras_rows_of_37_and_8", lambda p, x, y, z, w: (
    keras_layer_norm(x, p["gamma"], p["beta"]), keras_layer_norm(y), keras_layer_norm(z, gamma=p["gamma8"]),
    keras_layer_norm(w, beta=p["beta"])),
     f32(2, 5, 37), f32(2, 3, 8), f32(2, 8), f32(2, 37), params={"gamma": f32(37), "beta": f32(37), "gamma8": f32(8)})
# values of about 1e-3 (a variance of the size of Flax's eps 1e-6) and 1e3, rows offset from zero
case("layernorm_tiny_and_large_values", lambda p, x, y, z, w: (
    _nnx_layer_norm(p, 1e-3 * x), _nnx_layer_norm(p, 1e3 * y + 5e2), keras_layer_norm(1e-3 * z, p["scale"], p["bias"]),
    keras_layer_norm(1e3 * w + 5e2, p["scale"], p["bias"])),
     f32(3, 2, 24), f32(3, 24), f32(3, 24), f32(3, 5, 24), params={"scale": f32(24), "bias": f32(24)})
# forms passes/layernorm.py must leave as they are: over another axis, eps outside the square root
case("layernorm_forms_left_alone", lambda p, x, y: (
    _linen_layer_norm({}, x, reduction_axes=-2, use_scale=False, use_bias=False),
    (y - y.mean(-1, keepdims=True)) / (jnp.sqrt(jnp.var(y, -1, keepdims=True)) + 1e-5)),
     f32(2, 6, 12), f32(2, 12))
# a hand-written layer norm through jnp.var: the two-pass variance and (x - mean) * rsqrt, fused
case("layernorm_hand_written_two_pass", lambda p, z: (
    (z - z.mean(-1, keepdims=True)) * jax.lax.rsqrt(jnp.var(z, -1, keepdims=True) + 1e-5) * p["scale"]),
     f32(2, 3, 12), params={"scale": f32(12)})
