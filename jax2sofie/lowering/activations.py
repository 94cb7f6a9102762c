"""Catalog cases for the activations of jax.nn (which flax.linen and flax.nnx re-export) as they
trace: they decompose into elementwise primitives (erf/erfc, expm1, log1p, select_n, clamp-like
max/min, logistic, tanh), so they need no rules of their own; these cases show each one converts
and matches."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from .catalog import case, f32

case("gelu_tanh_and_exact", lambda p, x: (jax.nn.gelu(x, approximate=True), jax.nn.gelu(x, approximate=False)),
     f32(4, 9))
case("softplus_log_sigmoid", lambda p, x: (jax.nn.softplus(8.0 * x), jax.nn.log_sigmoid(8.0 * x)), f32(3, 7))
case("silu_swish_mish", lambda p, x: (jax.nn.silu(x), jax.nn.swish(x), jax.nn.mish(x)), f32(2, 6))
case("elu_selu_celu", lambda p, x: (jax.nn.elu(x), jax.nn.elu(x, alpha=0.5), jax.nn.selu(x), jax.nn.celu(x, 1.5)),
     f32(5, 4))
case("leaky_relu_relu6", lambda p, x: (jax.nn.leaky_relu(x), jax.nn.leaky_relu(x, 0.2), jax.nn.relu6(4.0 * x)),
     f32(3, 5))
case("hard_sigmoid_hard_swish", lambda p, x: (jax.nn.hard_sigmoid(4.0 * x), jax.nn.hard_swish(4.0 * x),
                                               jax.nn.hard_silu(x), jax.nn.hard_tanh(2.0 * x)), f32(4, 6))
case("soft_sign_squareplus", lambda p, x: (jax.nn.soft_sign(x), jax.nn.squareplus(x)), f32(1, 7))
