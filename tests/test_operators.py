"""The operator table (jax2sofie/ir/operators.py) against the native module and the conversions.

- The table and jax2sofie._native.ops() name the same operators, both ways.
- Every native operator is emitted by some conversion: every catalog case is converted (with static
  shapes, and with a symbolic batch where the case has one; no compiling), and the operators of the
  lowered graph (before the passes), of the optimised graph and of every loop's sub-models are
  collected. A native operator outside that set is code no model reaches.
- The users that derive their lists from the table find what they need in it.
"""
from __future__ import annotations

import numpy as np
import pytest

import jax2sofie
from jax2sofie import passes
from jax2sofie._native_loader import native
from jax2sofie.errors import GraphError
from jax2sofie.ir import GraphBuilder, verify
from jax2sofie.ir.operators import KINDS, OPERATORS, names
from jax2sofie.lowering.catalog import CASES
from jax2sofie.ops.expressions import PRIMITIVES
from jax2sofie.lowering.registry import RULES
from jax2sofie.passes import elementwise_fusion

TABLE = "jax2sofie/ir/operators.py"


def test_table_and_native_module_name_the_same_operators():
    native_ops, table_ops = set(native.ops()), set(OPERATORS)
    only_native = sorted(native_ops - table_ops)
    assert not only_native, (
        f"jax2sofie._native registers {only_native} (csrc/op_table.cpp), which the operator table lacks: "
        f"add an Operator entry for each to _TABLE in {TABLE} (see its docstring)")
    only_table = sorted(table_ops - native_ops)
    assert not only_table, (
        f"{TABLE} lists {only_table}, which jax2sofie._native does not register: add a factory for each to "
        f"OpTable() in csrc/op_table.cpp and rebuild the native module, or remove the entries from {TABLE}")


def _ops_of(graph, into: set[str]) -> None:
    into.update(node.op for node in graph.nodes)
    for sub_model in graph.sub_models.values():
        _ops_of(sub_model, into)


@pytest.fixture(scope="module")
def emitted_ops() -> dict[str, set[str]]:
    """operator -> the catalog conversions that emit it (before or after the passes, sub-models included)."""
    emitted: dict[str, set[str]] = {}
    current = [""]

    def record(graph):  # a pass that changes nothing: first and last in the pipeline
        for node in graph.nodes:
            emitted.setdefault(node.op, set()).add(current[0])
        return graph

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(passes, "PIPELINE", [record, *passes.PIPELINE, record])
        for name, case in sorted(CASES.items()):
            params, inputs = case.materialize()
            for dynamic in (False, True) if case.batch else (False,):
                current[0] = name + (" (dynamic batch)" if dynamic else "")
                model = jax2sofie.convert(case.fn, params, *inputs, name=name, dynamic_batch=dynamic)
                final: set[str] = set()
                _ops_of(model.graph, final)  # what the dynamic-batch generalisation made, too
                for op in final:
                    emitted.setdefault(op, set()).add(current[0])
    return emitted


def test_every_native_operator_is_emitted_by_a_conversion(emitted_ops):
    unreached = sorted(set(native.ops()) - set(emitted_ops))
    assert not unreached, (
        f"no conversion of a catalog case emits the native operators {unreached}: give the lowering or pass "
        "that should emit each a catalog case (case(...) below its rule in jax2sofie/lowering/) whose "
        f"conversion does, or remove the operator from csrc/op_table.cpp, {TABLE} and tests/test_native.py")


def test_conversions_emit_only_table_operators(emitted_ops):
    unknown = sorted(set(emitted_ops) - set(OPERATORS))
    assert not unknown, {op: sorted(emitted_ops[op])[:3] for op in unknown}


def test_every_kind_is_used_and_entries_are_consistent():
    assert {op.kind for op in OPERATORS.values()} == set(KINDS)
    for op in OPERATORS.values():
        least, most = op.inputs
        assert least >= 1 and (most is None or most >= least), op
        if op.fusion is not None:
            assert op.dtypes is not None and "float32" in op.dtypes, f"{op.name}: a fusion expression is float32"
            assert op.kind in ("unary", "arithmetic"), f"{op.name}: only element-by-element operators fuse"


def test_fusion_expressions_resolve():
    """Every `fusion` of the table is a template over the operator's arguments, or names an expression
    elementwise_fusion knows; the fused forms read each argument."""
    from jax2sofie.ops.expressions import ExpressionBuilder

    assert set(elementwise_fusion.FLOAT_TEMPLATES) == names(fusion=True)
    for name in names(fusion=True):
        fusion = OPERATORS[name].fusion
        if fusion.startswith("@"):
            assert fusion[1:] in elementwise_fusion._NAMED_EXPRESSIONS, (
                f"{name}: fusion '{fusion}' names no expression; add it to _NAMED_EXPRESSIONS in "
                "jax2sofie/passes/elementwise_fusion.py")
        arity = OPERATORS[name].inputs[0]
        args = [f"x{i}" for i in range(arity)]
        builder = ExpressionBuilder()
        text = builder.render(elementwise_fusion.FLOAT_TEMPLATES[name](builder, args))
        assert all(arg in text for arg in args), (name, text)


def test_lowering_tables_come_from_the_table():
    """The primitives the table maps to operators have rules, and the float32 SOFIE operators of the
    expression primitives (ops/expressions.py) are unary operators of the table that fuse."""
    for op in OPERATORS.values():
        for primitive in op.primitives:
            assert primitive in RULES, f"{op.name}: primitive '{primitive}' has no lowering rule"
    for primitive, entry in PRIMITIVES.items():
        if entry.sofie_op is not None:
            op = OPERATORS.get(entry.sofie_op)
            assert op is not None and op.kind == "unary" and op.fusion is not None, (
                f"expression primitive '{primitive}' lowers to '{entry.sofie_op}', which is no fusing unary "
                f"operator of {TABLE}")


def test_verifier_refuses_operators_outside_the_table_and_wrong_input_counts():
    b = GraphBuilder("g")
    x = b.input("x", (2, 3), np.float32)
    b.graph.outputs = [b.op("Softmax", [x], (2, 3), np.float32)]
    with pytest.raises(GraphError, match=r"unknown operator 'Softmax' \(not in the operator table, "
                                         r"jax2sofie/ir/operators.py\)"):
        verify(b.graph)
    b = GraphBuilder("g")
    x = b.input("x", (2, 3), np.float32)
    b.graph.outputs = [b.op("Add", [x], (2, 3), np.float32)]
    with pytest.raises(GraphError, match="Add takes 2 inputs, got 1"):
        verify(b.graph)
    b = GraphBuilder("g")
    x = b.input("x", (2, 3), np.float32)
    b.graph.outputs = [b.op("Erf", [x], (3, 2), np.float32)]  # a unary operator keeps its input's shape
    with pytest.raises(GraphError, match=r"output shape \[3, 2\] differs from input \[2, 3\]"):
        verify(b.graph)
