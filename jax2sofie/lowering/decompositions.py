"""Matrix decompositions and solvers: Cholesky, triangular solves, LU, QR (also column-pivoted), eigh, SVD,
the Hessenberg reduction and the real Schur decomposition.

Each primitive goes to a project-owned operator of csrc/owned/linalg.hpp, which loops over all
leading (batch) axes and works on the static trailing matrix; the arithmetic is done in double, so
the results stay within float rounding of JAX's on well-conditioned inputs. jnp.linalg.det, slogdet,
inv and solve trace to `lu` plus ordinary primitives (solve through custom_linear_solve, inlined).

Eigenvectors and singular vectors are unique only up to sign: ours follow one convention (the
largest-magnitude component of each eigenvector / left singular vector is positive), LAPACK's none,
so a comparison with JAX must use a sign-invariant function of them (the catalog cases below).
QR is unique once the signs of R's diagonal are fixed; ours are LAPACK's (geqrf's reflectors), and
so is the column order of pivoted QR (geqp3's) and the Hessenberg reduction (gehrd's). The real
Schur form is not unique (the order of its blocks): see the schur rule.
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext
from .registry import register


def _check_matrices(ctx: LoweringContext, primitive: str, *operands: Value, square: bool = False) -> None:
    """float32 stacks of matrices (rank >= 2), square ones where asked."""
    for x in operands:
        if x.dtype != np.float32:
            raise ctx.error(f"{primitive} is lowered for float32 only, got {x.dtype}")
        if x.rank < 2:
            raise ctx.error(f"{primitive} needs matrices (rank >= 2), got shape {list(x.shape)}")
    if square and operands[0].shape[-1] != operands[0].shape[-2]:
        raise ctx.error(f"{primitive} needs square matrices, got shape {list(operands[0].shape)}")


def _full_subset(subset_by_index, k: int) -> bool:
    """Whether subset_by_index asks for all k eigen/singular values (None or (0, k))."""
    return subset_by_index is None or tuple(subset_by_index) == (0, k)


@register("cholesky")
def cholesky(ctx: LoweringContext, a: Value, **_params) -> Value:
    """Project-owned J2S_Cholesky (lower factor from the lower triangle; NaN if not positive definite)."""
    _check_matrices(ctx, "cholesky", a, square=True)
    return ctx.op("J2S_Cholesky", [a], a.shape, a.dtype, hint="cholesky", dtype="float32")


@register("triangular_solve")
def triangular_solve(ctx: LoweringContext, a: Value, b: Value, *, left_side=False, lower=False, transpose_a=False,
                     conjugate_a=False, unit_diagonal=False, **_params) -> Value:
    """Project-owned J2S_TriangularSolve, every combination of left_side, lower, transpose_a and
    unit_diagonal (conjugate_a changes nothing on real matrices)."""
    _check_matrices(ctx, "triangular_solve", a, b, square=True)
    if a.shape[:-2] != b.shape[:-2]:
        raise ctx.error(f"triangular_solve of A {list(a.shape)} and B {list(b.shape)}: the batch dimensions differ")
    return ctx.op("J2S_TriangularSolve", [a, b], b.shape, b.dtype, hint="triangular_solve", dtype="float32",
                  left_side=int(bool(left_side)), lower=int(bool(lower)), transpose_a=int(bool(transpose_a)),
                  unit_diagonal=int(bool(unit_diagonal)))


@register("lu")
def lu(ctx: LoweringContext, a: Value, **_params) -> list[Value]:
    """Project-owned J2S_Lu: partial pivoting as LAPACK getrf (lu, int32 pivots and permutation)."""
    _check_matrices(ctx, "lu", a)
    m, n = a.shape[-2:]
    batch = a.shape[:-2]
    return ctx.builder.op_multi("J2S_Lu", [a], [(a.shape, a.dtype), (batch + (min(m, n),), np.int32),
                                                (batch + (m,), np.int32)], hint="lu", dtype="float32")


@register("lu_pivots_to_permutation")
def lu_pivots_to_permutation(ctx: LoweringContext, pivots: Value, *, permutation_size, **_params) -> Value:
    """Project-owned J2S_LuPivotsToPermutation (the swaps applied in order to 0, 1, ...)."""
    if pivots.dtype != np.int32 or pivots.rank < 1:
        raise ctx.error(f"lu_pivots_to_permutation needs int32 pivots of rank >= 1, got {pivots.dtype} "
                        f"{list(pivots.shape)}")
    shape = pivots.shape[:-1] + (int(permutation_size),)
    return ctx.op("J2S_LuPivotsToPermutation", [pivots], shape, np.int32, hint="permutation", dtype="int32",
                  permutation_size=int(permutation_size))


@register("qr")
def qr(ctx: LoweringContext, a: Value, *, pivoting=False, full_matrices=True, **_params) -> list[Value]:
    """Project-owned J2S_Qr: Householder QR with LAPACK's signs (geqrf then orgqr), reduced or full, or pivoted.

    With pivoting, LAPACK geqp3's column choice (as JAX's qr(pivoting=True)) and the 0-based
    permutation as a third output."""
    _check_matrices(ctx, "qr", a)
    m, n = a.shape[-2:]
    k = m if full_matrices else min(m, n)
    batch = a.shape[:-2]
    outputs = [(batch + (m, k), a.dtype), (batch + (k, n), a.dtype)]
    if pivoting:
        outputs.append((batch + (n,), np.int32))
    return ctx.builder.op_multi("J2S_Qr", [a], outputs, hint="qr", dtype="float32",
                                full_matrices=int(bool(full_matrices)), pivoting=int(bool(pivoting)))


@register("geqrf")
def geqrf(ctx: LoweringContext, a: Value, **_params) -> list[Value]:
    """Project-owned J2S_Geqrf: LAPACK's compact Householder QR (reflectors below R, taus)."""
    _check_matrices(ctx, "geqrf", a)
    m, n = a.shape[-2:]
    return ctx.builder.op_multi("J2S_Geqrf", [a], [(a.shape, a.dtype), (a.shape[:-2] + (min(m, n),), a.dtype)],
                                hint="geqrf", dtype="float32")


