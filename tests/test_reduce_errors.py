"""Reductions, sorts and products that the lowering refuses: each with a message naming what is missing."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jax2sofie
from jax2sofie.errors import LoweringError

INTS = np.arange(12, dtype=np.int32).reshape(3, 4)
FLOATS = np.ones((3, 4), np.float32)


@pytest.mark.parametrize("fn, x, message", [
    (lambda p, x: lax.reduce_and(x, axes=(1,)), INTS, "bitwise reduction"),
    (lambda p, x: x @ x.T, INTS, "float32 only"),
    (lambda p, x: lax.reduce(x, 0.0, lambda a, b: a * b + 1.0, (1,)), FLOATS, "one add/mul/max/min"),
])
def test_refused_with_a_clear_message(fn, x, message):
    with pytest.raises(LoweringError, match=message):
        jax2sofie.convert(fn, None, x)
