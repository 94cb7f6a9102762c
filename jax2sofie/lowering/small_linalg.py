"""Linear algebra defined by a JAX function: tridiagonal_solve, tridiagonal, cholesky_update,
symmetric_product and ragged_dot_general.

Each is traced in place from a JAX function of lowered primitives (traced_function.py):

- cholesky_update, symmetric_product and ragged_dot_general: the functions JAX itself computes them
  with on CPU (`_cholesky_update_jax_fn`: one Givens rotation per row; `_symmetric_product_jax_fn`:
  alpha * A A^T + beta * C; `_ragged_dot_general_impl`: each group's rows masked out of a copy of lhs,
  then one batched product), so the generated code does what JAX does, operation for operation.
- tridiagonal_solve: JAX calls LAPACK's gtsv on CPU, Gaussian elimination with partial pivoting (a row
  is swapped with the next when the next's subdiagonal entry is larger in magnitude). It is written
  here as the same elimination in two passes (elimination down the rows, back substitution up:
  straight-line code up to UNROLL_ROWS rows, lax.scan loops beyond), with the same operations in the
  same order as gtsv; a singular system gives NaN everywhere in its solution, as JAX does (it replaces
  the solution when gtsv reports a zero pivot).
- tridiagonal: JAX calls LAPACK's ssytrd on CPU; written here as ssytd2, its unblocked form (one
  Householder reflector per column, LAPACK's sign convention and storage: the reflectors below the
  subdiagonal, or above the superdiagonal for the upper triangle), which ssytrd equals up to rounding.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from ..ir import Value
from .context import LoweringContext
from .registry import register
from .traced_function import inline_function


# systems of up to this many rows are eliminated in straight-line code (a loop in the generated code
# costs more than the few operations of each row); longer ones in a loop
UNROLL_ROWS = 16


def _scan(step, init, xs, reverse=False):
    """lax.scan, unrolled in Python for short sequences (the same operations either way)."""
    length = xs[0].shape[0]
    if length + 1 > UNROLL_ROWS:
        return lax.scan(step, init, xs, reverse=reverse)
    carry, outs = init, []
    for i in (reversed(range(length)) if reverse else range(length)):
        carry, out = step(carry, tuple(x[i] for x in xs))
        outs.append(out)
    if reverse:
        outs.reverse()
    return carry, jax.tree_util.tree_map(lambda *rows: jnp.stack(rows), *outs)


def _gtsv(dl, d, du, b):
    """One system: dl, d, du of shape (m,) (dl[0] and du[m-1] are not read), b of shape (m, k)."""
    m = d.shape[0]
    if m == 1:
        return jnp.where(d[0] == 0, jnp.nan, b / d[0])
    sub, sup = dl[1:], du[:-1]  # LAPACK's DL (A[i+1, i]) and DU (A[i, i+1]), m - 1 each
    sup_next = jnp.concatenate([sup[1:], jnp.zeros((1,), sup.dtype)])  # A[i+1, i+2]; none for the last

    def eliminate(row, xs):
        # row i as elimination left it: (diagonal, first superdiagonal, right-hand side); row i + 1 as given
        di, ui, bi = row
        li, d1, u1, b1 = xs
        keep = jnp.abs(di) >= jnp.abs(li)
        fact_keep = li / di
        fact_swap = di / li
        # no swap: row i stays, row i + 1 loses its subdiagonal entry
        next_keep = (d1 - fact_keep * ui, u1, b1 - fact_keep * bi)
        # swap: row i + 1 becomes row i (with a second superdiagonal entry u1), row i what is left of it
        next_swap = (ui - fact_swap * d1, -fact_swap * u1, bi - fact_swap * b1)
        out = (jnp.where(keep, di, li), jnp.where(keep, ui, d1), jnp.where(keep, 0.0, u1),
               jnp.where(keep, bi, b1))
        carry = (jnp.where(keep, next_keep[0], next_swap[0]), jnp.where(keep, next_keep[1], next_swap[1]),
                 jnp.where(keep, next_keep[2], next_swap[2]))
        return carry, out

    (d_last, _, b_last), (u0, u1, u2, y) = _scan(eliminate, (d[0], sup[0], b[0]), (sub, d[1:], sup_next, b[1:]))
    x_last = b_last / d_last
    x_before = (y[-1] - u1[-1] * x_last) / u0[-1]

    def substitute(carry, row):
        x1, x2 = carry  # x[i + 1], x[i + 2]
        a0, a1, a2, yi = row
        xi = (yi - a1 * x1 - a2 * x2) / a0
        return (xi, x1), xi

    x_end = jnp.stack([x_before, x_last])
    if m == 2:
        x = x_end
    else:
        _, x_rest = _scan(substitute, (x_before, x_last), (u0[:-1], u1[:-1], u2[:-1], y[:-1]), reverse=True)
        x = jnp.concatenate([x_rest, x_end])
    singular = jnp.any(u0 == 0) | (d_last == 0)
    return jnp.where(singular, jnp.nan, x)


def tridiagonal_solve_function(dl, d, du, b):
    solve = _gtsv
    for _ in range(d.ndim - 1):
        solve = jax.vmap(solve)
    return solve(dl, d, du, b)


def _householder(alpha, x):
    """LAPACK slarfg: the reflector I - tau v v^T taking (alpha, x) to (beta, 0), v = (1, x / (alpha - beta)).
    Returns (beta, tau, the tail of v); tau = 0 and beta = alpha when x is zero."""
    xnorm = jnp.sqrt(jnp.sum(x * x)) if x.shape[0] else jnp.zeros((), alpha.dtype)
    trivial = xnorm == 0
    norm = jnp.sqrt(alpha * alpha + xnorm * xnorm)
    beta = jnp.where(alpha >= 0, -norm, norm)
    tau = jnp.where(trivial, 0.0, (beta - alpha) / jnp.where(trivial, 1.0, beta))
    v_tail = jnp.where(trivial, x, x / jnp.where(trivial, 1.0, alpha - beta))
    return jnp.where(trivial, alpha, beta), tau, v_tail


def _symmetric_rank2_update(sym, v, tau):
    """LAPACK ssytd2's update of the trailing block: A - v w^T - w v^T with w = tau A v - tau/2 (w.v) v."""
    w = tau * (sym @ v)
    w = w - 0.5 * tau * jnp.dot(w, v) * v
    return sym - jnp.outer(v, w) - jnp.outer(w, v)


