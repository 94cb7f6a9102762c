"""The C++ expressions of elementwise primitives, for the project-owned J2S_Elementwise operator.

J2S_Elementwise (csrc/owned/elementwise.hpp) computes one C++ expression over broadcast inputs
`x0, x1, ...` in a single loop. This module is the ONE place those expressions are written: a table
from JAX primitive to a template, and a small builder that

- names the inputs (`x<i>`) and writes constants as C++ literals of the right type,
- shares a sub-expression that a template reads more than once as a temporary (`t<k> = ...;`),
- renders the attribute string ("t0 = ...; <result>").

A template takes the builder and its argument expressions and returns the result expression, so the
templates of a chain of primitives can be applied one after the other on ONE builder (each result is
the next one's argument) to give one fused node. Nothing here is built from user data: arguments are
input names, temporaries and literals formatted from numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..ir.operators import names

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_VARIABLE = re.compile(r"\b([xt])([0-9]+)\b")  # inputs x<i> and temporaries t<k> of an expression

# the C++ element type of each dtype the generated code supports (bool tensors hold uint8_t)
CTYPES = {"float32": "float", "int32": "std::int32_t", "int64": "std::int64_t", "bool": "bool"}
_UNSIGNED = {"int32": ("std::uint32_t", 32), "int64": ("std::uint64_t", 64)}


def literal(value: Any, dtype: Any) -> str:
    """A C++ literal of `value` with the exact type of `dtype` (no silent promotion to double)."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        v = np.float32(value)
        if np.isnan(v):
            return "std::numeric_limits<float>::quiet_NaN()"
        if np.isinf(v):
            return ("-" if v < 0 else "") + "std::numeric_limits<float>::infinity()"
        text = str(v)  # numpy's shortest repr that reads back as the same float32
        return f"({text}f)" if text.startswith("-") else f"{text}f"
    if dtype == np.bool_:
        return "true" if bool(value) else "false"
    if dtype in (np.int32, np.int64):
        return f"{CTYPES[dtype.name]}({int(value)})"
    raise ValueError(f"no C++ literal for dtype {dtype}")


class ExpressionBuilder:
    """Collects the temporaries of one J2S_Elementwise expression."""

    def __init__(self) -> None:
        self._temps: list[tuple[str, str]] = []

    @staticmethod
    def input(index: int) -> str:
        return f"x{index}"

    def share(self, expr: str) -> str:
        """A name for `expr` that can be read several times (the expression itself if it is one)."""
        if _IDENTIFIER.fullmatch(expr) or _is_literal(expr):
            return expr
        name = f"t{len(self._temps)}"
        self._temps.append((name, expr))
        return name

    def render(self, result: str) -> str:
        return "".join(f"{name} = {expr}; " for name, expr in self._temps) + result

    def apply(self, expression: str, args: Sequence[str]) -> str:
        """Inline a rendered expression (a J2S_Elementwise node's attribute) with its x<i> bound to
        `args`; returns its result. This is how a chain of nodes becomes one: apply each node's
        expression to the results of the ones it reads, on one builder, and render the last."""
        *definitions, result = [part.strip() for part in expression.split(";")]
        shared = [self.share(a) for a in args]
        renamed: dict[str, str] = {}

        def rename(text: str) -> str:
            return _VARIABLE.sub(lambda m: shared[int(m.group(2))] if m.group(1) == "x" else renamed[m.group(0)], text)

        for definition in definitions:
            name, value = (p.strip() for p in definition.split("=", 1))
            renamed[name] = self.share(f"({rename(value)})")
        return rename(result)


def operand(builder: ExpressionBuilder, tensors: list, value: Any, inline_scalar: bool) -> str:
    """How a J2S_Elementwise expression reads `value` (an IR Value): as a C++ literal if it is a scalar
    constant and `inline_scalar`, else as x<i>, i its place in `tensors` (the node's inputs; a value
    read twice is one input)."""
    if inline_scalar and value.is_const and value.size == 1:
        return literal(np.asarray(value.const).ravel()[0], value.dtype)
    index = next((i for i, t in enumerate(tensors) if t is value), None)
    if index is None:
        index = len(tensors)
        tensors.append(value)
    return builder.input(index)


