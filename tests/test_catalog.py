"""Every catalog case declared next to the rules: convert, compile the C++, run it, compare with JAX."""
from __future__ import annotations

import pytest

import jax2sofie
from jax2sofie.lowering.catalog import CASES


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_matches_jax(name):
    case = CASES[name]
    params, inputs = case.materialize()
    model = jax2sofie.convert(case.fn, params, *inputs, name=name)
    report = model.check(*inputs, rtol=case.rtol, atol=case.atol)
    assert report.passed, f"{name}:\n{report}\n{model.graph}"