def _sytd2_lower(a):
    """One matrix, its lower triangle reduced (LAPACK ssytd2 with uplo = 'L'): (a, d, e, taus)."""
    n = a.shape[-1]
    d, e, taus = [], [], []
    for i in range(n - 1):
        beta, tau, v_tail = _householder(a[i + 1, i], a[i + 2:, i])
        v = jnp.concatenate([jnp.ones((1,), a.dtype), v_tail])
        block = a[i + 1:, i + 1:]
        updated = _symmetric_rank2_update(jnp.tril(block) + jnp.tril(block, -1).T, v, tau)
        a = a.at[i + 1:, i + 1:].set(jnp.where(jnp.tri(n - i - 1, dtype=bool), updated, block))
        a = a.at[i + 2:, i].set(v_tail)
        a = a.at[i + 1, i].set(beta)
        d.append(a[i, i])
        e.append(beta)
        taus.append(tau)
    d.append(a[n - 1, n - 1])
    return a, jnp.stack(d), jnp.stack(e), jnp.stack(taus)


def _sytd2_upper(a):
    """One matrix, its upper triangle reduced (LAPACK ssytd2 with uplo = 'U', last column first)."""
    n = a.shape[-1]
    d, e, taus = [None] * n, [None] * (n - 1), [None] * (n - 1)
    for i in range(n - 2, -1, -1):
        beta, tau, v_head = _householder(a[i, i + 1], a[:i, i + 1])
        v = jnp.concatenate([v_head, jnp.ones((1,), a.dtype)])
        block = a[:i + 1, :i + 1]
        updated = _symmetric_rank2_update(jnp.triu(block) + jnp.triu(block, 1).T, v, tau)
        a = a.at[:i + 1, :i + 1].set(jnp.where(jnp.tri(i + 1, dtype=bool).T, updated, block))
        a = a.at[:i, i + 1].set(v_head)
        a = a.at[i, i + 1].set(beta)
        d[i + 1], e[i], taus[i] = a[i + 1, i + 1], beta, tau
    d[0] = a[0, 0]
    return a, jnp.stack(d), jnp.stack(e), jnp.stack(taus)