def _is_literal(expr: str) -> bool:
    return bool(re.fullmatch(r"\(?-?[0-9.e+-]+f\)?|true|false|std::int(32|64)_t\(-?[0-9]+\)", expr))


# A template: (builder, argument expressions, dtype name of the first argument, primitive params)
# -> the result expression.
Template = Callable[[ExpressionBuilder, Sequence[str], str, dict], str]

FLOAT, INT, BOOL = frozenset({"float32"}), frozenset({"int32", "int64"}), frozenset({"bool"})


@dataclass(frozen=True)
class Primitive:
    template: Template
    dtypes: frozenset  # argument dtypes the template is written for (dtype of the first argument)
    bool_out: bool = False  # the result is bool (else: the dtype of the first argument)
    # SOFIE's own operator computing the same on float32 (one input, same loop): used instead of
    # J2S_Elementwise when the primitive stands alone; a fusion can map it back to `template`
    sofie_op: str | None = None
    arity: int = 1


def _call(function: str) -> Template:
    return lambda b, args, dtype, params: f"{function}({', '.join(args)})"


def _sign(b: ExpressionBuilder, args, dtype, params) -> str:
    x = b.share(args[0])
    if dtype == "float32":  # keeps -0.0 and NaN, like lax.sign
        return f"({x} > 0.0f ? 1.0f : ({x} < 0.0f ? -1.0f : {x}))"
    return f"(({x} > 0) - ({x} < 0))"


def _round(b: ExpressionBuilder, args, dtype, params) -> str:
    # lax.RoundingMethod: 0 = AWAY_FROM_ZERO (std::round), 1 = TO_NEAREST_EVEN (nearbyint in the
    # default rounding mode)
    method = int(params.get("rounding_method", 0))
    return f"std::round({args[0]})" if method == 0 else f"std::nearbyint({args[0]})"


def _rem(b: ExpressionBuilder, args, dtype, params) -> str:
    if dtype == "float32":
        return f"std::fmod({args[0]}, {args[1]})"
    # C's % truncates like lax.rem; x % 0 and INT_MIN % -1 are undefined in C: XLA gives x and 0
    x, y = b.share(args[0]), b.share(args[1])
    return f"({y} == 0 ? {x} : ({y} == -1 ? 0 : {x} % {y}))"


def _clamp(b: ExpressionBuilder, args, dtype, params) -> str:
    # lax.clamp(lo, x, hi) = min(max(x, lo), hi); ternaries keep NaN of x and need no common type
    lo, x, hi = (b.share(a) for a in args)
    low = b.share(f"({x} < {lo} ? {lo} : {x})")
    return f"({low} > {hi} ? {hi} : {low})"


# tanh(x) = x P(u) / Q(u), u = (x / 9)^2, for |x| <= 9 (beyond, tanh is +-1 in float32), fitted
# here for the least relative error: at most 3.7e-7 from the exact tanh over all floats (libm's
# tanhf: 6e-8). A rational function vectorises; libm's tanhf is a call per element through expm1f,
# which made the tanh GELU of a transformer block a third of its run time.
_TANH_P = (0.9999999403953552, 10.46455192565918, 19.16290283203125, 4.924905300140381, -0.5501075387001038,
           0.06364171952009201)
_TANH_Q = (1.0, 37.46451187133789, 155.9093017578125, 121.2192153930664)


def _horner(b: ExpressionBuilder, coefficients, u: str) -> str:
    text = literal(coefficients[-1], np.float32)
    for c in reversed(coefficients[:-1]):
        text = f"({text} * {u} + {literal(c, np.float32)})"
    return text


