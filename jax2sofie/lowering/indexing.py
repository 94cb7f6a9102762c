"""Rules for gather and scatter, lowered to the project's J2S_Gather / J2S_Scatter (XLA semantics).

Every form JAX produces goes through the same two operators: embedding lookups (`table[ids]`,
`jnp.take`, Flax Embed), `jnp.take_along_axis` (gather with batching dims), advanced indexing with
constant or input-dependent indices, and `x.at[i].set/add/sub/mul/min/max`.

Out-of-bounds behaviour follows JAX on CPU exactly:
- gather, mode CLIP or PROMISE_IN_BOUNDS: the window start is clamped into the operand;
- gather, mode FILL_OR_DROP: a window that does not fit is all fill_value (default: NaN for floats,
  the most negative value for signed ints, True for bools, as lax.gather);
- scatter, mode CLIP: the start is clamped; FILL_OR_DROP and PROMISE_IN_BOUNDS: the window is dropped.
"""
from __future__ import annotations

import numpy as np
from jax import lax

from ..ir import Value
from .context import LoweringContext, dtype_attr
from .registry import register

_INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))
_DATA_DTYPES = (np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.bool_))


def _mode(ctx: LoweringContext, mode) -> lax.GatherScatterMode:
    parsed = lax.GatherScatterMode.from_any(mode)
    if parsed not in (lax.GatherScatterMode.CLIP, lax.GatherScatterMode.FILL_OR_DROP,
                      lax.GatherScatterMode.PROMISE_IN_BOUNDS):
        raise ctx.error(f"gather/scatter mode {parsed.name} is not supported (CLIP, FILL_OR_DROP, PROMISE_IN_BOUNDS)")
    return parsed


def _check_operands(ctx: LoweringContext, what: str, data: Value, indices: Value) -> Value:
    if np.dtype(data.dtype) not in _DATA_DTYPES:
        raise ctx.error(f"{what} of {data.dtype} values is not supported (float32, int32, int64, bool)")
    if np.dtype(indices.dtype) in _INDEX_DTYPES:
        return indices
    if np.dtype(indices.dtype).kind not in "iub":
        raise ctx.error(f"{what} with {indices.dtype} indices is not supported (integers only)")
    return ctx.cast(indices, np.int64)


def _default_fill_value(dtype: np.dtype) -> float:
    """lax.gather's fill value for mode FILL_OR_DROP when none is given."""
    if dtype.kind == "f":
        return float("nan")
    if dtype.kind == "i":
        return float(np.iinfo(dtype).min)
    if dtype.kind == "u":
        return float(np.iinfo(dtype).max)
    return 1.0  # bool: True


@register("gather")
def gather(ctx: LoweringContext, operand: Value, indices: Value, *, dimension_numbers, slice_sizes, mode,
           fill_value=None, **_params) -> Value:
    """J2S_Gather: XLA gather for any dimension numbers (clamped, or filled for FILL_OR_DROP)."""
    indices = _check_operands(ctx, "gather", operand, indices)
    dn = dimension_numbers
    fill = _mode(ctx, mode) == lax.GatherScatterMode.FILL_OR_DROP
    dtype = np.dtype(operand.dtype)
    # a window that spans a whole operand dim is written -1: the same attribute at every batch size
    # (the dynamic batch compares attributes between two lowerings)
    sizes = [-1 if int(s) == int(n) else int(s) for s, n in zip(slice_sizes, operand.shape)]
    window = [d for d in range(operand.rank)
              if d not in dn.collapsed_slice_dims and d not in dn.operand_batching_dims]
    batch_shape = list(indices.shape[:-1])
    out_shape = []
    for position in range(len(batch_shape) + len(window)):
        if position in dn.offset_dims:
            out_shape.append(int(slice_sizes[window[list(dn.offset_dims).index(position)]]))
        else:
            out_shape.append(batch_shape.pop(0))
    attrs = {}
    if fill:
        value = _default_fill_value(dtype) if fill_value is None else float(np.asarray(fill_value).item())
        # as text: a NaN attribute would differ from itself when the dynamic batch compares lowerings
        attrs["fill_value"] = repr(value)
    return ctx.op("J2S_Gather", [operand, indices], out_shape, dtype, hint="gather", dtype=dtype_attr(dtype),
                  offset_dims=list(dn.offset_dims), collapsed_slice_dims=list(dn.collapsed_slice_dims),
                  start_index_map=list(dn.start_index_map), operand_batching_dims=list(dn.operand_batching_dims),
                  start_indices_batching_dims=list(dn.start_indices_batching_dims), slice_sizes=sizes,
                  mode="fill" if fill else "clip", **attrs)


