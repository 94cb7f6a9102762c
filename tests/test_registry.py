"""The registry's contract: each JAX primitive is lowered or declared unsupported (exactly one of the
two), registering twice fails, and every rule is exercised by at least one catalog case."""
from __future__ import annotations

import jax
import pytest
from jax.extend import core as jcore

from jax2sofie.lowering import NOT_SUPPORTED, RULES
from jax2sofie.lowering.catalog import CASES
from jax2sofie.lowering.primitives import known_primitives
from jax2sofie.lowering.registry import RegistryError, declare_not_supported, register


def test_every_known_primitive_is_in_exactly_one_table():
    known = set(known_primitives())
    assert len(known) > 200  # the scan of JAX's modules found the primitives
    both = set(RULES) & set(NOT_SUPPORTED)
    neither = sorted(known - set(RULES) - set(NOT_SUPPORTED))
    assert not both, f"lowered and declared unsupported: {sorted(both)}"
    assert not neither, f"primitives neither lowered nor declared unsupported: {neither}"
    assert not (set(RULES) - known), f"rules for primitives JAX does not have: {sorted(set(RULES) - known)}"
    assert not (set(NOT_SUPPORTED) - known), f"unknown names in NOT_SUPPORTED: {sorted(set(NOT_SUPPORTED) - known)}"


def test_duplicate_registration_is_an_error():
    with pytest.raises(RegistryError, match="already has a rule"):
        register("add")(lambda ctx, *xs: xs)
    with pytest.raises(RegistryError, match="declared not supported"):
        register("psum")(lambda ctx, *xs: xs)
    with pytest.raises(RegistryError, match="has a rule"):
        declare_not_supported("nope", "mul")
    assert RULES["add"].__qualname__ != "<lambda>"


def _primitives_of(jaxpr: jcore.Jaxpr, found: set[str]) -> set[str]:
    for eqn in jaxpr.eqns:
        found.add(eqn.primitive.name)
        for sub in jcore.jaxprs_in_params(eqn.params):
            _primitives_of(sub, found)
    return found


def test_every_rule_has_a_catalog_case():
    used: set[str] = set()
    for case in CASES.values():
        params, inputs = case.materialize()
        _primitives_of(jax.make_jaxpr(case.fn)(params, *inputs).jaxpr, used)
    missing = sorted(set(RULES) - used)
    assert not missing, f"rules without a catalog case: {missing}"


def test_coverage_page_is_up_to_date():
    from pathlib import Path

    from jax2sofie.lowering.coverage import coverage_markdown

    page = Path(__file__).resolve().parent.parent / "docs" / "coverage.md"
    assert page.read_text() == coverage_markdown(), (
        "docs/coverage.md is stale: run `python -m jax2sofie.lowering.coverage > docs/coverage.md`")