def tanh_expression(b: ExpressionBuilder, args, dtype="float32", params=None) -> str:
    """float32 tanh as a rational function (see _TANH_P); keeps NaN, -0.0 and |result| <= 1.

    The rational function is evaluated on x as it is (past |x| = 9 its value is dropped; it may be
    inf or NaN there), and its magnitude capped at 1 before the sign of x is put back: a select
    whose float result is the constant on one side and then meets arithmetic with constants (x
    clamped to [-9, 9], then squared) stops GCC, with its default -ftrapping-math, vectorising the
    loop (it moves that arithmetic into the branches)."""
    x = b.share(args[0])
    u = b.share(f"({x} * {x} * {literal(1 / 81, np.float32)})")
    r = b.share(f"std::fabs({x} * {_horner(b, _TANH_P, u)} / {_horner(b, _TANH_Q, u)})")
    saturated = b.share(f"((std::fabs({x}) > 9.0f) | ({r} > 1.0f))")  # `|`: no branch; NaN is neither
    return f"std::copysign(({saturated} ? 1.0f : {r}), {x})"


# exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts, Cody-Waite, so r is
# exact), exp(r) by Cephes' expf polynomial on |r| <= ln(2)/2: within 9e-8 relative of the exact exp
# (XLA's own: 3e-7). libm's expf is a call per element (no vectors without -ffast-math); this is
# arithmetic that the loop vectorises, with J2S_Elementwise's bit-cast helpers (elementwise.hpp):
# - n without a float -> int conversion (undefined for NaN and huge x): x / ln 2 + 1.5 * 2^23 holds
#   round(x / ln 2) in its low bits (j2s_bits), clamped as an integer to [-150, 128];
# - 2^n as two factors j2s_pow2i(h) j2s_pow2i(n - h), each a normal float, so the results near
#   FLT_MAX and the subnormal ones down to exp(-103.9) come out right; x clamped to 89 gives inf.
# Float selects only where a value is clamped before r: GCC (with its default -ftrapping-math) does
# not vectorise a loop once a select's float result meets further arithmetic with constants.
_EXP_P = (5.0000001201e-1, 1.6666665459e-1, 4.1665795894e-2, 8.3334519073e-3, 1.3981999507e-3, 1.9875691500e-4)
_EXP_HIGH = np.float32(89.0)  # exp(89) is inf in float32 (overflow from 88.72284)
_EXP_LOW = np.float32(-104.0)  # exp(-104) rounds to 0 (below half of the least subnormal float)
_ROUNDER = np.float32(1.5 * 2 ** 23)  # y + _ROUNDER holds round(y) in its low bits for |y| < 2^22
_ROUNDER_BITS = int(_ROUNDER.view(np.int32))
_EXP_N = (-150, 128)  # the range of n: 2^-150 is below the least subnormal, 2^128 above FLT_MAX


def exp_expression(b: ExpressionBuilder, args, dtype="float32", params=None) -> str:
    """float32 exp without libm (see _EXP_P); inf from 88.72284 on, 0 at -inf, NaN stays NaN."""
    x = b.share(args[0])
    low, high = literal(_EXP_LOW, np.float32), literal(_EXP_HIGH, np.float32)
    c = b.share(f"({x} < {low} ? {low} : ({x} > {high} ? {high} : {x}))")  # NaN stays NaN (and r carries it)
    rounded = b.share(f"j2s_bits({x} * {literal(np.log2(np.e), np.float32)} + {literal(_ROUNDER, np.float32)})")
    n_low, n_high = (_ROUNDER_BITS + n for n in _EXP_N)
    # (the clamp a temporary of its own: `(c ? a : b) - k` is folded by the compiler into a select of
    # two differences, which moves the int -> float conversion below into a branch)
    clamped = b.share(f"({rounded} < {n_low} ? {n_low} : ({rounded} > {n_high} ? {n_high} : {rounded}))")
    n = b.share(f"({clamped} - {_ROUNDER_BITS})")
    fn = b.share(f"static_cast<float>({n})")
    r = b.share(f"(({c} - {fn} * 0.693359375f) - {fn} * {literal(-2.12194440e-4, np.float32)})")
    h = b.share(f"({n} >> 1)")
    return f"(({_horner(b, _EXP_P, r)} * {r} * {r} + {r} + 1.0f) * j2s_pow2i({h}) * j2s_pow2i({n} - {h}))"


