"""A loop in the generated code for lax.while_loop: J2S_While over a condition and a body sub-model.

The condition and body jaxprs are lowered to graphs of their own (sub-models), optimised by the
same passes, and stored on the graph (Graph.sub_models); jax2sofie/sub_models.py generates their
code into the model's header. The J2S_While node (csrc/owned/while_loop.hpp) takes the consts the
sub-models read and the initial carries, and returns the final carries.

What a sub-model takes as inputs: the carries it reads, and the consts it reads that are not small
literals (weights and computed tensors). Small literal consts become constants of the sub-model, so
that they fold there as in the main graph. A carry the body returns unchanged is no body output: the
loop leaves it as it is.
"""
from __future__ import annotations

from ..ir import Graph, GraphBuilder, Value, verify
from ..passes import run_passes
from .context import LoweringContext, dtype_attr


def lower_while(ctx: LoweringContext, cond_jaxpr, body_jaxpr, cond_consts: list[Value], body_consts: list[Value],
                carry: list[Value]) -> list[Value]:
    """The J2S_While node for `while cond(cond_consts, carry): carry = body(body_consts, carry)`."""
    builder = ctx.builder
    name = builder.unique_name(f"{builder.graph.name}_while")
    operands: list[Value] = []  # the node's inputs before the carries: consts the sub-models read

    def node_inputs(sources: list[tuple[str, object]]) -> list[tuple[str, int]]:
        indices = []
        for kind, what in sources:
            if kind == "carry":
                indices.append(("carry", what))
                continue
            position = next((i for i, v in enumerate(operands) if v is what), None)
            if position is None:
                operands.append(what)
                position = len(operands) - 1
            indices.append(("operand", position))
        return indices

    cond, cond_sources, _ = _sub_model(ctx, f"{name}_cond", cond_jaxpr, cond_consts, carry, is_body=False)
    body, body_sources, body_outputs = _sub_model(ctx, f"{name}_body", body_jaxpr, body_consts, carry, is_body=True)
    cond_inputs, body_inputs = node_inputs(cond_sources), node_inputs(body_sources)

    def resolved(indices: list[tuple[str, int]]) -> list[int]:  # carries come after every operand
        return [len(operands) + i if kind == "carry" else i for kind, i in indices]

    outputs = builder.op_multi(
        "J2S_While", operands + carry, [(v.shape, v.dtype) for v in carry], hint="while",
        cond_model=cond.name, body_model=body.name, cond_inputs=resolved(cond_inputs),
        body_inputs=resolved(body_inputs), body_outputs=body_outputs,
        max_trips=ctx.max_while_trips, where=builder.current_source)
    builder.graph.sub_models[cond.name] = cond
    builder.graph.sub_models[body.name] = body
    return outputs


def _sub_model(ctx: LoweringContext, name: str, closed_jaxpr, consts: list[Value], carry: list[Value],
               is_body: bool) -> tuple[Graph, list[tuple[str, object]], list[int]]:
    """Lower a condition or body jaxpr (arguments: consts, then carries) to an optimised graph.

    Returns the graph, where each of its inputs comes from (("operand", the const's Value) or
    ("carry", k)) and, for a body, per carry the index of the output holding its next value (-1:
    returned unchanged)."""
    sub = GraphBuilder(name)
    args: list[Value] = []
    sources: dict[int, tuple[str, object]] = {}  # id(sub-model input) -> where it comes from
    for value in consts:
        if value.is_const and not value.is_weight:  # a literal: a constant of the sub-model too
            args.append(sub.constant(value.const, value.name))
        else:
            args.append(sub.input(value.name, value.shape, value.dtype))
            sources[id(args[-1])] = ("operand", value)
    carries = []
    for k, value in enumerate(carry):
        carries.append(sub.input(f"carry_{k}", value.shape, value.dtype))
        sources[id(carries[-1])] = ("carry", k)
    sub_ctx = LoweringContext(sub, ctx._lower_sub, ctx.const_names, ctx.max_while_trips)
    with sub.source(ctx.builder.current_source):
        results = sub_ctx.inline(closed_jaxpr, args + carries)
    graph = sub.graph
    graph.traced_batch = ctx.builder.graph.traced_batch
    graph.outputs = list(results)
    graph = run_passes(graph)

    outputs: list[Value] = []
    body_outputs: list[int] = []
    for k, value in enumerate(graph.outputs):
        # (a body that returns every carry unchanged still has one output: SOFIE needs one)
        last_chance = k == len(graph.outputs) - 1 and not outputs
        if is_body and value is carries[k] and not last_chance:
            body_outputs.append(-1)
            continue
        body_outputs.append(len(outputs))
        if value.is_const or any(value is v for v in graph.inputs) or any(value is v for v in outputs):
            value = _copy(sub, value)  # a SOFIE output must be computed by an operator of its own
        value.name = sub.unique_name("next" if is_body else "keep_going")
        outputs.append(value)
    graph.outputs = outputs
    graph.inputs = [v for v in graph.inputs if _is_read(graph, v)]  # doInfer takes only what it reads
    verify(graph)
    return graph, [sources[id(v)] for v in graph.inputs], body_outputs


def _copy(sub: GraphBuilder, value: Value) -> Value:
    """A copy of `value` computed by an operator (J2S_Tile repeating once: any element type)."""
    return sub.op("J2S_Tile", [value], value.shape, value.dtype, hint="copy", dtype=dtype_attr(value.dtype),
                  reps=[1] * max(value.rank, 1))


def _is_read(graph: Graph, value: Value) -> bool:
    return any(value is v for node in graph.nodes for v in node.inputs) or any(value is v for v in graph.outputs)