@register("geqp3")
def geqp3(ctx: LoweringContext, a: Value, jpvt: Value, **_params) -> list[Value]:
    """Project-owned J2S_Geqp3: LAPACK's column-pivoted Householder QR (reflectors below R, 1-based jpvt, taus)."""
    _check_matrices(ctx, "geqp3", a)
    m, n = a.shape[-2:]
    if jpvt.dtype != np.int32 or jpvt.shape != a.shape[:-2] + (n,):
        raise ctx.error(f"geqp3 needs an int32 jpvt of shape {list(a.shape[:-2] + (n,))} for A {list(a.shape)}, "
                        f"got {jpvt.dtype} {list(jpvt.shape)}")
    return ctx.builder.op_multi("J2S_Geqp3", [a, jpvt], [(a.shape, a.dtype), (jpvt.shape, np.int32),
                                                         (a.shape[:-2] + (min(m, n),), a.dtype)],
                                hint="geqp3", dtype="float32")


@register("hessenberg")
def hessenberg(ctx: LoweringContext, a: Value, **_params) -> list[Value]:
    """Project-owned J2S_Hessenberg: Householder reduction as LAPACK gehrd (reflectors below the subdiagonal, taus)."""
    _check_matrices(ctx, "hessenberg", a, square=True)
    n = a.shape[-1]
    if n < 2:
        raise ctx.error(f"hessenberg of {n}x{n} matrices is not supported (its taus output is empty)")
    return ctx.builder.op_multi("J2S_Hessenberg", [a], [(a.shape, a.dtype), (a.shape[:-2] + (n - 1,), a.dtype)],
                                hint="hessenberg", dtype="float32")


@register("schur")
def schur(ctx: LoweringContext, a: Value, *, compute_schur_vectors=True, sort_eig_vals=False, **_params) -> list[Value]:
    """Project-owned J2S_Schur: real Schur form by Hessenberg reduction and Francis double-shift QR (LAPACK slahqr).

    Guaranteed: Z orthogonal and Z T Z^T = A to float rounding; T quasi-upper-triangular, zero below
    its subdiagonal, a 1 x 1 block per real eigenvalue and a 2 x 2 block [[a, b], [c, a]] with b c < 0
    per complex pair a +- i sqrt(-b c) (LAPACK's standardisation), so T holds the eigenvalues of A.
    Not guaranteed: the order of the blocks along T's diagonal, and with it Z and T element by element.
    It is the order in which the iterations deflate the eigenvalues, which depends on rounding: ours
    iterate in double, JAX's LAPACK in float32 (LAPACK's own float32 and float64 results differ in
    it), so compare invariants (the catalog cases below), not the entries."""
    _check_matrices(ctx, "schur", a, square=True)
    if sort_eig_vals:
        raise ctx.error("schur with sort_eig_vals=True is not supported (JAX's CPU backend has no sorting either)")
    outputs = [(a.shape, a.dtype)] * (2 if compute_schur_vectors else 1)
    return ctx.builder.op_multi("J2S_Schur", [a], outputs, hint="schur", dtype="float32",
                                compute_schur_vectors=int(bool(compute_schur_vectors)))