def sigmoid_expression(b: ExpressionBuilder, args, dtype="float32", params=None) -> str:
    """float32 logistic 1 / (1 + exp(-x)) on exp_expression (0 from -88.72284 down, where exp(-x) is inf)."""
    return f"(1.0f / (1.0f + {exp_expression(b, [f'(-{args[0]})'])}))"


# erfc(z) = t exp(-z^2 + Q(t - 0.6)), t = 1 / (1 + z/2), for z = |x| (the form of Numerical Recipes'
# erfcc, with Q fitted here by least squares to log(erfcx(z) / t) over z in [0, 10.1], beyond which
# erfc is 0 in float32): Q is within 7e-9 of the exact one, so the error is float32 rounding, mostly
# of z^2 in the exponent: at most 1.5e-6 relative for |x| < 4 and 7.7e-6 down to erfc = 1e-37 (XLA's
# own erfc: 6.8e-7 and 3.9e-6). erf(x) is x P(x^2) for |x| < 1 (P fitted to erf(x)/x, within 1.1e-9),
# else +-(1 - erfc(|x|)): at most 1.7e-7 relative over all floats (XLA's: 2.8e-7). libm's erff and
# erfcf are a call per element (erfcf also calls expf); erf-GELU spent half a BERT layer's time in them.
# The branches are blended by a 0/1 float, not selected by a ternary: a float select of computed
# values stops GCC vectorising the loop (see exp_expression).
_ERFC_Q = (-0.53575975, 1.37142, 0.07027757, -0.4088959, -0.0103494115, 0.2885454, -0.08011146, -0.22462012,
           0.16252549, 0.12074473, -0.14404666)
_ERFC_Q_CENTRE = 0.6
_ERF_P = (1.1283791, -0.37612626, 0.11283597, -0.026854329, 0.0051893122, -8.018855e-04, 7.8824974e-05)


def _erfc_of_magnitude(b: ExpressionBuilder, z: str) -> str:
    """erfc(z) for z = |x| >= 0 (0 for z = inf, NaN for NaN)."""
    t = b.share(f"(1.0f / (1.0f + 0.5f * {z}))")
    q = _horner(b, _ERFC_Q, b.share(f"({t} - {literal(_ERFC_Q_CENTRE, np.float32)})"))
    return b.share(f"({t} * {exp_expression(b, [f'({q} - {z} * {z})'])})")


def erfc_expression(b: ExpressionBuilder, args, dtype="float32", params=None) -> str:
    """float32 erfc without libm (see _ERFC_Q): 2 - erfc(-x) for negative x."""
    x = b.share(args[0])
    r = _erfc_of_magnitude(b, b.share(f"std::fabs({x})"))
    negative = b.share(f"static_cast<float>({x} < 0.0f)")
    return f"({negative} * 2.0f + (1.0f - 2.0f * {negative}) * {r})"


def erf_expression(b: ExpressionBuilder, args, dtype="float32", params=None) -> str:
    """float32 erf without libm (see _ERF_P): keeps -0.0, +-1 at +-inf, NaN stays NaN."""
    x = b.share(args[0])
    z = b.share(f"std::fabs({x})")
    clamped = b.share(f"({x} < -1.0f ? -1.0f : ({x} > 1.0f ? 1.0f : {x}))")  # NaN stays NaN
    small = b.share(f"({clamped} * {_horner(b, _ERF_P, b.share(f'({clamped} * {clamped})'))})")
    large = b.share(f"std::copysign(1.0f - {_erfc_of_magnitude(b, z)}, {x})")
    near = b.share(f"static_cast<float>({z} < 1.0f)")
    return f"({near} * {small} + (1.0f - {near}) * {large})"


# SOFIE operators that passes/elementwise_fusion.py rewrites as J2S_Elementwise even when nothing fuses
# with them: their expression (the vectorisable ones above, or one loop without SOFIE's per-element
# broadcast bookkeeping) is faster than SOFIE's own operator (`fused_alone` in the operator table)
FASTER_ALONE = names(fused_alone=True)