def tridiagonal_function(a, lower):
    reduce = _sytd2_lower if lower else _sytd2_upper
    for _ in range(a.ndim - 2):
        reduce = jax.vmap(reduce)
    return reduce(a)


def _jax_definition(ctx: LoweringContext, primitive: str, module: str, name: str):
    """JAX's own (private) function defining `primitive`, or an error naming what this JAX version lacks."""
    import importlib

    found = getattr(importlib.import_module(module), name, None)
    if found is None:
        raise ctx.error(f"'{primitive}' is lowered through JAX's own definition {module}.{name}, which this JAX "
                        f"version ({jax.__version__}) does not have")
    return found


def _check_float32(ctx: LoweringContext, primitive: str, *values: Value) -> None:
    for value in values:
        if str(value.dtype) != "float32":
            raise ctx.error(f"'{primitive}' on {value.dtype} is not supported (float32)")


@register("tridiagonal_solve")
def tridiagonal_solve(ctx: LoweringContext, dl: Value, d: Value, du: Value, b: Value, *, perturb_singular=False,
                      **_params) -> list[Value]:
    """Gaussian elimination with partial pivoting as LAPACK gtsv (JAX's CPU kernel): straight-line or loops."""
    _check_float32(ctx, "tridiagonal_solve", dl, d, du, b)
    if perturb_singular:
        raise ctx.error("tridiagonal_solve with perturb_singular=True is not supported (LAPACK's perturbation of "
                        "tiny pivots is not reproduced): solve without it")
    return inline_function(ctx, tridiagonal_solve_function, [dl, d, du, b], what="tridiagonal_solve")


@register("cholesky_update")
def cholesky_update(ctx: LoweringContext, r: Value, w: Value, **_params) -> list[Value]:
    """JAX's own definition (the one it runs on CPU): a Givens rotation per row of R."""
    definition = _jax_definition(ctx, "cholesky_update", "jax._src.lax.linalg", "_cholesky_update_jax_fn")
    _check_float32(ctx, "cholesky_update", r, w)
    return inline_function(ctx, definition, [r, w], what="cholesky_update")


@register("symmetric_product")
def symmetric_product(ctx: LoweringContext, a: Value, c: Value, *, alpha, beta, **_params) -> list[Value]:
    """JAX's own definition (the one it runs on CPU): alpha * A A^T + beta * C, a batched Gemm."""
    definition = _jax_definition(ctx, "symmetric_product", "jax._src.lax.linalg", "_symmetric_product_jax_fn")
    _check_float32(ctx, "symmetric_product", a, c)
    return inline_function(ctx, functools.partial(definition, alpha=alpha, beta=beta), [a, c],
                           what="symmetric_product")


@register("ragged_dot_general")
def ragged_dot_general(ctx: LoweringContext, lhs: Value, rhs: Value, group_sizes: Value, *, group_offset=None,
                       **params) -> list[Value]:
    """JAX's own definition (the one it runs on CPU): each group's rows masked, then one batched dot_general.

    The rows of each group (sizes from `group_sizes`, computed at run time) multiply their group's matrix;
    rows past the sum of the sizes are zero, as in JAX."""
    definition = _jax_definition(ctx, "ragged_dot_general", "jax._src.lax.lax", "_ragged_dot_general_impl")
    _check_float32(ctx, "ragged_dot_general", lhs, rhs)
    if group_offset is not None:
        raise ctx.error("ragged_dot_general with a group_offset is not supported (JAX's CPU definition has none)")
    return inline_function(ctx, functools.partial(definition, **params), [lhs, rhs, group_sizes],
                           what="ragged_dot_general")


