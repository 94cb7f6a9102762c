"""Rules for the special functions: lgamma, digamma, polygamma, zeta, bessel_i0e, bessel_i1e, igamma,
igammac, igamma_grad_a and regularized_incomplete_beta (lax.betainc). erf_inv is in the expression table
(expressions.py) and calls a function of the same family.

Each lowers to one J2S_Elementwise node whose expression calls a C++ function that the generated header
defines once, only when the model uses it (csrc/owned/special_functions.hpp). The functions of a fixed
number of steps (lgamma, digamma, polygamma, zeta, the Bessel functions, erf_inv) are float code without
libm calls and vectorise in the element loop; the incomplete gamma and beta functions iterate until they
converge and are scalar code in double.

The errors below were measured with g++ -O2 on float32 inputs over a dense grid of each domain: "vs scipy"
is the largest error against scipy.special in float64 on the same float32 inputs, "vs JAX" against jax.lax
on the CPU; "a/b" is the largest relative error where |value| >= 0.1 / the largest absolute error below.
tests/test_special_functions.py checks them against scipy through the whole pipeline.

erf_inv (in expressions.py) calls j2s_erf_inv: M. Giles' polynomials as XLA's, but with 1 - x^2 formed as
(1 - x)(1 + x), exact near +-1 where XLA's log1p(-x * x) has lost the low bits of 1 - x^2 (which the
previous lowering did too). Over |x| <= 0.999: 2.6e-7 vs scipy (JAX: 1.1e-6); for 1 - |x| from 6e-8 to
1e-3: 2.8e-7 vs scipy (JAX: 5.8e-6).
"""
from __future__ import annotations

import numpy as np

from ..ir import Value
from .context import LoweringContext
from .elementwise_math import elementwise
from .registry import register


def _call(ctx: LoweringContext, primitive: str, function: str, *inputs: Value) -> Value:
    """One J2S_Elementwise node computing `function(x0, x1, ...)` over the inputs (broadcast like numpy)."""
    for value in inputs:
        dtype = np.dtype(value.dtype).name
        if dtype != "float32":
            raise ctx.error(f"'{primitive}' on {dtype} is not supported (supported: float32)")
    return elementwise(ctx, lambda b, args, dtype, params: f"{function}({', '.join(args)})", inputs,
                       inputs[0].dtype)


@register("lgamma")
def lgamma(ctx: LoweringContext, x: Value) -> Value:
    """J2S_Elementwise `j2s_lgamma(x)` (float32): Lanczos approximation as XLA's, vectorised.

    Domain checked: x in (0, 30] and, at least 1e-3 from the poles, (-7.5, 0). Error vs scipy: 2.3e-5 /
    2.7e-6 (the float32 Lanczos sum: JAX's own error is 2.7e-5 / 3.3e-6); vs JAX: 1.8e-5 / 1.9e-6.
    Closer to a pole the value follows -log|x - n| and is as exact as x - n; +inf at the poles (0, the
    negative integers) and at +-inf. A subnormal x gives its true value (JAX, flushing it to 0: inf).
    """
    return _call(ctx, "lgamma", "j2s_lgamma", x)


@register("digamma")
def digamma(ctx: LoweringContext, x: Value) -> Value:
    """J2S_Elementwise `j2s_digamma(x)` (float32): Lanczos approximation as XLA's, vectorised.

    Domain checked: x in (0, 30] and, at least 1e-3 from the poles, (-7.5, 0). Error vs scipy: 5.6e-6 /
    7.3e-7 (JAX's own: 9.3e-6 / 1.2e-6); vs JAX: 8.2e-6 / 1.1e-6. NaN at 0, at the negative integers and at
    -inf (as JAX); near a pole the value is as exact as the distance to it.
    """
    return _call(ctx, "digamma", "j2s_digamma", x)


@register("polygamma")
def polygamma(ctx: LoweringContext, n: Value, x: Value) -> Value:
    """J2S_Elementwise `j2s_polygamma(n, x)` (float32): digamma for n = 0, else (-1)^(n+1) n! zeta(n+1, x).

    Domain checked: n in 1..7, x in (0.5, 20] (n = 0: digamma). Error vs scipy: 2.4e-6 / 2.1e-7; vs JAX:
    2.6e-6 / 2.3e-7. NaN where n is not a non-negative integer (as JAX).
    """
    return _call(ctx, "polygamma", "j2s_polygamma", n, x)