@register("householder_product")
def householder_product(ctx: LoweringContext, a: Value, taus: Value, **_params) -> Value:
    """Project-owned J2S_HouseholderProduct: Q's first columns from geqrf's reflectors (LAPACK orgqr)."""
    _check_matrices(ctx, "householder_product", a)
    if taus.dtype != np.float32 or taus.shape[:-1] != a.shape[:-2] or taus.shape[-1] > a.shape[-1]:
        raise ctx.error(f"householder_product of A {list(a.shape)} with taus {list(taus.shape)} {taus.dtype}")
    return ctx.op("J2S_HouseholderProduct", [a, taus], a.shape, a.dtype, hint="householder_product", dtype="float32")


@register("ormqr")
def ormqr(ctx: LoweringContext, a: Value, taus: Value, c: Value, *, left=True, transpose=False, **_params) -> Value:
    """Project-owned J2S_Ormqr: C multiplied by geqrf's Q or Q^T, from the left or right (LAPACK ormqr)."""
    _check_matrices(ctx, "ormqr", a, c)
    if taus.dtype != np.float32 or taus.shape[:-1] != a.shape[:-2] or c.shape[:-2] != a.shape[:-2]:
        raise ctx.error(f"ormqr of A {list(a.shape)}, taus {list(taus.shape)} and C {list(c.shape)}: "
                        "the batch dimensions differ")
    return ctx.op("J2S_Ormqr", [a, taus, c], c.shape, c.dtype, hint="ormqr", dtype="float32",
                  left=int(bool(left)), transpose=int(bool(transpose)))


@register("eigh")
def eigh(ctx: LoweringContext, a: Value, *, lower=True, subset_by_index=None, **_params) -> list[Value]:
    """Project-owned J2S_Eigh: Jacobi rotations; eigenvalues ascending, eigenvector signs by convention."""
    _check_matrices(ctx, "eigh", a, square=True)
    n = a.shape[-1]
    if not _full_subset(subset_by_index, n):
        raise ctx.error(f"eigh with subset_by_index={subset_by_index} is not supported (JAX's CPU backend has "
                        "none either): compute all eigenvalues and slice")
    return ctx.builder.op_multi("J2S_Eigh", [a], [(a.shape, a.dtype), (a.shape[:-1], a.dtype)], hint="eigh",
                                dtype="float32", lower=int(bool(lower)))


@register("svd")
def svd(ctx: LoweringContext, a: Value, *, full_matrices=True, compute_uv=True, subset_by_index=None,
        **_params) -> list[Value]:
    """Project-owned J2S_Svd: one-sided Jacobi; singular values descending, vector signs by convention."""
    _check_matrices(ctx, "svd", a)
    m, n = a.shape[-2:]
    k = min(m, n)
    if not _full_subset(subset_by_index, k):
        raise ctx.error(f"svd with subset_by_index={subset_by_index} is not supported: compute all singular "
                        "values and slice")
    batch = a.shape[:-2]
    outputs = [(batch + (k,), a.dtype)]
    if compute_uv:
        outputs += [(batch + (m, m if full_matrices else k), a.dtype),
                    (batch + (n if full_matrices else k, n), a.dtype)]
    return ctx.builder.op_multi("J2S_Svd", [a], outputs, hint="svd", dtype="float32",
                                full_matrices=int(bool(full_matrices)), compute_uv=int(bool(compute_uv)))


@register("custom_linear_solve")
def custom_linear_solve(ctx: LoweringContext, *args: Value, const_lengths, jaxprs, **_params) -> list[Value]:
    """Inlined: its solve jaxpr on the right-hand side (jnp.linalg.solve: LU and triangular solves);
    the matvec and transpose solves serve only derivatives."""
    # the operands: the consts of matvec, vecmat, solve and transpose_solve, in that order, then b
    solve_start = const_lengths.matvec + const_lengths.vecmat
    solve_consts = args[solve_start:solve_start + const_lengths.solve]
    b = args[sum(const_lengths):]
    return ctx.inline(jaxprs.solve, [*solve_consts, *b])


