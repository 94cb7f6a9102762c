"""The special functions (jax2sofie/lowering/special.py, csrc/owned/special_functions.hpp) through the whole
pipeline: their accuracy over each documented domain against scipy in float64, their special values against
JAX, and that a header holds the C++ functions it uses once and no others."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from scipy import special as sp

import jax2sofie

F32 = np.float32


def _grid(low, high, n):
    return np.linspace(low, high, n).astype(F32)


def _off_integers(x, distance=1e-3):
    return x[np.abs(x - np.round(x)) > distance]


def _mesh(*axes):
    return [a.ravel().astype(F32) for a in np.meshgrid(*axes)]


# name -> (function of the inputs, the inputs (float32, one grid over the documented domain), the scipy
# reference, bound on |got - ref| / (atol + rtol |ref|) as (rtol, atol)): the bounds are the errors in the
# rules' docstrings with a margin of about 2
lgamma_x = np.concatenate([_grid(1e-6, 30, 3000), _off_integers(_grid(-7.5, -1e-6, 3000))])
digamma_x = lgamma_x
zeta_s, zeta_q = _mesh(_grid(1.01, 10, 60), _grid(0.5, 15, 60))
poly_n, poly_x = _mesh(np.arange(0, 8).astype(F32), _grid(0.5, 20, 400))
gamma_a, gamma_x = _mesh(_grid(0.1, 20, 60), _grid(1e-4, 40, 80))
beta_a, beta_b, beta_x = _mesh(_grid(0.5, 10, 15), _grid(0.5, 10, 15), _grid(1e-4, 1 - 1e-4, 20))
bessel_x = _grid(-40, 40, 4001)
erf_inv_x = np.concatenate([_grid(-0.999, 0.999, 2001), (1 - np.logspace(-7.2, -3, 500)).astype(F32),
                            (np.logspace(-7.2, -3, 500) - 1).astype(F32)])

def _igamma_grad_a_reference(a, x):
    """d/da of scipy's gammainc in float64 by Richardson-extrapolated central differences (about 1e-12
    absolute: scipy has no derivative in a)."""
    def central(h):
        return (sp.gammainc(a + h, x) - sp.gammainc(a - h, x)) / (2 * h)

    h = 1e-3 * a
    return (4 * central(h / 2) - central(h)) / 3


CASES = {
    "lgamma": (lax.lgamma, [lgamma_x], lambda x: sp.gammaln(x), (1e-5, 5e-6)),
    "digamma": (lax.digamma, [digamma_x], lambda x: sp.digamma(x), (1e-5, 2e-6)),
    "polygamma": (lax.polygamma, [poly_n, poly_x], lambda n, x: sp.polygamma(n.astype(int), x), (1e-5, 2e-6)),
    "zeta": (lax.zeta, [zeta_s, zeta_q], lambda s, q: sp.zeta(s, q), (2e-6, 1e-7)),
    "bessel_i0e": (lax.bessel_i0e, [bessel_x], lambda x: sp.i0e(x), (1e-6, 1e-7)),
    "bessel_i1e": (lax.bessel_i1e, [bessel_x], lambda x: sp.i1e(x), (3e-6, 1e-7)),
    "erf_inv": (lax.erf_inv, [erf_inv_x], lambda x: sp.erfinv(x), (1e-6, 1e-8)),
    "igamma": (lax.igamma, [gamma_a, gamma_x], lambda a, x: sp.gammainc(a, x), (2e-7, 1e-8)),
    "igammac": (lax.igammac, [gamma_a, gamma_x], lambda a, x: sp.gammaincc(a, x), (2e-7, 1e-8)),
    "igamma_grad_a": (lax.igamma_grad_a, [gamma_a, gamma_x], _igamma_grad_a_reference, (2e-7, 1e-8)),
    "betainc": (lax.betainc, [beta_a, beta_b, beta_x], lambda a, b, x: sp.betainc(a, b, x), (2e-7, 1e-8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_accuracy_against_scipy_over_the_documented_domain(name):
    fn, inputs, reference, (rtol, atol) = CASES[name]
    model = jax2sofie.convert(lambda p, *xs: fn(*xs), None, *inputs, name=f"accuracy_{name}")
    (got,) = model.run(*inputs)
    ref = reference(*(x.astype(np.float64) for x in inputs))
    assert np.isfinite(ref).all()
    ratio = np.abs(got.astype(np.float64) - ref) / (atol + rtol * np.abs(ref))
    worst = int(np.argmax(ratio))
    assert ratio[worst] <= 1.0, (f"{name} at {[float(x[worst]) for x in inputs]}: {got[worst]!r}, scipy "
                                 f"{ref[worst]!r}")


_INF, _NAN = np.inf, np.nan
_POINTS = np.array([0.0, -0.0, -1.0, -2.0, -2.5, 0.5, -0.5, 1.0, 2.0, 1e-30, 1e30, -1e30, _INF, -_INF, _NAN], F32)
_PAIRS = _mesh(np.array([0.0, 0.5, 1.0, 2.5, 3.0, -1.0, _INF, _NAN], F32),
               np.array([0.0, 0.5, 1.0, 3.0, 100.0, -1.0, -1.5, _INF, _NAN], F32))


@pytest.mark.parametrize("name, fn, inputs", [
    ("lgamma", lax.lgamma, [_POINTS]),
    ("digamma", lax.digamma, [_POINTS]),
    ("bessel", lambda x: (lax.bessel_i0e(x), lax.bessel_i1e(x)), [_POINTS]),
    ("erf_inv", lax.erf_inv, [np.array([1.0, -1.0, 1.5, -2.0, 0.0, -0.0, 0.99999994, _INF, _NAN], F32)]),
    ("zeta", lax.zeta, _PAIRS),
    ("polygamma", lax.polygamma, _PAIRS),
    ("betainc", lax.betainc, _mesh(np.array([0.0, 1.0, 2.0, -1.0, _INF, _NAN], F32), np.array([0.0, 1.0, 0.5, _INF], F32),
                                   np.array([0.0, 1.0, 0.5, -0.1, 1.1, _NAN], F32))),
])
def test_special_values_match_jax(name, fn, inputs):
    model = jax2sofie.convert(lambda p, *xs: fn(*xs), None, *inputs, name=f"special_values_{name}")
    for got, want in zip(model.run(*inputs), _outputs(fn, inputs)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True)


def _outputs(fn, inputs):
    out = fn(*inputs)
    return [np.asarray(o) for o in (out if isinstance(out, tuple) else (out,))]


def test_incomplete_gamma_special_values_match_jax_where_jax_is_exact():
    # JAX's own float32 series gives NaN for a = 0 below x = 1 and for a = inf from x = 1 on, where
    # P(0, x) = 1 and P(inf, x) = 0: those are left out
    a, x = _PAIRS
    keep = ~(((a == 0) & (x > 0) & (x < 1)) | (np.isinf(a) & (x >= 1)))
    a, x = a[keep], x[keep]
    model = jax2sofie.convert(lambda p, a, x: (lax.igamma(a, x), lax.igammac(a, x)), None, a, x,
                              name="special_values_igamma")
    for got, want in zip(model.run(a, x), _outputs(lambda a, x: (lax.igamma(a, x), lax.igammac(a, x)), [a, x])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, equal_nan=True)
    # and there the limits: P(0, 0.5) = 1, P(inf, 3) = 0
    a, x = np.array([0.0, _INF], F32), np.array([0.5, 3.0], F32)
    model = jax2sofie.convert(lambda p, a, x: (lax.igamma(a, x), lax.igammac(a, x)), None, a, x,
                              name="limits_igamma")
    assert [v.tolist() for v in model.run(a, x)] == [[1.0, 0.0], [0.0, 1.0]]


def test_igamma_grad_a_special_values_match_jax_where_jax_is_defined():
    # JAX gives NaN at x = inf and at a = inf, where P(a, x) no longer depends on a: the limit 0 there
    a, x = _PAIRS
    model = jax2sofie.convert(lambda p, a, x: lax.igamma_grad_a(a, x), None, a, x, name="special_values_igamma_grad")
    (got,) = model.run(a, x)
    want = np.asarray(lax.igamma_grad_a(a, x))
    limits = (np.isinf(a) | np.isinf(x)) & (a > 0) & (x > 0)
    np.testing.assert_allclose(got[~limits], want[~limits], rtol=1e-4, atol=1e-5, equal_nan=True)
    assert np.isnan(want[limits]).all() and (got[limits] == 0.0).all()


def _header(model, tmp_path) -> str:
    model.write(tmp_path)
    return (tmp_path / f"{model.name}.hxx").read_text()


def test_a_header_defines_the_functions_it_calls_once(tmp_path):
    def fn(p, x):
        y = lax.lgamma(x)  # a reduction between the two keeps them two nodes
        return lax.polygamma(jnp.float32(1.0), jnp.sum(y, axis=1)) + lax.lgamma(x[:, 0])

    x = np.linspace(0.5, 5.0, 12, dtype=F32).reshape(3, 4)
    model = jax2sofie.convert(fn, None, x, name="special_header")
    header = _header(model, tmp_path)
    assert header.count("static float j2s_lgamma(") == 1
    assert header.count("static float j2s_zeta(") == 1  # polygamma's
    assert "j2s_betainc" not in header and "j2s_bessel_i0e" not in header
    np.testing.assert_allclose(model.run(x)[0], np.asarray(fn(None, x)), rtol=1e-4, atol=1e-5)


def test_a_header_without_special_functions_has_none_of_their_code(tmp_path):
    model = jax2sofie.convert(lambda p, x: jnp.tanh(x) * 2.0 + jnp.exp(x), None, np.ones((2, 3), F32),
                              name="no_special")
    header = _header(model, tmp_path)
    assert "J2S_SPECIAL" not in header and "j2s_select" not in header and "j2s_logf" not in header
