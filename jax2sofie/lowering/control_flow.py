"""Rules for control flow: scan, cond (and lax.switch), while (fori_loop).

A scan's length is known at trace time, so scans are unrolled into the graph: each step's body is
lowered in place (ctx.inline) on the carries of the step before. Equations of the body that depend
only on constants (a loop counter, the first step's zero carry) fold at conversion time, so a while
loop whose condition folds at every step has a known trip count and unrolls when it is short. One
whose condition depends on the inputs (Newton iterations, bisection, `while i < n` with n an input)
or that runs long becomes a loop in the generated code (while_loop.py: J2S_While). A cond with a
constant index inlines the chosen branch; otherwise every branch is lowered and the results are
selected by the index (branches are pure jaxprs here: effects are refused).
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext
from .registry import register
from .while_loop import lower_while

# Unrolling beyond this many steps makes a header nobody wants to compile; such a scan is refused.
MAX_UNROLLED_STEPS = 4096
# A while loop with a known trip count is unrolled up to this many steps (the steps then fold and
# fuse with the code around them); a longer one becomes a loop in the generated code.
MAX_UNROLLED_WHILE_STEPS = 128


def _take_step(ctx: LoweringContext, x: Value, t: int) -> Value:
    """x[t] along axis 0 (a slice of one row, relabelled without the axis)."""
    row = ctx.slice(x, [t] + [0] * (x.rank - 1), [t + 1] + list(x.shape[1:]))
    return ctx.reshape(row, x.shape[1:])


def _stack(ctx: LoweringContext, steps: list[Value]) -> Value:
    """Stack same-shaped values along a new axis 0."""
    rows = [ctx.reshape(v, (1,) + tuple(v.shape)) for v in steps]
    return ctx.concat(rows, 0)


@register("scan")
def scan(ctx: LoweringContext, *args: Value, jaxpr, num_consts, num_carry, length, reverse=False, **_params):
    """Unrolled: per step the xs row is sliced, the body inlined, the ys stacked with Concat."""
    if length > MAX_UNROLLED_STEPS:
        raise ctx.error(f"scan of {length} steps: unrolling is limited to {MAX_UNROLLED_STEPS} steps")
    if length == 0 and len(jaxpr.jaxpr.outvars) > num_carry:
        raise ctx.error("scan of length 0 with stacked outputs: zero-size tensors are not supported")
    _refuse_effects(ctx, jaxpr, "scan")
    consts = list(args[:num_consts])
    carry = list(args[num_consts:num_consts + num_carry])
    xs = list(args[num_consts + num_carry:])
    ys_per_step: dict[int, list[Value]] = {}
    for t in (range(length - 1, -1, -1) if reverse else range(length)):
        outs = ctx.inline(jaxpr, consts + carry + [_take_step(ctx, x, t) for x in xs])
        carry, ys_per_step[t] = list(outs[:num_carry]), list(outs[num_carry:])
    n_ys = len(jaxpr.jaxpr.outvars) - num_carry
    ys = [_stack(ctx, [ys_per_step[t][k] for t in range(length)]) for k in range(n_ys)]
    return carry + ys


def _refuse_effects(ctx: LoweringContext, closed, what: str) -> None:
    effects = getattr(closed, "effects", None)
    if effects:
        raise ctx.error(f"{what} with side effects ({', '.join(sorted(map(str, effects)))}) cannot be compiled")


def _select(ctx: LoweringContext, pred: Value, on_true: Value, on_false: Value) -> Value:
    """pred ? on_true : on_false, with pred a scalar bool (SOFIE's Where takes float32 only)."""
    if on_true is on_false:
        return on_true
    shape = tuple(np.broadcast_shapes(on_true.shape, on_false.shape))
    dtype = np.dtype(on_true.dtype)
    if dtype == np.float32:
        return ctx.op("Where", [pred, on_true, on_false], shape, dtype, dtype="float32")
    if dtype == np.bool_:  # through float32 0/1 (exact): SOFIE's And/Or do not broadcast the scalar predicate
        picked = _select(ctx, pred, ctx.cast(on_true, np.float32), ctx.cast(on_false, np.float32))
        return ctx.cast(picked, np.bool_)
    if dtype in (np.int32, np.int64):  # exact integer blend: on_false + p * (on_true - on_false)
        step = ctx.binary("Mul", ctx.cast(pred, dtype), ctx.binary("Sub", on_true, on_false))
        return ctx.binary("Add", on_false, step)
    raise ctx.error(f"cond/switch over {dtype} results is not supported")


@register("cond")
def cond(ctx: LoweringContext, index: Value, *operands: Value, branches, **_params):
    """Constant index: the chosen branch inlined; else all branches lowered, results selected by the index."""
    if index.is_const:  # lax.switch clamps the index before the cond; a cond index is always in range
        chosen = int(np.clip(int(np.asarray(index.const).reshape(())), 0, len(branches) - 1))
        return ctx.inline(branches[chosen], operands)
    for branch in branches:
        _refuse_effects(ctx, branch, "a cond branch")
    results = [ctx.inline(branch, operands) for branch in branches]
    outputs = list(results[0])
    for k in range(1, len(branches)):
        # the index is in range, so "index >= k" picks branch k over the branches before it
        pred = ctx.binary("GreaterOrEqual", index, ctx.literal(k, index.dtype), dtype=np.bool_)
        outputs = [_select(ctx, pred, new, old) for new, old in zip(results[k], outputs)]
    return outputs


@register("while")
def while_loop(ctx: LoweringContext, *args: Value, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts, **_params):
    """Unrolled when the condition folds to a constant at every step of a short loop (a counter with
    static bounds); otherwise a loop in the generated code (J2S_While over condition and body
    sub-models), which throws once it runs more than the max_while_trips conversion option."""
    cond_consts = list(args[:cond_nconsts])
    body_consts = list(args[cond_nconsts:cond_nconsts + body_nconsts])
    carry = list(args[cond_nconsts + body_nconsts:])
    _refuse_effects(ctx, cond_jaxpr, "while loop condition")
    _refuse_effects(ctx, body_jaxpr, "while loop")
    unrolled_from = len(ctx.builder.graph.nodes)
    state = carry
    for _ in range(MAX_UNROLLED_WHILE_STEPS + 1):
        (keep_going,) = ctx.inline(cond_jaxpr, cond_consts + state)
        if not keep_going.is_const:
            break
        if not bool(np.asarray(keep_going.const).reshape(())):
            return state
        state = list(ctx.inline(body_jaxpr, body_consts + state))
    # the trip count is not known, or too large to unroll: the steps tried are dropped (nothing reads
    # them) and the loop runs in the generated code from the initial carries
    del ctx.builder.graph.nodes[unrolled_from:]
    return lower_while(ctx, cond_jaxpr, body_jaxpr, cond_consts, body_consts, carry)


# -- catalog cases -------------------------------------------------------------------------------------------
# Inputs with batch=True get dimension 0 resized in the dynamic-batch test: scanned axes come later.
import jax.numpy as jnp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32, i32, positive  # noqa: E402


def _cumulative_scan(p, xs, reverse=False):
    def step(carry, x):
        carry = jnp.tanh(carry * p["a"] + x)
        return carry, carry * 2.0

    final, ys = lax.scan(step, jnp.zeros(xs.shape[1:]), xs, reverse=reverse)
    return final, ys


case("scan_forward", _cumulative_scan, f32(5, 3), params={"a": f32(3)}, batch=False)
case("scan_reverse", lambda p, xs: _cumulative_scan(p, xs, reverse=True), f32(4, 2, 3), params={"a": f32(3)},
     batch=False)


def _scan_time_axis(p, x):
    # (batch, time, features): scan over time with a batch-sized carry, several carries and ys
    def step(carry, x_t):
        h, n = carry
        h = jnp.tanh(x_t @ p["w"] + h @ p["u"])
        return (h, n + 1.0), (h, jnp.sum(h, axis=-1))

    init = (jnp.zeros((x.shape[0], 4)), jnp.zeros(()))
    (h, n), (hs, sums) = lax.scan(step, init, jnp.swapaxes(x, 0, 1))
    return h * n, jnp.swapaxes(hs, 0, 1), sums


case("scan_time_axis_batched", _scan_time_axis, f32(3, 6, 5), params={"w": f32(5, 4), "u": f32(4, 4)})
case("scan_length_no_xs", lambda p, x: lax.scan(lambda c, _: (c * 0.5 + 1.0, c), x, None, length=3),
     f32(2, 3))
case("scan_int_carry", lambda p, t: lax.scan(lambda c, x: (c + x, c * 2), jnp.zeros(t.shape[1:], jnp.int32), t),
     i32(4, 3), batch=False)


def _fori(p, x):
    return lax.fori_loop(0, 4, lambda i, c: c * 0.5 + x * i.astype(jnp.float32), x)


def _while_counter(p, x):
    def body(state):
        i, v = state
        return i + 2, jnp.tanh(v) + 0.5

    return lax.while_loop(lambda s: s[0] < 7, body, (jnp.int32(1), x))[1]


case("fori_loop_static", _fori, f32(2, 3))
case("while_constant_counter", _while_counter, f32(3, 2))


def _cond(p, x):
    return lax.cond(jnp.sum(x) > 0.0, lambda v: jnp.tanh(v) * 2.0, lambda v: v - 1.0, x)


def _cond_int_and_bool(p, x, t):
    return lax.cond(x[0, 0] > 0.0, lambda a, b: (b + 1, a > 0.5), lambda a, b: (b * 3, a < 0.0), x, t)


case("cond_traced", _cond, f32(2, 3), batch=False)
case("cond_int_bool_results", _cond_int_and_bool, f32(2, 3), i32(2, 3), batch=False)
case("cond_constant_predicate", lambda p, x: lax.cond(p["w"][0] > -10.0, jnp.tanh, jnp.exp, x),
     f32(2, 3), params={"w": f32(2)})
case("switch_constant_index", lambda p, x: lax.switch(2, [jnp.tanh, jnp.exp, lambda v: v * 3.0], x), f32(3))
case("switch_traced_index", lambda p, x, i: lax.switch(i[0] - 1, [jnp.tanh, lambda v: v * 3.0, jnp.exp,
                                                                   lambda v: -v], x),
     f32(2, 3), i32(1), batch=False)  # lax.switch clamps a traced index first (the clamp rule)


def _fori_scatter_rows(p, x):
    # a batch-sized matrix carry written one column block per step (x.at[:, i, :].set(...))
    def body(i, a):
        return a.at[:, i, :].set(jnp.tanh(x) * (i + 1.0))

    return lax.fori_loop(0, 3, body, jnp.zeros((x.shape[0], 3, x.shape[1])))


case("fori_loop_scatter_scalar_into_vector",
     lambda p, x: lax.fori_loop(0, 3, lambda i, a: a.at[i].set(x[i] * 2.0), jnp.zeros(3)), f32(3), batch=False)
case("fori_loop_scatter_row_of_matrix",
     lambda p, r: lax.fori_loop(0, 3, lambda i, a: a.at[i, :].set(r[i] * (i + 1.0)), jnp.zeros((3, 4))),
     f32(3, 4), batch=False)
case("fori_loop_scatter_rows_batched", _fori_scatter_rows, f32(2, 4))
case("fori_loop_zero_trips", lambda p, x: lax.fori_loop(0, 0, lambda i, c: c + 1.0, x) * 2.0, f32(2))


# while loops whose trip count depends on the inputs: J2S_While (while_loop.py)
def _newton_sqrt(p, a):
    # Newton's iteration for sqrt(a) until no element moves by more than 1e-6: the count depends on a
    def keep_going(state):
        _, delta, _ = state
        return jnp.max(jnp.abs(delta)) > 1e-6

    def step(state):
        x, _, count = state
        new = 0.5 * (x + a / x)
        return new, new - x, count + 1

    x, _, count = lax.while_loop(keep_going, step, (a + 1.0, jnp.ones_like(a), jnp.int32(0)))
    return x, count


def _counter_to_input(p, x, n):
    # `while i < n` with n an input value; n is carried unchanged (no body output for it)
    def step(state):
        i, bound, v = state
        return i + 1, bound, v * 0.75 + jnp.sin(v) * 0.5

    i, _, v = lax.while_loop(lambda s: s[0] < s[1], step, (jnp.int32(0), n[0], x))
    return v, i


def _bisection(p, a):
    # the real root of t^3 + t - a per element, halving [lo, hi] until every interval is below 1e-4
    def step(state):
        lo, hi = state
        mid = 0.5 * (lo + hi)
        below = mid * mid * mid + mid < a
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    init = (jnp.full_like(a, -3.0), jnp.full_like(a, 3.0))
    lo, hi = lax.while_loop(lambda s: jnp.max(s[1] - s[0]) > 1e-4, step, init)
    return 0.5 * (lo + hi)


def _per_row_counts(p, x):
    # per-event iteration counts: each row halves until its norm is below 0.1; finished rows stay, their
    # count stops (a bool and an int32 vector carry)
    def step(state):
        v, done, counts = state
        done = jnp.sqrt(jnp.sum(v * v, axis=-1)) < 0.1
        return jnp.where(done[:, None], v, v * 0.5), done, counts + jnp.where(done, 0, 1)

    init = (x, jnp.zeros(x.shape[:1], bool), jnp.zeros(x.shape[:1], jnp.int32))
    v, done, counts = lax.while_loop(lambda s: jnp.any(~s[1]), step, init)
    return v, done, counts


def _fixed_point_dense(p, x):
    # h = tanh(h W) / 2 + x until it settles: a weight read at every step, a batch-sized carry
    def step(state):
        h, _ = state
        new = 0.5 * jnp.tanh(h @ (0.1 * p["w"]) + p["b"]) + x
        return new, jnp.max(jnp.abs(new - h))

    h, _ = lax.while_loop(lambda s: s[1] > 1e-5, step, (jnp.zeros_like(x), jnp.float32(1.0)))
    return h


def _bool_carry_condition(p, x):
    # the condition is a carried bool itself (a copy in the condition sub-model)
    def step(state):
        v, _ = state
        v = v * 0.5
        return v, jnp.max(jnp.abs(v)) > 0.01

    return lax.while_loop(lambda s: s[1], step, (x, jnp.bool_(True)))[0]


def _nested_while(p, x, n):
    # an outer loop over an input count whose body runs a data-dependent inner loop
    def outer(state):
        i, v = state
        v = lax.while_loop(lambda u: jnp.max(jnp.abs(u)) > 1.0, lambda u: u * 0.5, v * 3.0)
        return i + 1, v

    return lax.while_loop(lambda s: s[0] < n[0], outer, (jnp.int32(0), x))[1]


case("while_newton_sqrt", _newton_sqrt, positive(3, 4))
case("while_counter_to_input_bound", _counter_to_input, f32(3, 2), i32(1), batch=False)
case("while_bisection_vector_carry", _bisection, f32(6))
case("while_per_row_iteration_counts", _per_row_counts, f32(4, 3))
case("while_fixed_point_dense", _fixed_point_dense, f32(3, 4), params={"w": f32(4, 4), "b": f32(4)})
case("while_bool_carry_condition", _bool_carry_condition, f32(2, 3))
case("while_nested_loops", _nested_while, f32(2, 3), i32(1), batch=False)
case("fori_loop_input_bound",
     lambda p, x, n: lax.fori_loop(0, n[0], lambda i, c: c * 0.5 + x * i.astype(jnp.float32), x),
     f32(2, 3), i32(1), batch=False)
case("while_long_constant_count",  # a known count too long to unroll: a loop in the generated code
     lambda p, x: lax.while_loop(lambda s: s[0] < 1000, lambda s: (s[0] + 1, s[1] * 0.99 + 0.01), (0, x))[1], f32(4))