# -- catalog cases -------------------------------------------------------------------------------------------
# Inputs are well-conditioned matrices built inside the functions from normal inputs, so that JAX's
# float32 LAPACK results are accurate to the tolerance. Eigen- and singular vectors are compared
# after _canonical_signs, which gives JAX's our sign convention (a sign-invariant function of them:
# LAPACK's signs are arbitrary); where even that is not unique (the extra columns of a full SVD's U,
# any orthonormal basis of the complement) the projector onto their span is compared.
import jax.numpy as jnp  # noqa: E402
import jax.scipy.linalg as jsl  # noqa: E402
from jax import lax  # noqa: E402
# geqrf and geqp3 have no public wrappers; householder_product and ormqr (public) take their outputs
from jax._src.lax.linalg import geqp3 as _geqp3  # noqa: E402
from jax._src.lax.linalg import geqrf as _geqrf  # noqa: E402

from .catalog import case, f32  # noqa: E402


def _transpose(x):
    return jnp.swapaxes(x, -1, -2)


def _spd(x):
    """A symmetric positive definite matrix from a square normal x: eigenvalues in about [1, 5]."""
    n = x.shape[-1]
    return x @ _transpose(x) / n + jnp.eye(n, dtype=x.dtype)


def _pivoted(x):
    """A well-conditioned matrix (I plus small noise) with its rows reversed: partial pivoting must
    swap rows back, so the pivots and the determinant's sign are exercised."""
    n = x.shape[-1]
    return (jnp.eye(n, dtype=x.dtype) + 0.4 / np.sqrt(n) * x)[..., ::-1, :]


def _repeated_eigenvalue(x):
    """Q diag(1, 2, 2, 3) Q^T with Q orthogonal (from the QR of x): eigenvalue 2 twice."""
    q = jnp.linalg.qr(x)[0]
    return (q * jnp.asarray([1.0, 2.0, 2.0, 3.0])) @ _transpose(q)


def _canonical_signs(v, *others):
    """v's columns with the sign that makes each one's largest-magnitude component positive (the
    convention of our eigh and svd); `others` (V^T of an SVD) get the same sign per row."""
    largest = jnp.argmax(jnp.abs(v), axis=-2, keepdims=True)
    sign = jnp.sign(jnp.take_along_axis(v, largest, axis=-2))
    return (v * sign,) + tuple(o * _transpose(sign) for o in others)


def _triangular_solves(a, b_left, b_right):
    """lax.linalg.triangular_solve with every combination of its flags."""
    a = a + 3.0 * jnp.eye(a.shape[-1], dtype=a.dtype)  # diagonal well away from zero
    results = []
    for left_side, b in ((True, b_left), (False, b_right)):
        for lower in (True, False):
            for transpose_a in (True, False):
                for unit_diagonal in (True, False):
                    results.append(lax.linalg.triangular_solve(
                        a * (0.3 if unit_diagonal else 1.0), b, left_side=left_side, lower=lower,
                        transpose_a=transpose_a, unit_diagonal=unit_diagonal))
    results.append(lax.linalg.triangular_solve(a, b_left, left_side=True, lower=True, conjugate_a=True))
    return results


case("cholesky_spd", lambda p, x: jnp.linalg.cholesky(_spd(x)), f32(3, 5, 5))
case("cholesky_16x16_upper", lambda p, x: (jnp.linalg.cholesky(_spd(x), upper=True), jsl.cholesky(_spd(x))),
     f32(2, 16, 16))
# a matrix that is not positive definite: NaN, like LAPACK's potrf as JAX returns it
case("cholesky_not_positive_definite", lambda p, x: jnp.linalg.cholesky(_spd(x) - 10.0 * jnp.eye(3)), f32(2, 3, 3))
case("cho_solve", lambda p, x, b: jsl.cho_solve(jsl.cho_factor(_spd(x), lower=True), b), f32(3, 4, 4), f32(3, 4, 2))
case("triangular_solve_all_flags", lambda p, a, b, c: _triangular_solves(a, b, c), f32(2, 5, 5), f32(2, 5, 3),
     f32(2, 3, 5))