def _logic(bool_op: str, int_op: str) -> Template:
    return lambda b, args, dtype, params: f"({args[0]} {bool_op if dtype == 'bool' else int_op} {args[1]})"


def _compare(op: str) -> Template:
    return lambda b, args, dtype, params: f"({args[0]} {op} {args[1]})"


def _shift_left(b: ExpressionBuilder, args, dtype, params) -> str:
    # XLA: a shift by a negative amount or by >= the bit width gives 0 (undefined in C)
    unsigned, bits = _UNSIGNED[dtype]
    x, s = args[0], b.share(args[1])
    return (f"(static_cast<{unsigned}>({s}) < {bits}u ? static_cast<{CTYPES[dtype]}>(static_cast<{unsigned}>({x}) "
            f"<< {s}) : {CTYPES[dtype]}(0))")


def _shift_right_logical(b: ExpressionBuilder, args, dtype, params) -> str:
    unsigned, bits = _UNSIGNED[dtype]
    x, s = args[0], b.share(args[1])
    return (f"(static_cast<{unsigned}>({s}) < {bits}u ? static_cast<{CTYPES[dtype]}>(static_cast<{unsigned}>({x}) "
            f">> {s}) : {CTYPES[dtype]}(0))")


def _shift_right_arithmetic(b: ExpressionBuilder, args, dtype, params) -> str:
    # an out-of-range shift fills with the sign bit (XLA), i.e. shifts by bits - 1
    unsigned, bits = _UNSIGNED[dtype]
    s = b.share(args[1])
    return f"({args[0]} >> (static_cast<{unsigned}>({s}) < {bits}u ? {s} : {bits - 1}))"


def _mulhi(b: ExpressionBuilder, args, dtype, params) -> str:
    """The high 32 bits of the full 64-bit signed product (lax.mul_hi on int32): exact in int64, and
    the arithmetic right shift of a negative int64 is the one every compiler does (defined from C++20)."""
    x, y = args
    return f"static_cast<std::int32_t>((static_cast<std::int64_t>({x}) * static_cast<std::int64_t>({y})) >> 32)"


def _abs(b: ExpressionBuilder, args, dtype, params) -> str:
    if dtype == "float32":
        return f"std::fabs({args[0]})"
    # negated in unsigned arithmetic: abs(INT_MIN) is INT_MIN in XLA (it wraps), undefined in C
    unsigned, _ = _UNSIGNED[dtype]
    x = b.share(args[0])
    return f"({x} < 0 ? static_cast<{CTYPES[dtype]}>({unsigned}(0) - static_cast<{unsigned}>({x})) : {x})"


# The bit counts below are portable bit arithmetic on the unsigned type (no compiler builtins, which
# MSVC lacks), in a form the loop vectorises: SWAR population count, and clz as the bit width less
# the population count of x with every bit below its highest set bit set too.
_UNSIGNED_SUFFIX = {32: "u", 64: "ull"}


def _mask(pattern: int, bits: int) -> str:
    """`pattern` (one byte) repeated over `bits` bits, as an unsigned C++ literal: 0x55 -> 0x55555555u."""
    return f"{int.from_bytes(bytes([pattern]) * (bits // 8), 'little'):#x}{_UNSIGNED_SUFFIX[bits]}"


def _popcount_of_unsigned(b: ExpressionBuilder, u: str, bits: int) -> str:
    u = b.share(u)
    pairs = b.share(f"({u} - (({u} >> 1) & {_mask(0x55, bits)}))")  # bit counts of each 2-bit group
    quads = b.share(f"(({pairs} & {_mask(0x33, bits)}) + (({pairs} >> 2) & {_mask(0x33, bits)}))")
    # per byte, then the sum of the bytes in the top byte of a multiplication by 0x0101...
    return f"(((({quads} + ({quads} >> 4)) & {_mask(0x0F, bits)}) * {_mask(0x01, bits)}) >> {bits - 8})"


