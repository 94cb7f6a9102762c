"""The expression table and builder of J2S_Elementwise (no compiling: the catalog does that)."""
from __future__ import annotations

import numpy as np
import pytest

from jax2sofie.ops.expressions import PRIMITIVES, ExpressionBuilder, literal, tanh_expression


@pytest.mark.parametrize("value, dtype, text", [
    (0.5, np.float32, "0.5f"), (-2.0, np.float32, "(-2.0f)"), (1e-5, np.float32, "1e-05f"),
    (np.inf, np.float32, "std::numeric_limits<float>::infinity()"),
    (-np.inf, np.float32, "-std::numeric_limits<float>::infinity()"),
    (np.nan, np.float32, "std::numeric_limits<float>::quiet_NaN()"),
    (7, np.int32, "std::int32_t(7)"), (-3, np.int64, "std::int64_t(-3)"), (True, np.bool_, "true"),
])
def test_literals_have_the_exact_type(value, dtype, text):
    assert literal(value, dtype) == text


def test_float_literals_read_back_as_the_same_float32():
    for value in np.random.default_rng(0).standard_normal(50).astype(np.float32):
        text = literal(value, np.float32).strip("()").rstrip("f")
        assert np.float32(float(text)) == value


def test_templates_compose_on_one_builder_and_share_subexpressions():
    # sign(rem(x0, x1)) as one expression: rem's result is read three times by sign -> one temporary
    b = ExpressionBuilder()
    r = PRIMITIVES["rem"].template(b, [b.input(0), b.input(1)], "float32", {})
    s = PRIMITIVES["sign"].template(b, [r], "float32", {})
    assert b.render(s) == ("t0 = std::fmod(x0, x1); (t0 > 0.0f ? 1.0f : (t0 < 0.0f ? -1.0f : t0))")


def test_every_entry_renders_for_each_dtype_it_accepts():
    for name, entry in PRIMITIVES.items():
        for dtype in entry.dtypes:
            b = ExpressionBuilder()
            text = b.render(entry.template(b, [b.input(i) for i in range(entry.arity)], dtype, {}))
            assert "x0" in text and text.count("(") == text.count(")"), name


def test_rendered_node_expressions_inline_into_one():
    # two nodes, rem(x0, x1) then tanh(.), become one expression over the first node's inputs
    first = ExpressionBuilder()
    rem = first.render(PRIMITIVES["rem"].template(first, [first.input(0), first.input(1)], "int32", {}))
    second = ExpressionBuilder()
    tanh = second.render(tanh_expression(second, [second.input(0)]))
    fused = ExpressionBuilder()
    result = fused.apply(tanh, [fused.apply(rem, [fused.input(0), fused.input(1)])])
    text = fused.render(result)
    assert text.startswith("t0 = (x1 == 0 ? x0 : (x1 == -1 ? 0 : x0 % x1)); t1 = ((t0 * t0 * 0.012345679f))")
    assert "x0" not in text.split(";")[-1] and text.count("(") == text.count(")")
    definitions = [d.split("=")[0].strip() for d in text.split(";")[:-1]]
    assert definitions == [f"t{k}" for k in range(len(definitions))]