# the physics pattern: a batch of vectors whitened by a covariance parameter's Cholesky factor
case("mahalanobis_distance", lambda p, x: jnp.sum(jsl.solve_triangular(jnp.linalg.cholesky(_spd(p["c"])), x.T,
                                                                        lower=True) ** 2, axis=0),
     f32(6, 4), params={"c": f32(4, 4)})
case("lu_factor", lambda p, x: jsl.lu_factor(_pivoted(x)), f32(3, 6, 6))
case("lu_all_outputs_random", lambda p, x: lax.linalg.lu(x), f32(2, 5, 5))
case("lu_rectangular", lambda p, x, y: lax.linalg.lu(x) + lax.linalg.lu(y), f32(2, 6, 4), f32(2, 3, 5))
case("lu_scipy_plu", lambda p, x: jsl.lu(_pivoted(x)), f32(5, 5), batch=False)
case("lu_pivots_to_permutation", lambda p, x: lax.linalg.lu_pivots_to_permutation(lax.linalg.lu(x)[1], 7),
     f32(2, 5, 5))
case("det_slogdet", lambda p, x, y: (jnp.linalg.det(_pivoted(x)), *jnp.linalg.slogdet(_pivoted(y))),
     f32(3, 4, 4), f32(3, 16, 16))
case("inv", lambda p, x: jnp.linalg.inv(_pivoted(x)), f32(3, 5, 5))
case("solve", lambda p, x, b: jnp.linalg.solve(_pivoted(x), b), f32(3, 6, 6), f32(3, 6, 2))
case("solve_vector", lambda p, x, b: jnp.linalg.solve(_pivoted(x), b), f32(4, 4), f32(4), batch=False)
case("eigh_spd", lambda p, x: (lambda w, v: (w, *_canonical_signs(v), (v * w[..., None, :]) @ _transpose(v)))(
         *jnp.linalg.eigh(_spd(x))), f32(3, 5, 5))
# lower=False reads the upper triangle only (the input is not symmetric)
case("eigh_upper_triangle", lambda p, x: (lambda v, w: (w, *_canonical_signs(v)))(
         *lax.linalg.eigh(_spd(x) + jnp.tril(x, -1), lower=False, symmetrize_input=False)), f32(2, 4, 4))
case("eigvalsh_16x16", lambda p, x: jnp.linalg.eigvalsh(_spd(x)), f32(2, 16, 16))
case("qr_reduced_tall_and_wide", lambda p, x, y: jnp.linalg.qr(x) + jnp.linalg.qr(y), f32(2, 6, 4), f32(2, 3, 5))
case("qr_complete", lambda p, x, y: jnp.linalg.qr(x, mode="complete") + jnp.linalg.qr(y, mode="complete"),
     f32(2, 6, 4), f32(2, 4, 4))
case("qr_r_only_16x16", lambda p, x: jnp.linalg.qr(x, mode="r"), f32(2, 16, 16))
case("householder_parts", lambda p, x, c, d: (lambda a, taus: (
         a, taus, lax.linalg.householder_product(a, taus),
         *(lax.linalg.ormqr(a, taus, c, left=True, transpose=t) for t in (False, True)),
         *(lax.linalg.ormqr(a, taus, d, left=False, transpose=t) for t in (False, True))))(*_geqrf(x)),
     f32(2, 5, 3), f32(2, 5, 2), f32(2, 4, 5))
case("svd_square", lambda p, x: (lambda u, s, vt: (s, *_canonical_signs(u, vt), (u * s[..., None, :]) @ vt))(
         *jnp.linalg.svd(x)), f32(3, 5, 5))
case("svd_reduced_tall_and_wide", lambda p, x, y: tuple(
         (lambda u, s, vt: (s, *_canonical_signs(u, vt)))(*jnp.linalg.svd(a, full_matrices=False)) for a in (x, y)),
     f32(2, 6, 4), f32(2, 3, 5))
case("svd_full_tall_and_wide", lambda p, x, y: (
         (lambda u, s, vt: (s, *_canonical_signs(u[..., :4], vt), u[..., 4:] @ _transpose(u[..., 4:])))(
             *jnp.linalg.svd(x)),
         (lambda u, s, vt: (s, *_canonical_signs(u, vt[..., :3, :]), _transpose(vt[..., 3:, :]) @ vt[..., 3:, :]))(
             *jnp.linalg.svd(y))),
     f32(2, 6, 4), f32(2, 3, 5))