def _population_count(b: ExpressionBuilder, args, dtype, params) -> str:
    unsigned, bits = _UNSIGNED[dtype]
    return _popcount_of_unsigned(b, f"static_cast<{unsigned}>({args[0]})", bits)


def _clz(b: ExpressionBuilder, args, dtype, params) -> str:
    unsigned, bits = _UNSIGNED[dtype]
    smeared = b.share(f"static_cast<{unsigned}>({args[0]})")
    shift = 1
    while shift < bits:
        smeared = b.share(f"({smeared} | ({smeared} >> {shift}))")
        shift *= 2
    return f"({bits} - {_popcount_of_unsigned(b, smeared, bits)})"


def _total_order_compare(op: str) -> Template:
    """lt_to / le_to / eq_to: comparisons in IEEE 754's total order, -NaN < -inf < ... < -0 < +0 <
    ... < inf < NaN (what sort comparators and jnp.searchsorted use). A float's bits as an int32,
    with the non-sign bits flipped for negative numbers, compare as signed integers in that order;
    integers compare as they are."""
    def template(b: ExpressionBuilder, args, dtype, params) -> str:
        if dtype != "float32":
            return f"({args[0]} {op} {args[1]})"
        keys = []
        for arg in args[:2]:
            bits = b.share(f"j2s_bits({arg})")
            keys.append(f"({bits} ^ (({bits} >> 31) & {literal(2**31 - 1, np.int32)}))")
        return f"({keys[0]} {op} {keys[1]})"

    return template


def reduce_precision_expression(b: ExpressionBuilder, args, dtype, params) -> str:
    """float32 rounded to `mantissa_bits` (to nearest, ties to even) and `exponent_bits` (overflow to
    inf, underflow - subnormals included - to zero), on the bits: XLA's ReducePrecision step by step.
    NaN stays NaN (unless no mantissa bit is left, where XLA gives inf too)."""
    exponent_bits, mantissa_bits = int(params["exponent_bits"]), int(params["mantissa_bits"])
    x = b.share(args[0])
    bits = b.share(f"static_cast<std::uint32_t>(j2s_bits({x}))")
    reduced = bits
    if mantissa_bits < 23:
        dropped = 23 - mantissa_bits
        bias = (1 << (dropped - 1)) - 1  # 0111...: plus the last kept bit, rounds ties to even
        keep = ~((1 << dropped) - 1) & 0xFFFFFFFF
        reduced = b.share(f"(({reduced} + ((({reduced} >> {dropped}) & 1u) + {bias}u)) & {keep:#010x}u)")
    if exponent_bits < 8:
        reduced_bias = (1 << (exponent_bits - 1)) - 1
        highest, lowest = (127 + reduced_bias) << 23, (127 - reduced_bias) << 23
        exponent = b.share(f"({reduced} & 0x7f800000u)")
        signed_zero = b.share(f"({reduced} & 0x80000000u)")
        reduced = b.share(f"({exponent} > {highest:#010x}u ? ({signed_zero} | 0x7f800000u) : "
                          f"({exponent} <= {lowest:#010x}u ? {signed_zero} : {reduced}))")
    result = f"j2s_float(static_cast<std::int32_t>({reduced}))"
    if mantissa_bits > 0:
        result = f"(({bits} & 0x7fffffffu) > 0x7f800000u ? {x} : {result})"
    return result


def select_expression(b: ExpressionBuilder, args: Sequence[str], selector_dtype: str) -> str:
    """select_n(which, *cases): the case numbered by `which` (a bool picks case 1 when true)."""
    which, cases = b.share(args[0]), list(args[1:])
    if selector_dtype == "bool":
        return f"({which} ? {cases[1]} : {cases[0]})" if len(cases) == 2 else cases[0]
    result = cases[-1]  # an out-of-range selector is undefined in lax: take the last case
    for i in range(len(cases) - 2, -1, -1):
        result = f"({which} == {i} ? {cases[i]} : {result})"
    return result