def _scatter_rule(combine: str):
    def rule(ctx: LoweringContext, operand: Value, indices: Value, updates: Value, *, dimension_numbers, mode,
             update_jaxpr=None, **_params) -> Value:
        if combine == "set" and update_jaxpr is not None:
            raise ctx.error("scatter with a custom update function (x.at[...].apply) is not supported")
        indices = _check_operands(ctx, f"scatter ({combine})", operand, indices)
        if np.dtype(operand.dtype) == np.bool_ and combine != "set":
            raise ctx.error(f"scatter ({combine}) on booleans is not supported (only .set)")
        dn = dimension_numbers
        clip = _mode(ctx, mode) == lax.GatherScatterMode.CLIP
        dtype = np.dtype(operand.dtype)
        return ctx.op("J2S_Scatter", [operand, indices, ctx.cast(updates, dtype)], operand.shape, dtype,
                      hint="scatter", dtype=dtype_attr(dtype), update_window_dims=list(dn.update_window_dims),
                      inserted_window_dims=list(dn.inserted_window_dims),
                      scatter_dims_to_operand_dims=list(dn.scatter_dims_to_operand_dims),
                      operand_batching_dims=list(dn.operand_batching_dims),
                      scatter_indices_batching_dims=list(dn.scatter_indices_batching_dims), combine=combine,
                      mode="clip" if clip else "drop")

    rule.__qualname__ = f"scatter_rule[{combine}]"
    rule.__doc__ = (f"J2S_Scatter (combine={combine}): XLA scatter, out-of-bounds windows dropped "
                    "(clamped for mode CLIP)")
    return rule


for _primitive, _combine in {"scatter": "set", "scatter-add": "add", "scatter-sub": "sub", "scatter-mul": "mul",
                             "scatter-min": "min", "scatter-max": "max"}.items():
    register(_primitive)(_scatter_rule(_combine))


# -- catalog cases -------------------------------------------------------------------------------------------
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from .catalog import boolean, case, f32, i32  # noqa: E402

_ROWS = np.array([3, 0, 3, 1], dtype=np.int32)  # a constant index with a repeat


def _embedding(p, ids):
    # table[ids] with in-range ids, negative ids (wrapped by jnp) and too-large ids (clamped by JAX)
    table = p["table"]
    return table[ids], table[ids - 7], table[ids + 6], jnp.take(table, ids, axis=0)


case("gather_embedding_lookup", _embedding, i32(4, 5), params={"table": f32(11, 6)})


def _take_fill(p, x, ids, row):
    # jnp.take defaults to mode "fill" (NaN out of range); an explicit fill value; mode clip; ints
    t = ids - 2  # -2..5 on an axis of length 5: some out of range, some negative
    return (jnp.take(x, t, axis=1), jnp.take(x, t, axis=-1, mode="fill", fill_value=-1.0),
            jnp.take(x, t, axis=1, mode="clip"), jnp.take(ids, row - 3, axis=1))


case("gather_take_fill_and_clip", _take_fill, f32(3, 5), i32(3, 8), i32(4), batch=False)


def _negative_indices(p, x, ids):
    # numpy's wrap of negative indices folds into J2S_Gather (passes/gather_index_wrap.py); what stays
    # out of range after it (t < -6) is then clamped or filled as before
    t = ids - 9  # -9..-2 on an axis of length 6: -6..-2 wrap into range, -9..-7 stay below it
    user_wrapped = jnp.where(ids < 4, ids - 4, ids)  # a select like jnp's own but adding 4, not 6
    return (jnp.take(x, t, axis=1, mode="clip"), jnp.take(x, t, axis=1, mode="fill", fill_value=-1.0),
            jnp.take(x, t, axis=1), jnp.take(x, user_wrapped, axis=1),
            # two index components: jnp wraps each by its own dim, then concatenates them (not folded)
            p["table"][ids[:, :2] - 2, ids[:, 2:4] - 7])


case("gather_negative_indices", _negative_indices, f32(3, 6), i32(3, 5), params={"table": f32(5, 6)})
case("gather_take_along_axis", lambda p, x, i, j: (jnp.take_along_axis(x, i, axis=1),
                                                   jnp.take_along_axis(x, j - 1, axis=-1)),
     f32(4, 9), i32(4, 3), i32(4, 1))
case("gather_take_along_axis_3d_out_of_range", lambda p, x, i: jnp.take_along_axis(x, i[:, :, None] - 3, axis=2),
     f32(2, 5, 3), i32(2, 5))
