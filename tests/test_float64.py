"""Float64 models are refused with a message that says what to do (README: why not converted)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie.errors import ConversionError


def test_float64_param_is_refused():
    with jax.enable_x64(True):
        with pytest.raises(ConversionError, match="param 'param' is float64.*cast the params to float32"):
            jax2sofie.convert(lambda p, x: x * p, np.float64(2.0), np.ones(3, np.float32))


def test_float64_input_is_refused():
    with jax.enable_x64(True):
        with pytest.raises(ConversionError, match="example input 0 is float64.*give a float32 input"):
            jax2sofie.convert(lambda p, x: x * 2.0, None, np.ones(3, np.float64))


def test_float64_inside_the_model_is_refused_naming_the_line():
    def fn(p, x):
        return (x.astype(jnp.float64) * 2.0).astype(jnp.float32)

    with jax.enable_x64(True):
        with pytest.raises(ConversionError, match=r"computes in float64 \('convert_element_type' at .*test_float64"):
            jax2sofie.convert(fn, None, np.ones(3, np.float32))


def test_float32_model_converts_with_x64_on():
    with jax.enable_x64(True):
        model = jax2sofie.convert(lambda p, x: x * 2.0 + p, np.float32(1.0), np.ones(3, np.float32))
    assert model.graph.outputs[0].dtype == np.float32
