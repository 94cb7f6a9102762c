"""Control flow that cannot be unrolled is refused at conversion time with the reason."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jax2sofie
from jax2sofie.errors import LoweringError


def test_while_with_data_dependent_trip_count_is_refused():
    def fn(p, x):
        return lax.while_loop(lambda c: jnp.sum(c) < 10.0, lambda c: c * 2.0, x)

    with pytest.raises(LoweringError, match="condition depends on the inputs"):
        jax2sofie.convert(fn, None, np.ones((2, 3), np.float32))


def test_scan_longer_than_the_unroll_limit_is_refused():
    def fn(p, x):
        return lax.scan(lambda c, _: (c + 1.0, None), x, None, length=5000)[0]

    with pytest.raises(LoweringError, match="unrolling is limited"):
        jax2sofie.convert(fn, None, np.ones((2,), np.float32))