@register("zeta")
def zeta(ctx: LoweringContext, s: Value, q: Value) -> Value:
    """J2S_Elementwise `j2s_zeta(s, q)` (float32): Hurwitz zeta by Euler-Maclaurin summation, vectorised.

    Domain checked: s in (1, 10], q in (0.5, 15]. Error vs scipy: 5.6e-7 / 4.2e-8; vs JAX: 5.8e-7 / 3.7e-8.
    Near s = 1 the value grows like 1/(s - 1). Special values as JAX: +inf at s = 1, NaN for s < 1; for
    q <= 0 NaN unless s is an integer, and at the integers q <= 0 +inf for an even s, else NaN.
    """
    return _call(ctx, "zeta", "j2s_zeta", s, q)


@register("bessel_i0e")
def bessel_i0e(ctx: LoweringContext, x: Value) -> Value:
    """J2S_Elementwise `j2s_bessel_i0e(x)` (float32): Chebyshev series (Cephes' split at |x| = 8), vectorised.

    Domain: all floats (checked over [-40, 40]). Error vs scipy: 3.7e-7 / 2.1e-8; vs JAX: 4.4e-7 / 2.2e-8.
    """
    return _call(ctx, "bessel_i0e", "j2s_bessel_i0e", x)


@register("bessel_i1e")
def bessel_i1e(ctx: LoweringContext, x: Value) -> Value:
    """J2S_Elementwise `j2s_bessel_i1e(x)` (float32): Chebyshev series (Cephes' split at |x| = 8), vectorised.

    Domain: all floats (checked over [-40, 40]). Error vs scipy: 1.2e-6 / 2.7e-8; vs JAX: 9.8e-7 / 3e-8.
    """
    return _call(ctx, "bessel_i1e", "j2s_bessel_i1e", x)


@register("igamma")
def igamma(ctx: LoweringContext, a: Value, x: Value) -> Value:
    """J2S_Elementwise `j2s_igamma(a, x)` (float32 in, double inside): series or continued fraction.

    Domain checked: a in (0.1, 20], x in (0, 40]. Error vs scipy: 5.9e-8 / 3.7e-9 (the float32 rounding of
    the result); vs JAX: 1.1e-5 / 1e-6 (JAX's own error in float32). Special values as lax.igamma (NaN for
    a < 0, x < 0 or a = x = 0), except the limits P(0, x) = 1 and P(inf, x) = 0 where JAX gives NaN (a = 0
    below x = 1, a = inf from x = 1 on). Scalar code: it iterates until it converges.
    """
    return _call(ctx, "igamma", "j2s_igamma", a, x)


@register("igammac")
def igammac(ctx: LoweringContext, a: Value, x: Value) -> Value:
    """J2S_Elementwise `j2s_igammac(a, x)` (float32 in, double inside): series or continued fraction.

    Domain checked: a in (0.1, 20], x in (0, 40]. Error vs scipy: 5.9e-8 / 3.7e-9; vs JAX: 1.2e-5 / 1e-6.
    Special values as lax.igammac, with the same limits as igamma where JAX gives NaN.
    """
    return _call(ctx, "igammac", "j2s_igammac", a, x)


@register("igamma_grad_a")
def igamma_grad_a(ctx: LoweringContext, a: Value, x: Value) -> Value:
    """J2S_Elementwise `j2s_igamma_grad_a(a, x)` (float32 in, double inside): d/da of lax.igamma.

    What jax.grad of jax.scipy.special.gammainc / gammaincc in a computes. The series of P (x <= max(1, a))
    or the continued fraction of Q, each with its derivative in a carried along step by step (no finite
    differences), and digamma in double. Domain checked: a in (0.1, 20], x in (0, 40]. Error vs mpmath
    (its numerical derivative at 30 digits): 5.7e-8 / 3.7e-9 (the float32 rounding of the result; also
    for a from 1e-3 to 200 and x to 300); vs JAX: 6.6e-6 / 7.5e-7 (JAX's own error in float32, 1e-4
    relative for a near 150). Special values as JAX (NaN for a <= 0, x < 0 or NaN arguments, 0 at x = 0),
    except the limit 0 at x = inf or a = inf where JAX gives NaN. Scalar code: it iterates until it
    converges.
    """
    return _call(ctx, "igamma_grad_a", "j2s_igamma_grad_a", a, x)


@register("regularized_incomplete_beta")
def regularized_incomplete_beta(ctx: LoweringContext, a: Value, b: Value, x: Value) -> Value:
    """J2S_Elementwise `j2s_betainc(a, b, x)` (float32 in, double inside): continued fraction.

    Domain checked: a, b in (0.5, 10], x in (0, 1). Error vs scipy: 5.9e-8 / 3.7e-9; vs JAX: 5e-5 / 1.5e-6
    (JAX's own error in float32: its log-beta is a difference of float32 lgammas). Special values as
    lax.betainc (NaN for a < 0, b < 0 or x outside [0, 1]). Scalar code.
    """
    return _call(ctx, "regularized_incomplete_beta", "j2s_betainc", a, b, x)