PRIMITIVES: dict[str, Primitive] = {
    # float math (std:: functions of <cmath> on float: the float overloads)
    "erf": Primitive(erf_expression, FLOAT, sofie_op="Erf"),
    "erfc": Primitive(erfc_expression, FLOAT),
    # M. Giles' polynomials as XLA's, with 1 - x^2 formed exactly near +-1 (csrc/owned/special_functions.hpp)
    "erf_inv": Primitive(_call("j2s_erf_inv"), FLOAT),
    "log1p": Primitive(_call("std::log1p"), FLOAT),
    "expm1": Primitive(_call("std::expm1"), FLOAT),
    "exp2": Primitive(_call("std::exp2"), FLOAT),
    "cbrt": Primitive(_call("std::cbrt"), FLOAT),
    "floor": Primitive(_call("std::floor"), FLOAT, sofie_op="Floor"),
    "ceil": Primitive(_call("std::ceil"), FLOAT),
    "round": Primitive(_round, FLOAT),
    "sin": Primitive(_call("std::sin"), FLOAT, sofie_op="Sin"),
    "cos": Primitive(_call("std::cos"), FLOAT, sofie_op="Cos"),
    "tan": Primitive(_call("std::tan"), FLOAT),
    "asin": Primitive(_call("std::asin"), FLOAT),
    "acos": Primitive(_call("std::acos"), FLOAT),
    "atan": Primitive(_call("std::atan"), FLOAT, sofie_op="Atan"),
    "atan2": Primitive(_call("std::atan2"), FLOAT, arity=2),
    "sinh": Primitive(_call("std::sinh"), FLOAT),
    "cosh": Primitive(_call("std::cosh"), FLOAT),
    "asinh": Primitive(_call("std::asinh"), FLOAT, sofie_op="Asinh"),
    "acosh": Primitive(_call("std::acosh"), FLOAT, sofie_op="Acosh"),
    "atanh": Primitive(_call("std::atanh"), FLOAT, sofie_op="Atanh"),
    "nextafter": Primitive(_call("std::nextafter"), FLOAT, arity=2),
    "is_finite": Primitive(_call("std::isfinite"), FLOAT, bool_out=True),
    # float and integer
    "sign": Primitive(_sign, FLOAT | INT),
    "rem": Primitive(_rem, FLOAT | INT, arity=2),
    "clamp": Primitive(_clamp, FLOAT | INT, arity=3),
    # comparisons (their rules are in elementwise.py: SOFIE's comparison ops on numbers; these on bool,
    # and `ne` everywhere, which SOFIE can only do as Not(Equal))
    **{name: Primitive(_compare(op), FLOAT | INT | BOOL, bool_out=True, arity=2)
       for name, op in (("eq", "=="), ("ne", "!="), ("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">="))},
    # logic on booleans, bitwise on integers
    "and": Primitive(_logic("&&", "&"), BOOL | INT, arity=2),
    "or": Primitive(_logic("||", "|"), BOOL | INT, arity=2),
    "xor": Primitive(_logic("!=", "^"), BOOL | INT, arity=2),
    "not": Primitive(lambda b, args, dtype, params: f"(!{args[0]})" if dtype == "bool" else f"(~{args[0]})",
                     BOOL | INT),
    "shift_left": Primitive(_shift_left, INT, arity=2),
    "shift_right_logical": Primitive(_shift_right_logical, INT, arity=2),
    "shift_right_arithmetic": Primitive(_shift_right_arithmetic, INT, arity=2),
    "abs": Primitive(_abs, FLOAT | INT, sofie_op="Abs"),
    "mulhi": Primitive(_mulhi, frozenset({"int32"}), arity=2),
    "population_count": Primitive(_population_count, INT),
    "clz": Primitive(_clz, INT),
    # total-order comparisons (sort comparators, jnp.searchsorted)
    "lt_to": Primitive(_total_order_compare("<"), FLOAT | INT, bool_out=True, arity=2),
    "le_to": Primitive(_total_order_compare("<="), FLOAT | INT, bool_out=True, arity=2),
    "eq_to": Primitive(_total_order_compare("=="), FLOAT | INT | BOOL, bool_out=True, arity=2),
}
