"""Compare the outputs of generated code with reference outputs: compare, CheckReport, OutputDetail.

Floating outputs pass within rtol/atol per element (NaN must match NaN, inf the same inf); integer
and bool outputs must be equal. A report also carries the error relative to each output's scale
(SCALE_BUDGET), which the whole-model tests check.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

__all__ = ["CheckReport", "OutputDetail", "SCALE_BUDGET", "compare"]


@dataclass
class OutputDetail:
    """Comparison of one output. ``worst_index``: the element violating the tolerance most
    (largest ``|a-e| / (atol + rtol*|e|)``; for exact dtypes the largest ``|a-e|``), None if empty
    or incomparable. ``reason``: why it failed (None when passed)."""

    name: str
    shape: tuple
    dtype: str
    max_abs_error: float
    max_rel_error: float
    passed: bool
    worst_index: Optional[tuple] = None
    expected_value: object = None
    actual_value: object = None
    n_mismatched: int = 0
    reason: Optional[str] = None
    # max |a - e| over the finite expected values, divided by the output's scale max |e| (see SCALE_BUDGET)
    max_scaled_error: float = 0.0

    def __str__(self):
        head = f"{self.name} {self.dtype}{list(self.shape)}"
        if self.worst_index is None and not math.isfinite(self.max_abs_error):
            body = ""
        else:
            body = (f" max abs {self.max_abs_error:.3g}, max rel {self.max_rel_error:.3g}, "
                    f"max abs/scale {self.max_scaled_error:.3g}")
            if self.worst_index is not None and (not self.passed or self.max_abs_error > 0):
                body += (f", worst at {self.worst_index}: expected {self.expected_value!r}, "
                         f"got {self.actual_value!r}")
        status = "ok" if self.passed else f"FAIL: {self.reason}"
        return f"{head}:{body} -> {status}"


# The error budget of a whole model: max |got - expected| <= SCALE_BUDGET * max |expected|, per output,
# over its finite values (max_scaled_error). An error relative to the output's scale, not to each
# element: an element near zero that is the sum of large terms (a residual, a normalised activation)
# carries the rounding of those terms, so a per-element relative error says little of a deep model,
# while an error relative to the largest output does not grow with depth unless the computation
# really drifts. The largest value, not the RMS: a sparse output (softmax, a one-hot-like sigmoid) has
# a small RMS next to the values that matter. Checked by the whole-model tests; check() reports it.
SCALE_BUDGET = 1e-5


@dataclass
class CheckReport:
    """Result of :func:`compare`; truthy when every output passed. ``max_scaled_error``: the largest
    output's max_scaled_error (see SCALE_BUDGET); not part of ``passed``, which is rtol/atol."""

    passed: bool
    max_abs_error: float
    max_rel_error: float
    outputs: list = field(default_factory=list)
    compile_seconds: float = 0.0
    run_seconds: float = 0.0
    cached: bool = False
    rtol: float = 1e-4
    atol: float = 1e-5
    max_scaled_error: float = 0.0

    @property
    def within_budget(self) -> bool:
        """Every output within the error budget max |got - expected| <= SCALE_BUDGET * max |expected|."""
        return self.max_scaled_error <= SCALE_BUDGET

    def __bool__(self):
        return bool(self.passed)

    @property
    def failures(self) -> list:
        return [o for o in self.outputs if not o.passed]

    def __str__(self):
        status = "PASSED" if self.passed else f"FAILED ({len(self.failures)} of {len(self.outputs)} outputs)"
        lines = [
            f"{status}: max abs error {self.max_abs_error:.3g}, max rel error {self.max_rel_error:.3g} "
            f"(rtol={self.rtol:g}, atol={self.atol:g}), max abs error / output scale {self.max_scaled_error:.3g} "
            f"(budget {SCALE_BUDGET:g}{'' if self.within_budget else ': EXCEEDED'}); compile {self.compile_seconds:.2f}s"
            f"{' (cached)' if self.cached else ''}, run {self.run_seconds * 1e3:.3f} ms"
        ]
        lines += [f"  [{i}] {o}" for i, o in enumerate(self.outputs)]
        return "\n".join(lines)


def _scalar(x):
    try:
        return x.item()
    except Exception:  # pragma: no cover
        return x