# -- catalog cases (tests/test_catalog.py compiles and checks each) ---------------------------------------
# The inputs are made in each domain from the catalog's specs by exact float arithmetic (positive(...)
# is uniform in (0.5, 2), f32(...) standard normal), so that the C++ and JAX see the same values.
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.scipy.special as jsp  # noqa: E402
from jax import lax  # noqa: E402

from .catalog import case, f32, i32, positive  # noqa: E402


def _span(p, low, high):
    """positive(...) (uniform in (0.5, 2)) moved to (low, high)."""
    return low + (high - low) / 1.5 * (p - 0.5)


case("lgamma_positive", lambda p, x: lax.lgamma(_span(x, 0.0, 30.0)), positive(6, 40))
case("lgamma_negative", lambda p, x: lax.lgamma(_span(x, -7.5, 0.0)), positive(4, 25),
     notes="crosses the poles at -1 .. -7; the inputs are at least 1e-3 from them")
case("digamma_positive", lambda p, x: lax.digamma(_span(x, 0.0, 30.0)), positive(6, 40))
case("digamma_negative", lambda p, x: lax.digamma(_span(x, -7.5, 0.0)), positive(4, 25))
case("polygamma_both_inputs", lambda p, n, x: lax.polygamma(n.astype(jnp.float32), _span(x, 0.5, 20.0)),
     i32(5, 16), positive(5, 16))
case("polygamma_constant_order", lambda p, x: jnp.stack([lax.polygamma(jnp.float32(k), _span(x, 0.5, 20.0))
                                                         for k in (1, 2, 3)]), positive(3, 12), batch=False)
case("zeta_both_inputs", lambda p, s, q: lax.zeta(_span(s, 1.0, 10.0), _span(q, 0.5, 15.0)),
     positive(6, 20), positive(6, 20))
# jax.scipy.special broadcasts its arguments (broadcast_in_dim) before the primitive, which lax does not
case("zeta_broadcast_q", lambda p, s, q: jsp.zeta(_span(s, 1.5, 6.0)[:, None], _span(q, 0.5, 4.0)[None, :]),
     positive(5), positive(7), batch=False)
case("bessel_i0e_i1e", lambda p, x: (lax.bessel_i0e(10.0 * x), lax.bessel_i1e(10.0 * x)), f32(6, 30))
case("erf_inv_near_one", lambda p, x: lax.erf_inv(_span(x, -0.999, 0.999)), positive(4, 30),
     notes="|x| <= 0.999: closer to +-1 JAX forms 1 - x^2 as 1 - x*x and is the less exact of the two "
           "(tests/test_special_functions.py checks that range against scipy)")
case("igamma_both_inputs", lambda p, a, x: lax.igamma(_span(a, 0.1, 20.0), _span(x, 0.0, 40.0)),
     positive(6, 20), positive(6, 20))
case("igammac_both_inputs", lambda p, a, x: lax.igammac(_span(a, 0.1, 20.0), _span(x, 0.0, 40.0)),
     positive(6, 20), positive(6, 20))
case("igamma_constant_a", lambda p, x: (lax.igamma(2.5, _span(x, 0.0, 10.0)), lax.igammac(0.5, _span(x, 0.0, 10.0))),
     positive(4, 9))
# jax.grad of gammainc / gammaincc in a: igamma_grad_a (times -1 for gammaincc)
case("igamma_grad_a_through_grad", lambda p, a, x: tuple(
    jax.grad(lambda s: jnp.sum(f(s, _span(x, 0.0, 40.0))))(_span(a, 0.1, 20.0)) for f in (jsp.gammainc, jsp.gammaincc)),
    positive(6, 20), positive(6, 20))
# lax.random_gamma_grad (d sample / d alpha of a gamma sample, deterministic) is no primitive: JAX writes it
# with while loops of its own, which convert as they are
case("random_gamma_grad", lambda p, a, x: lax.random_gamma_grad(_span(a, 0.2, 10.0), _span(x, 0.1, 15.0)),
     positive(3, 8), positive(3, 8))
case("betainc_three_inputs", lambda p, a, b, x: lax.betainc(_span(a, 0.5, 10.0), _span(b, 0.5, 10.0),
                                                           _span(x, 0.0, 1.0)),
     positive(6, 20), positive(6, 20), positive(6, 20))
case("betainc_broadcast", lambda p, x: jsp.betainc(jnp.float32(2.0), jnp.array([0.5, 3.0, 7.5], jnp.float32),
                                                   _span(x, 0.0, 1.0)[:, None]), positive(8), batch=False)