case("gather_constant_rows_and_columns", lambda p, x: (x[:, _ROWS], x[_ROWS] + 1.0), f32(5, 4), batch=False)
case("gather_columns_of_batch", lambda p, x: x[:, _ROWS] * 2.0, f32(3, 5))
case("gather_int_and_bool_tables", lambda p, t, m, i, j: (t[i], m[i], jnp.take(m, j, axis=1)),
     i32(8, 3), boolean(8, 3), i32(2, 4), i32(5), batch=False)


def _general_gather(p, x, idx):
    # x[idx[..., 0], idx[..., 1]] on the last two axes (what x[a, b] produces), with clamping
    dn = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(1, 2), start_index_map=(1, 2))
    return lax.gather(x, idx, dn, slice_sizes=(x.shape[0], 1, 1), mode=lax.GatherScatterMode.CLIP)


case("gather_general_two_index_dims", _general_gather, f32(3, 4, 5), i32(6, 2), batch=False)


def _windowed_gather(p, x, idx):
    # windows of 2x3 at input-dependent starts (clamped), and filled when they do not fit
    dn = lax.GatherDimensionNumbers(offset_dims=(1, 2), collapsed_slice_dims=(), start_index_map=(0, 1))
    return (lax.gather(x, idx, dn, slice_sizes=(2, 3), mode=lax.GatherScatterMode.CLIP),
            lax.gather(x, idx, dn, slice_sizes=(2, 3), mode=lax.GatherScatterMode.FILL_OR_DROP, fill_value=7.0))


case("gather_windows", _windowed_gather, f32(5, 6), i32(4, 2), batch=False)
case("gather_scalar_result", lambda p, x: lax.gather(
    x, jnp.array([2, 1], jnp.int32), lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0, 1),
                                                                start_index_map=(0, 1)), slice_sizes=(1, 1)) * x,
     f32(4, 3), batch=False)


def _scatter_set(p, x, v):
    # constant indices with an out-of-range one (dropped) and a negative one (wrapped by jnp)
    return x.at[jnp.array([1, -1, 9])].set(v), x.at[_ROWS].set(-1.0)


case("scatter_set_constant_indices", _scatter_set, f32(4, 3), f32(3, 3), batch=False)


def _scatter_combine(p, x, i, u):
    # input-dependent indices with repeats: add accumulates, the others combine in order
    j = i - 1  # -1..6 on an axis of length 5
    return (x.at[j].add(u), x.at[j].subtract(u), x.at[j].mul(u), x.at[j].min(u), x.at[j].max(u), x.at[j - 2].add(u),
            x.at[j + 2].add(u, mode="clip"), x.at[j + 2].set(u, mode="drop"))


case("scatter_add_mul_min_max", _scatter_combine, f32(5, 3), i32(6), f32(6, 3), batch=False)
case("scatter_into_columns_of_batch", lambda p, x, u, v: (x.at[:, _ROWS[:2]].set(u), x.at[:, 1].add(v)),
     f32(3, 5), f32(3, 2), f32(3))


def _scatter_batched(p, x, i, u):
    # what jnp.put_along_axis(x, i, u, axis=1) / vmapped x.at[i].add(u) produce: a batching dim
    dn = lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(1,),
                                     scatter_dims_to_operand_dims=(1,), operand_batching_dims=(0,),
                                     scatter_indices_batching_dims=(0,))
    return lax.scatter_add(x, i[:, :, None], u, dn, mode=lax.GatherScatterMode.FILL_OR_DROP)


case("scatter_add_batching_dims", _scatter_batched, f32(3, 6), i32(3, 4), f32(3, 4))
case("scatter_scalar_update", lambda p, x, t: (x.at[2].set(x[0] * 3.0), t.at[1].add(t[0])), f32(4), i32(3),
     batch=False)
case("scatter_int_and_bool", lambda p, t, m, i, j: (t.at[i].add(3), m.at[i].set(True), t.at[j].max(i)),
     i32(6), boolean(6), i32(4), i32(4), batch=False)
case("scatter_segment_sum_into_zeros", lambda p, x, s: (jax.ops.segment_sum(x, s, num_segments=5),
                                                        jax.ops.segment_max(x, s, num_segments=9)),
     f32(7, 3), i32(7), batch=False)
case("gather_two_index_arrays", lambda p, x, a, b: (x[a, b], x[a[:, None], b[None]], x.at[a, b].add(1.0)),
     f32(5, 4, 3), i32(5), i32(5), batch=False)