# rank-deficient (a repeated column): a zero singular value, whose U column is completed to an
# orthonormal basis (any such column is right: U^T U and the product U S V^T are compared)
case("svd_rank_deficient", lambda p, x: (lambda u, s, vt: (s, _transpose(u) @ u, (u * s[..., None, :]) @ vt))(
         *jnp.linalg.svd(jnp.concatenate([x, x[..., :1]], axis=-1), full_matrices=False)), f32(2, 5, 3))
# a repeated eigenvalue: its eigenvectors are any basis of a plane (V^T V and V diag(w) V^T compared)
case("eigh_repeated_eigenvalue", lambda p, x: (
         lambda w, v: (w, _transpose(v) @ v, (v * w[..., None, :]) @ _transpose(v)))(
         *jnp.linalg.eigh(_repeated_eigenvalue(x))), f32(2, 4, 4))
case("svd_values_16x16_and_pinv", lambda p, x, y: (jnp.linalg.svd(x, compute_uv=False), jnp.linalg.pinv(y)),
     f32(2, 16, 16), f32(2, 4, 3))
# column-pivoted QR: the pivot order (int32, exact) and Q, R element by element (geqp3's choice is
# unique on inputs whose column norms are not tied)
case("qr_pivoted_tall_and_wide", lambda p, x, y: (*jsl.qr(x, pivoting=True), *jsl.qr(x, pivoting=True, mode="economic"),
                                                  *jsl.qr(y, pivoting=True), *jsl.qr(y, pivoting=True, mode="r")),
     f32(2, 6, 4), f32(2, 3, 5))
case("qr_pivoted_3x3_and_16x16", lambda p, x, y: (*jsl.qr(x, pivoting=True), *jsl.qr(y, pivoting=True)),
     f32(2, 3, 3), f32(2, 16, 16))


def _fixed_columns(x):
    """geqp3 with some columns marked in jpvt (moved to the front and not pivoted): those whose first
    entry is positive, so the set differs between the matrices of the batch."""
    jpvt = (x[..., 0, :] > 0).astype(jnp.int32)
    a, jpvt_out, taus = _geqp3(x, jpvt)
    return a, jpvt_out, taus, lax.linalg.householder_product(a, taus)


case("geqp3_fixed_columns", lambda p, x: _fixed_columns(x), f32(4, 7, 5))
# lax.linalg.hessenberg's compact form (reflectors below the subdiagonal, taus) and scipy's H and Q
case("hessenberg", lambda p, x, y: (*lax.linalg.hessenberg(x), *jsl.hessenberg(x, calc_q=True),
                                    *lax.linalg.hessenberg(y)), f32(3, 6, 6), f32(3, 3, 3))
case("hessenberg_16x16", lambda p, x: jsl.hessenberg(x, calc_q=True), f32(2, 16, 16))


def _schur_invariants(x, vectors=True):
    """What a real Schur decomposition determines (see the rule's docstring): the matrix Z T Z^T and
    Z^T Z, T's entries below its subdiagonal (zero), its sorted diagonal (the eigenvalues' real parts)
    and the sorted products of its sub- and superdiagonal entries (minus the squared imaginary parts:
    zero for a real eigenvalue). The block order, and Z and T entry by entry, are not compared."""
    if not vectors:
        t = lax.linalg.schur(x, compute_schur_vectors=False)[0]
        z = None
    else:
        t, z = jsl.schur(x)
    products = jnp.diagonal(t, -1, axis1=-2, axis2=-1) * jnp.diagonal(t, 1, axis1=-2, axis2=-1)
    result = (jnp.tril(t, -2), jnp.sort(jnp.diagonal(t, axis1=-2, axis2=-1), axis=-1), jnp.sort(products, axis=-1))
    if z is not None:
        result += (z @ t @ _transpose(z), _transpose(z) @ z)
    return result


# random matrices (complex pairs and real eigenvalues), a symmetric one (all real: T diagonal), 3x3 to 16x16
case("schur_real", lambda p, x, y: (*_schur_invariants(x), *_schur_invariants(_spd(y)),
                                    *_schur_invariants(x, vectors=False)), f32(3, 5, 5), f32(3, 4, 4))
case("schur_3x3_and_16x16", lambda p, x, y: (*_schur_invariants(x), *_schur_invariants(y)),
     f32(2, 3, 3), f32(2, 16, 16))
