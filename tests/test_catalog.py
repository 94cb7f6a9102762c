"""Every catalog case declared next to the rules: convert, compile the C++, run it, compare with JAX —
with static shapes, and (for cases whose inputs have a batch dimension) with a symbolic batch, run at
several batch sizes."""
from __future__ import annotations

import pytest

import jax2sofie
from jax2sofie.lowering.catalog import CASES

DYNAMIC_BATCHES = (1, 7, 16)


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_matches_jax(name):
    case = CASES[name]
    params, inputs = case.materialize()
    model = jax2sofie.convert(case.fn, params, *inputs, name=name)
    report = model.check(*inputs, rtol=case.rtol, atol=case.atol)
    assert report.passed, f"{name}:\n{report}\n{model.graph}"


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c.batch))
def test_case_matches_jax_with_dynamic_batch(name):
    case = CASES[name]
    params, inputs = case.materialize()
    model = jax2sofie.convert(case.fn, params, *inputs, name=name, dynamic_batch=True)
    assert model.batch_param == "bs"
    for batch in DYNAMIC_BATCHES:
        _, batch_inputs = case.materialize(batch=batch)
        report = model.check(*batch_inputs, rtol=case.rtol, atol=case.atol)
        assert report.passed, f"{name} at batch {batch}:\n{report}\n{model.graph}"