@register("tridiagonal")
def tridiagonal(ctx: LoweringContext, a: Value, *, lower=True, **_params) -> list[Value]:
    """Householder reduction of a symmetric matrix to tridiagonal form as LAPACK ssytd2 (a, d, e, taus)."""
    _check_float32(ctx, "tridiagonal", a)
    if a.shape[-1] < 2:
        raise ctx.error(f"'tridiagonal' of {a.shape[-1]}x{a.shape[-1]} matrices is not supported (its e and taus "
                        "outputs are empty)")
    return inline_function(ctx, functools.partial(tridiagonal_function, lower=bool(lower)), [a], what="tridiagonal")


# -- catalog cases -------------------------------------------------------------------------------------------
from .catalog import case, f32, i32  # noqa: E402


def _tridiagonal_systems(p, dl, d, du, b):
    """Random diagonals (no diagonal dominance: the elimination swaps rows), several right-hand sides,
    and a diagonally dominant system solved for one right-hand side."""
    return (lax.linalg.tridiagonal_solve(dl, d, du, b),
            lax.linalg.tridiagonal_solve(dl, d + 4.0 * jnp.sign(d), du, b[..., :1]))


def _cholesky_update(p, w):
    x = p["x"]
    r = jnp.linalg.cholesky(x @ x.T + jnp.eye(4), upper=True)
    return lax.linalg.cholesky_update(r, w)


case("tridiagonal_solve", _tridiagonal_systems, f32(3, 6), f32(3, 6), f32(3, 6), f32(3, 6, 2))
case("tridiagonal_solve_two_rows", lambda p, dl, d, du, b: lax.linalg.tridiagonal_solve(dl, d, du, b),
     f32(3, 2), f32(3, 2), f32(3, 2), f32(3, 2, 2))
# longer than UNROLL_ROWS: the elimination runs as loops in the generated code
case("tridiagonal_solve_long",
     lambda p, dl, d, du, b: lax.linalg.tridiagonal_solve(dl, d + 4.0 * jnp.sign(d), du, b),
     f32(2, 40), f32(2, 40), f32(2, 40), f32(2, 40, 3))
case("tridiagonal_solve_single_row", lambda p, dl, d, du, b: lax.linalg.tridiagonal_solve(dl, d, du, b),
     f32(2, 1), f32(2, 1), f32(2, 1), f32(2, 1, 3))
case("cholesky_update", _cholesky_update, f32(4), params={"x": f32(4, 4)}, batch=False)
case("symmetric_product", lambda p, a, c: (lax.linalg.symmetric_product(a, c, alpha=0.5, beta=2.0),
                                          lax.linalg.symmetric_product(a, c, symmetrize_output=True)),
     f32(3, 4, 5), f32(3, 4, 4))


def _ragged_products(p, x, sizes):
    """Two groups whose sizes come from an input (rows past their sum give zeros), and JAX's ragged
    contraction form (lhs ragged in its contracting dimension: one output matrix per group)."""
    group_sizes = jnp.minimum(sizes % 4, 3).astype(jnp.int32)
    return (lax.ragged_dot(x, p["w"], group_sizes),
            lax.ragged_dot_general(x.T, x, group_sizes, lax.RaggedDotDimensionNumbers(
                dot_dimension_numbers=(((1,), (0,)), ((), ())), lhs_ragged_dimensions=(1,), rhs_group_dimensions=())))


case("tridiagonal_reduction", lambda p, x, y: (*lax.linalg.tridiagonal(x, lower=True),
                                               *lax.linalg.tridiagonal(y, lower=False)), f32(3, 5, 5), f32(3, 8, 8))
case("ragged_dot", _ragged_products, f32(7, 3), i32(2), params={"w": f32(2, 3, 4)}, batch=False)