def _compare_one(name, e: np.ndarray, a: np.ndarray, rtol: float, atol: float) -> OutputDetail:
    inf = math.inf
    if e.shape != a.shape:
        return OutputDetail(name, tuple(a.shape), str(a.dtype), inf, inf, False,
                            reason=f"shape mismatch: expected {tuple(e.shape)}, got {tuple(a.shape)}", max_scaled_error=inf)
    reasons = []
    if e.dtype != a.dtype:
        reasons.append(f"dtype mismatch: expected {e.dtype}, got {a.dtype}")
    numeric = all(x.dtype.kind in "biuf" for x in (e, a))
    if not numeric:
        ok = bool(np.array_equal(e, a))
        if not ok:
            reasons.append("values differ (non-numeric dtype)")
        return OutputDetail(name, tuple(a.shape), str(a.dtype), 0.0 if ok else inf, 0.0 if ok else inf,
                            ok and not reasons, reason="; ".join(reasons) or None,
                            max_scaled_error=0.0 if ok else inf)
    if e.size == 0:
        return OutputDetail(name, tuple(a.shape), str(a.dtype), 0.0, 0.0, not reasons,
                            reason="; ".join(reasons) or None)

    inexact = e.dtype.kind == "f" or a.dtype.kind == "f"
    with np.errstate(all="ignore"):
        if inexact:
            ef, af = e.astype(np.float64), a.astype(np.float64)  # the generated code has no complex numbers
            nan_e, nan_a = np.isnan(ef), np.isnan(af)
            same = (ef == af) | (nan_e & nan_a)  # also inf == inf
            diff = np.where(same, 0.0, np.abs(af - ef))
            diff = np.where(np.isnan(diff), inf, diff)  # NaN vs number, inf vs -inf
            mag = np.abs(ef)
            tol = atol + rtol * np.where(np.isfinite(mag), mag, 0.0)
            bad = ~same & ((diff > tol) | ~np.isfinite(diff) | np.isinf(mag))
            nan_mismatch = nan_e != nan_a
            score = np.where(tol > 0, diff / np.where(tol > 0, tol, 1.0), np.where(diff > 0, inf, 0.0))
        else:
            ef, af = e.astype(np.float64), a.astype(np.float64)
            bad = e != a
            diff = np.abs(af - ef)
            diff = np.where(bad, np.maximum(diff, np.finfo(np.float64).tiny), 0.0)
            mag = np.abs(ef)
            nan_mismatch = None
            score = np.where(bad, diff, -1.0)
        rel = np.where(diff == 0, 0.0, np.where(mag > 0, diff / np.where(mag > 0, mag, 1.0), inf))
        rel = np.where(np.isnan(rel), inf, rel)

    flat = int(np.nanargmax(np.where(np.isnan(score), inf, score)))
    worst = tuple(int(i) for i in np.unravel_index(flat, e.shape))
    n_bad = int(np.count_nonzero(bad))
    first_bad = None
    if n_bad:
        first_bad = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(bad)[0]), e.shape))
    if nan_mismatch is not None and nan_mismatch.any():
        k = int(np.count_nonzero(nan_mismatch))
        fi = tuple(int(i) for i in np.unravel_index(int(np.flatnonzero(nan_mismatch)[0]), e.shape))
        reasons.append(f"NaN pattern differs at {k} element(s) (first at {fi})")
    if n_bad:
        what = "exceed the tolerance" if inexact else "differ (exact comparison)"
        reasons.append(f"{n_bad} of {e.size} element(s) {what} (first at {first_bad})")
    return OutputDetail(
        name, tuple(a.shape), str(a.dtype), float(np.max(diff)) if e.size else 0.0,
        float(np.max(rel)) if e.size else 0.0, not reasons, worst, _scalar(e[worst]), _scalar(a[worst]), n_bad,
        "; ".join(reasons) or None, _scaled_error(ef, diff, mag))


def _scaled_error(expected: np.ndarray, diff: np.ndarray, mag: np.ndarray) -> float:
    """max |a - e| / max |e| over the finite expected values (SCALE_BUDGET); 0 when they all match exactly,
    inf for an all-zero output that does not."""
    finite = np.isfinite(expected)
    if not finite.any():
        return 0.0
    worst, scale = float(np.max(diff[finite])), float(np.max(mag[finite]))
    if worst == 0:
        return 0.0
    return worst / scale if scale > 0 else math.inf


def compare(expected, actual, rtol: float = 1e-4, atol: float = 1e-5, *, names=None, compile_seconds: float = 0.0,
            run_seconds: float = 0.0, cached: bool = False) -> CheckReport:
    """Compare reference outputs with the SOFIE ones.

    Floating outputs pass when ``|a - e| <= atol + rtol*|e|`` everywhere (NaN must match NaN,
    inf must match the same inf); integer and bool outputs must be equal. Different shapes,
    dtypes or number of outputs fail. A single array may be given instead of a list.
    """
    if isinstance(expected, np.ndarray) or np.isscalar(expected):
        expected = [expected]
    if isinstance(actual, np.ndarray) or np.isscalar(actual):
        actual = [actual]
    expected = [np.asarray(x) for x in expected]
    actual = [np.asarray(x) for x in actual]
    n = max(len(expected), len(actual))
    names = list(names) if names is not None else []
    names += [f"output{i}" for i in range(len(names), n)]
    details = []
    for i in range(n):
        if i >= len(actual):
            e = expected[i]
            details.append(OutputDetail(names[i], tuple(e.shape), str(e.dtype), math.inf, math.inf, False,
                                        reason="missing: no actual output", max_scaled_error=math.inf))
        elif i >= len(expected):
            a = actual[i]
            details.append(OutputDetail(names[i], tuple(a.shape), str(a.dtype), math.inf, math.inf, False,
                                        reason="unexpected extra actual output",
                                        max_scaled_error=math.inf))
        else:
            details.append(_compare_one(names[i], expected[i], actual[i], rtol, atol))
    max_abs = max((d.max_abs_error for d in details), default=0.0)
    max_rel = max((d.max_rel_error for d in details), default=0.0)
    max_scaled = max((d.max_scaled_error for d in details), default=0.0)
    return CheckReport(all(d.passed for d in details), max_abs, max_rel, details, compile_seconds, run_seconds, cached,
                       rtol, atol, max_scaled)
