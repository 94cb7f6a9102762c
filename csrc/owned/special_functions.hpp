// Special functions that J2S_Elementwise expressions may call: j2s_lgamma(x), j2s_digamma(x),
// j2s_polygamma(n, x), j2s_zeta(s, q), j2s_bessel_i0e(x), j2s_bessel_i1e(x), j2s_erf_inv(x),
// j2s_igamma(a, x), j2s_igammac(a, x), j2s_igamma_grad_a(a, x) and j2s_betainc(a, b, x), all on float.
//
// They are written into the generated header as static member functions of the Session, each in a
// block `#ifndef J2S_<model>_<name>` (header_fixes.py keeps the first block of a name), and only
// when an expression of the model calls them (with the helpers they call): a header that uses none
// has none of this text.
//
// The functions of a fixed number of steps (all but the last four) are written for the element
// loop to vectorise once they are inlined (always_inline): no calls into libm (a call per element),
// float selects through bit masks (j2s_select: a ternary whose operands are computed arithmetic
// becomes a branch in GCC under its default -ftrapping-math, and a branch stops the vectoriser),
// loops of a fixed trip count unrolled by a pragma, and their own log, exp, sqrt and sin(pi x). The
// incomplete gamma and beta functions (and igamma's derivative) iterate until they converge: they are scalar code in double
// (std::log/std::exp, which are thread safe; std::lgamma is not: glibc writes the global signgam).
//
// The domains and errors measured against JAX and scipy are in the docstrings of the lowering rules
// (jax2sofie/lowering/special.py).
#pragma once

#include <cctype>
#include <string>
#include <vector>

namespace jax2sofie::special {

struct Helper {
   std::string name;               // the function's name, as expressions call it
   std::vector<std::string> needs; // the helpers its code calls
   std::string code;               // its definition (a static member function of the Session)
};

/// Macros the helpers use, defined once per translation unit.
inline std::string Prelude()
{
   return R"(#ifndef J2S_SPECIAL_PRELUDE
#define J2S_SPECIAL_PRELUDE
#if defined(__GNUC__) || defined(__clang__)
#define J2S_SPECIAL_INLINE __attribute__((always_inline)) inline
#else
#define J2S_SPECIAL_INLINE inline
#endif
#endif
)";
}

inline const std::vector<Helper> &Helpers()
{
   static const std::vector<Helper> helpers = {
      {"j2s_select", {}, R"J2S(
/// a where c, else b, through the bits (see special_functions.hpp: a float ternary can stop vectorisation)
J2S_SPECIAL_INLINE static float j2s_select(bool c, float a, float b)
{
   std::uint32_t ia, ib;
   std::memcpy(&ia, &a, sizeof ia);
   std::memcpy(&ib, &b, sizeof ib);
   const std::uint32_t mask = 0u - static_cast<std::uint32_t>(c);
   const std::uint32_t r = (ia & mask) | (ib & ~mask);
   float f;
   std::memcpy(&f, &r, sizeof f);
   return f;
}
)J2S"},
      {"j2s_floorf", {"j2s_select"}, R"J2S(
/// floor(x): below 2^23, x rounded to nearest by adding and subtracting 2^23, less 1 where that went up
J2S_SPECIAL_INLINE static float j2s_floorf(float x)
{
   const float a = std::fabs(x);
   const float r = std::copysign((a + 8388608.0f) - 8388608.0f, x);
   return j2s_select(a < 8388608.0f, j2s_select(r > x, r - 1.0f, r), x);
}
)J2S"},
      {"j2s_sinpi", {}, R"J2S(
/// sin(pi r) for |r| <= 0.5: the Taylor series of sin to t^13 (its next term is below 7e-10)
J2S_SPECIAL_INLINE static float j2s_sinpi(float r)
{
   const float t = 3.14159265358979f * r;
   const float u = t * t;
   float p = 1.6059043836821615e-10f;
   p = p * u - 2.5052108385441718e-8f;
   p = p * u + 2.7557319223985891e-6f;
   p = p * u - 1.9841269841269841e-4f;
   p = p * u + 8.3333333333333333e-3f;
   p = p * u - 1.6666666666666667e-1f;
   return t + t * u * p;
}
)J2S"},
      {"j2s_logf", {"j2s_select"}, R"J2S(
/// log(x) as Cephes' logf: x = 2^e (1 + f), f in [sqrt(1/2) - 1, sqrt(2) - 1), log(1 + f) by a
/// polynomial (within 2 ulp); subnormals scaled by 2^25 first; 0 -> -inf, x < 0 -> NaN
J2S_SPECIAL_INLINE static float j2s_logf(float x)
{
   const bool subnormal = x < 1.17549435e-38f;
   const float s = j2s_select(subnormal, x * 33554432.0f, x);
   std::int32_t bits;
   std::memcpy(&bits, &s, sizeof bits);
   const std::int32_t mantissa = (bits & 0x007fffff) | 0x3f000000; // s / 2^(e + 1), in [0.5, 1)
   float m;
   std::memcpy(&m, &mantissa, sizeof m);
   const bool low = m < 0.707106781186547524f;
   const std::int32_t e = ((bits >> 23) & 0xff) - 126 - (low ? 1 : 0) - (subnormal ? 25 : 0);
   const float f = j2s_select(low, m + m, m) - 1.0f;
   const float fe = static_cast<float>(e);
   const float z = f * f;
   float p = 7.0376836292e-2f;
   p = p * f - 1.1514610310e-1f;
   p = p * f + 1.1676998740e-1f;
   p = p * f - 1.2420140846e-1f;
   p = p * f + 1.4249322787e-1f;
   p = p * f - 1.6668057665e-1f;
   p = p * f + 2.0000714765e-1f;
   p = p * f - 2.4999993993e-1f;
   p = p * f + 3.3333331174e-1f;
   const float r = (f + (f * z * p - 2.12194440e-4f * fe - 0.5f * z)) + 0.693359375f * fe;
   const float other = j2s_select(x == 0.0f, -std::numeric_limits<float>::infinity(),
                                  j2s_select(x < 0.0f, std::numeric_limits<float>::quiet_NaN(), x));
   return j2s_select((x > 0.0f) & (x <= 3.40282347e38f), r, other);
}
)J2S"},
      {"j2s_expf", {"j2s_select"}, R"J2S(
/// exp(x) as Cephes' expf: 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 (ln 2 in two parts), n found
/// in the low bits of x / ln 2 + 1.5 2^23 (no float -> int conversion, undefined for NaN), 2^n as two
/// factors that are normal floats; inf from 88.72284 on, 0 at -inf, NaN stays NaN
J2S_SPECIAL_INLINE static float j2s_expf(float x)
{
   const float c = j2s_select(x < -104.0f, -104.0f, j2s_select(x > 89.0f, 89.0f, x));
   const float shifted = c * 1.44269504088896341f + 12582912.0f;
   std::int32_t bits;
   std::memcpy(&bits, &shifted, sizeof bits);
   std::int32_t n = bits - 0x4b400000;
   n = n < -150 ? -150 : (n > 128 ? 128 : n);
   const float fn = shifted - 12582912.0f;
   const float r = (c - fn * 0.693359375f) + fn * 2.12194440e-4f;
   float p = 1.9875691500e-4f;
   p = p * r + 1.3981999507e-3f;
   p = p * r + 8.3334519073e-3f;
   p = p * r + 4.1665795894e-2f;
   p = p * r + 1.6666665459e-1f;
   p = p * r + 5.0000001201e-1f;
   const std::int32_t h = n >> 1;
   const std::uint32_t b1 = static_cast<std::uint32_t>(h + 127) << 23, b2 = static_cast<std::uint32_t>(n - h + 127) << 23;
   float f1, f2;
   std::memcpy(&f1, &b1, sizeof f1);
   std::memcpy(&f2, &b2, sizeof f2);
   return (p * r * r + r + 1.0f) * f1 * f2;
}
)J2S"},
      {"j2s_rsqrtf", {}, R"J2S(
/// 1 / sqrt(x) for a normal finite x > 0: a first guess from the bits, three Newton steps (within 2 ulp;
/// std::sqrt keeps errno and is a call where x < 0, which stops the vectoriser)
J2S_SPECIAL_INLINE static float j2s_rsqrtf(float x)
{
   std::int32_t bits;
   std::memcpy(&bits, &x, sizeof bits);
   bits = 0x5f375a86 - (bits >> 1);
   float y;
   std::memcpy(&y, &bits, sizeof y);
   y = y * (1.5f - 0.5f * x * y * y);
   y = y * (1.5f - 0.5f * x * y * y);
   y = y * (1.5f - 0.5f * x * y * y);
   return y;
}
)J2S"},
      {"j2s_lgamma", {"j2s_select", "j2s_floorf", "j2s_sinpi", "j2s_logf"}, R"J2S(
/// log|Gamma(x)| by the Lanczos approximation (g = 7, 9 terms) as XLA computes it, with the reflection
/// lgamma(x) = log(pi) - lgamma(1 - x) - log|sin(pi x)| below 0.5; +inf at 0, the negative integers and +-inf
J2S_SPECIAL_INLINE static float j2s_lgamma(float x)
{
   static constexpr float kLanczos[8] = {676.520368121885099f, -1259.13921672240287f, 771.323428777653079f,
                                         -176.615029162140599f, 12.5073432786869048f, -0.138571095265720117f,
                                         9.98436957801957086e-6f, 1.50563273514931156e-7f};
   const bool reflect = x < 0.5f;
   const float z = j2s_select(reflect, -x, x - 1.0f); // lgamma(z + 1)
   float sum = 1.0f;
#pragma GCC unroll 8
   for (int i = 0; i < 8; i++)
      sum += kLanczos[i] / (z + static_cast<float>(i + 1));
   const float t = z + 7.5f;
   const float logT = j2s_logf(t);
   // (z + 1/2) log(t) - t as (z + 1/2 - t / log(t)) log(t): no overflow for large z
   const float logY = 0.918938533204672742f + (z + 0.5f - t / logT) * logT + j2s_logf(sum);
   // |sin(pi x)| = sin(pi r), r the distance of |x| to the nearest integer: exact, 0 at the integers
   const float a = std::fabs(x);
   const float frac = a - j2s_floorf(a);
   const float logSin = j2s_logf(j2s_sinpi(j2s_select(frac > 0.5f, 1.0f - frac, frac)));
   const float reflection = j2s_select(logSin > -std::numeric_limits<float>::infinity(),
                                       1.14472988584940017f - logSin - logY, -logSin);
   return j2s_select(a == std::numeric_limits<float>::infinity(), a, j2s_select(reflect, reflection, logY));
}
)J2S"},
      {"j2s_digamma", {"j2s_select", "j2s_floorf", "j2s_sinpi", "j2s_logf"}, R"J2S(
/// digamma(x) = d/dx lgamma(x) from the same Lanczos sum as j2s_lgamma (as XLA computes it), with the
/// reflection digamma(x) = digamma(1 - x) - pi cot(pi x) below 0.5; NaN at 0, the negative integers and -inf
J2S_SPECIAL_INLINE static float j2s_digamma(float x)
{
   static constexpr float kLanczos[8] = {676.520368121885099f, -1259.13921672240287f, 771.323428777653079f,
                                         -176.615029162140599f, 12.5073432786869048f, -0.138571095265720117f,
                                         9.98436957801957086e-6f, 1.50563273514931156e-7f};
   const bool reflect = x < 0.5f;
   const float z = j2s_select(reflect, -x, x - 1.0f);
   float num = 0.0f, den = 1.0f;
#pragma GCC unroll 8
   for (int i = 0; i < 8; i++) {
      const float d = z + static_cast<float>(i + 1);
      const float q = kLanczos[i] / d;
      num -= q / d;
      den += q;
   }
   const float t = z + 7.5f;
   const float y = j2s_logf(t) + num / den - 7.0f / t;
   // cot(pi x) from r = x - round(x) in [-0.5, 0.5] (exact), cos(pi r) = sin(pi (1/2 - |r|))
   const float r = x + std::fabs(j2s_floorf(x + 0.5f));
   const float reflection = y - 3.14159265358979f * j2s_sinpi(0.5f - std::fabs(r)) / j2s_sinpi(r);
   const bool pole = (x <= 0.0f) & (x == j2s_floorf(x));
   return j2s_select(pole, std::numeric_limits<float>::quiet_NaN(),
                     j2s_select(x == std::numeric_limits<float>::infinity(), x, j2s_select(reflect, reflection, y)));
}
)J2S"},
      {"j2s_pow_minus", {"j2s_select", "j2s_floorf", "j2s_logf", "j2s_expf"}, R"J2S(
/// b^-s as exp(-s log|b|), negative b for integer s only (else NaN); 0 -> inf for s > 0
J2S_SPECIAL_INLINE static float j2s_pow_minus(float b, float s)
{
   const float m = j2s_expf(-s * j2s_logf(std::fabs(b)));
   const bool integer = s == j2s_floorf(s);
   const bool odd = integer & (j2s_floorf(0.5f * s) != 0.5f * s);
   return j2s_select(b < 0.0f, j2s_select(integer, j2s_select(odd, -m, m), std::numeric_limits<float>::quiet_NaN()), m);
}
)J2S"},
      {"j2s_zeta", {"j2s_select", "j2s_floorf", "j2s_pow_minus"}, R"J2S(
/// Hurwitz zeta(s, q) = sum over k >= 0 of (q + k)^-s by the Euler-Maclaurin formula: 10 terms summed, the
/// rest at a = q + 10 as a^(1-s)/(s-1) + a^-s/2 + 12 Bernoulli terms
J2S_SPECIAL_INLINE static float j2s_zeta(float s, float q)
{
   // B_2j / (2j)!, j = 1..12
   static constexpr float kBernoulli[12] = {
      8.33333333333333333e-2f,  -1.38888888888888889e-3f, 3.30687830687830688e-5f,  -8.26719576719576720e-7f,
      2.08767569878680990e-8f,  -5.28419013868749318e-10f, 1.33825365306846788e-11f, -3.38968029632258287e-13f,
      8.58606205627784456e-15f, -2.17486869855806187e-16f, 5.50900282836022952e-18f, -1.39544646858125233e-19f};
   float sum = 0.0f;
#pragma GCC unroll 10
   for (int k = 0; k < 10; k++)
      sum += j2s_pow_minus(q + static_cast<float>(k), s);
   const float a = q + 10.0f;
   const float as = j2s_pow_minus(a, s);
   sum += a * as / (s - 1.0f) + 0.5f * as;
   // term j: B_2j / (2j)! s (s + 1) ... (s + 2j - 2) a^(-s - 2j + 1)
   const float inverseSquare = 1.0f / (a * a);
   float factor = s * as / a;
#pragma GCC unroll 12
   for (int j = 0; j < 12; j++) {
      sum += kBernoulli[j] * factor;
      factor *= (s + static_cast<float>(2 * j + 1)) * (s + static_cast<float>(2 * j + 2)) * inverseSquare;
   }
   // as XLA: inf at s = 1, NaN below; for q <= 0 defined for an integer s only, and at an integer q <= 0
   // (a pole) +inf for an even s, else NaN
   const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
   const bool sInteger = s == j2s_floorf(s), sEven = (0.5f * s == j2s_floorf(0.5f * s)) & (s < inf);
   const bool qNonPositive = q <= 0.0f;
   float value = j2s_select(s < 1.0f, nan, sum);
   value = j2s_select(qNonPositive & !sInteger, nan, value);
   value = j2s_select(qNonPositive & (q == j2s_floorf(q)), j2s_select(sEven, inf, nan), value);
   return j2s_select(s == 1.0f, inf, value);
}
)J2S"},
      {"j2s_polygamma", {"j2s_select", "j2s_floorf", "j2s_expf", "j2s_lgamma", "j2s_digamma", "j2s_zeta"}, R"J2S(
/// polygamma(n, x): digamma for n = 0, (-1)^(n+1) n! zeta(n + 1, x) for an integer n > 0, NaN for other n
J2S_SPECIAL_INLINE static float j2s_polygamma(float n, float x)
{
   const float factorial = j2s_expf(j2s_lgamma(n + 1.0f));
   const bool odd = j2s_floorf(0.5f * n) != 0.5f * n;
   const float value = j2s_select(odd, factorial, -factorial) * j2s_zeta(n + 1.0f, x);
   const bool integer = (n >= 0.0f) & (n == j2s_floorf(n));
   return j2s_select(integer, j2s_select(n == 0.0f, j2s_digamma(x), value), std::numeric_limits<float>::quiet_NaN());
}
)J2S"},
      {"j2s_chebyshev", {}, R"J2S(
/// sum of c[k] T_k(t) for k < n (Clenshaw's recurrence)
template <int n>
J2S_SPECIAL_INLINE static float j2s_chebyshev(const float (&c)[n], float t)
{
   float b1 = 0.0f, b2 = 0.0f;
#pragma GCC unroll 32
   for (int k = n - 1; k >= 1; k--) {
      const float b = c[k] + 2.0f * t * b1 - b2;
      b2 = b1;
      b1 = b;
   }
   return c[0] + t * b1 - b2;
}
)J2S"},
      {"j2s_bessel_i0e", {"j2s_select", "j2s_chebyshev", "j2s_rsqrtf"}, R"J2S(
/// exp(-|x|) I0(x): Chebyshev series of exp(-x) I0(x) in x / 4 - 1 for |x| <= 8 and of sqrt(x) exp(-x) I0(x)
/// in 16 / x - 1 above (interpolants of degree 40 of scipy's i0e, truncated below 2e-9 of the first term)
J2S_SPECIAL_INLINE static float j2s_bessel_i0e(float x)
{
   static constexpr float kSmall[19] = {
      3.38397652e-01f,  -3.04682672e-01f, 1.71620905e-01f,  -9.49010998e-02f, 4.93052825e-02f,
      -2.37374157e-02f, 1.05464607e-02f,  -4.32430999e-03f, 1.63947558e-03f,  -5.76375576e-04f,
      1.88502891e-04f,  -5.75419508e-05f, 1.64484482e-05f,  -4.41673819e-06f, 1.11738757e-06f,
      -2.67079372e-07f, 6.04699508e-08f,  -1.30002498e-08f, 2.65982325e-09f};
   static constexpr float kLarge[7] = {4.02245194e-01f, 3.36911646e-03f, 6.88975852e-05f, 2.89137051e-06f,
                                       2.04891862e-07f, 2.26666899e-08f, 3.39623196e-09f};
   const float a = std::fabs(x);
   const float large = j2s_chebyshev(kLarge, 16.0f / a - 1.0f) * j2s_rsqrtf(a);
   return j2s_select(a <= 8.0f, j2s_chebyshev(kSmall, 0.25f * a - 1.0f),
                     j2s_select(a == std::numeric_limits<float>::infinity(), 0.0f, large));
}
)J2S"},
      {"j2s_bessel_i1e", {"j2s_select", "j2s_chebyshev", "j2s_rsqrtf"}, R"J2S(
/// exp(-|x|) I1(x): Chebyshev series of exp(-x) I1(x) / x in x / 4 - 1 for |x| <= 8 and of
/// sqrt(x) exp(-x) I1(x) in 16 / x - 1 above (fitted as for j2s_bessel_i0e); odd in x
J2S_SPECIAL_INLINE static float j2s_bessel_i1e(float x)
{
   static constexpr float kSmall[19] = {
      1.26293600e-01f,  -1.76416516e-01f, 1.02643661e-01f,  -5.29459827e-02f, 2.47264486e-02f,
      -1.05640851e-02f, 4.15642280e-03f,  -1.51357241e-03f, 5.12285973e-04f,  -1.61760821e-04f,
      4.78156508e-05f,  -1.32731639e-05f, 3.47025139e-06f,  -8.56872020e-07f, 2.00329481e-07f,
      -4.44505908e-08f, 9.38153732e-09f,  -1.88724947e-09f, 3.62558789e-10f};
   static constexpr float kLarge[7] = {3.89288127e-01f,  -9.76109784e-03f, -1.10588939e-04f, -3.88256467e-06f,
                                       -2.51223611e-07f, -2.63146891e-08f, -3.83538046e-09f};
   const float a = std::fabs(x);
   const float large = j2s_chebyshev(kLarge, 16.0f / a - 1.0f) * j2s_rsqrtf(a);
   const float value = j2s_select(a <= 8.0f, a * j2s_chebyshev(kSmall, 0.25f * a - 1.0f),
                                  j2s_select(a == std::numeric_limits<float>::infinity(), 0.0f, large));
   return std::copysign(value, x);
}
)J2S"},
      {"j2s_erf_inv", {"j2s_select", "j2s_logf", "j2s_rsqrtf"}, R"J2S(
/// erf^-1(x) by M. Giles' single-precision polynomials in w = -log(1 - x^2) (XLA's), with 1 - x^2 formed
/// as (1 - x)(1 + x): exact for |x| >= 1/2, where x * x rounds away what is left of 1 - x^2 near +-1
J2S_SPECIAL_INLINE static float j2s_erf_inv(float x)
{
   const float w = -j2s_logf((1.0f - x) * (1.0f + x));
   const float zc = w - 2.5f;
   float pc = 2.81022636e-08f;
   pc = pc * zc + 3.43273939e-07f;
   pc = pc * zc - 3.5233877e-06f;
   pc = pc * zc - 4.39150654e-06f;
   pc = pc * zc + 0.00021858087f;
   pc = pc * zc - 0.00125372503f;
   pc = pc * zc - 0.00417768164f;
   pc = pc * zc + 0.246640727f;
   pc = pc * zc + 1.50140941f;
   const float zt = w * j2s_rsqrtf(w) - 3.0f; // sqrt(w) - 3, w >= 5 where it is used
   float pt = -0.000200214257f;
   pt = pt * zt + 0.000100950558f;
   pt = pt * zt + 0.00134934322f;
   pt = pt * zt - 0.00367342844f;
   pt = pt * zt + 0.00573950773f;
   pt = pt * zt - 0.0076224613f;
   pt = pt * zt + 0.00943887047f;
   pt = pt * zt + 1.00167406f;
   pt = pt * zt + 2.83297682f;
   const float a = std::fabs(x);
   return j2s_select(a == 1.0f, x * std::numeric_limits<float>::infinity(),
                     j2s_select(a > 1.0f, std::numeric_limits<float>::quiet_NaN(), j2s_select(w < 5.0f, pc, pt) * x));
}
)J2S"},
      {"j2s_lgamma_positive", {}, R"J2S(
/// log Gamma(a) for a > 0 in double: Lanczos (g = 7, 9 terms, about 1e-15 relative) for a >= 1/2, below
/// lgamma(a + 1) - log(a)
static double j2s_lgamma_positive(double a)
{
   static constexpr double kLanczos[8] = {676.520368121885099, -1259.13921672240287, 771.323428777653079,
                                          -176.615029162140599, 12.5073432786869048, -0.138571095265720117,
                                          9.98436957801957086e-6, 1.50563273514931156e-7};
   const bool small = a < 0.5;
   const double z = small ? a : a - 1.0; // lgamma(z + 1)
   double sum = 0.99999999999980993;
   for (int i = 0; i < 8; i++)
      sum += kLanczos[i] / (z + (i + 1));
   const double t = z + 7.5;
   const double value = 0.918938533204672742 + (z + 0.5) * std::log(t) - t + std::log(sum);
   return small ? value - std::log(a) : value;
}
)J2S"},
      {"j2s_incomplete_gamma", {"j2s_lgamma_positive"}, R"J2S(
/// The regularized incomplete gamma functions P(a, x) (upper = false) and Q(a, x) = 1 - P (upper = true),
/// in double: the series of P for x < a + 1, else the continued fraction of Q (modified Lentz), each until
/// its terms no longer change the sum in double (at most 2000 steps); special values as lax.igamma
static float j2s_incomplete_gamma(float af, float xf, bool upper)
{
   const double a = af, x = xf;
   if (std::isnan(a) || std::isnan(x) || a < 0.0 || x < 0.0 || (a == 0.0 && x == 0.0))
      return std::numeric_limits<float>::quiet_NaN();
   if (x == 0.0)
      return upper ? 1.0f : 0.0f;
   if (a == 0.0 || std::isinf(x))
      return upper ? 0.0f : 1.0f;
   if (std::isinf(a))
      return upper ? 1.0f : 0.0f;
   const double front = std::exp(a * std::log(x) - x - j2s_lgamma_positive(a)); // x^a e^-x / Gamma(a)
   if (x < a + 1.0) {
      double r = a, term = 1.0, sum = 1.0;
      for (int n = 0; n < 2000 && term > sum * 1e-17; n++) {
         r += 1.0;
         term *= x / r;
         sum += term;
      }
      const double p = sum * front / a;
      return static_cast<float>(upper ? 1.0 - p : p);
   }
   const double tiny = 1e-300;
   double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
   for (int i = 1; i < 2000; i++) {
      const double an = -i * (i - a);
      b += 2.0;
      d = an * d + b;
      d = std::fabs(d) < tiny ? tiny : d;
      c = b + an / c;
      c = std::fabs(c) < tiny ? tiny : c;
      d = 1.0 / d;
      const double delta = d * c;
      h *= delta;
      if (std::fabs(delta - 1.0) < 1e-16)
         break;
   }
   const double q = front * h;
   return static_cast<float>(upper ? q : 1.0 - q);
}
)J2S"},
      {"j2s_igamma", {"j2s_incomplete_gamma"}, R"J2S(
/// the regularized lower incomplete gamma function P(a, x)
static float j2s_igamma(float a, float x) { return j2s_incomplete_gamma(a, x, false); }
)J2S"},
      {"j2s_igammac", {"j2s_incomplete_gamma"}, R"J2S(
/// the regularized upper incomplete gamma function Q(a, x) = 1 - P(a, x)
static float j2s_igammac(float a, float x) { return j2s_incomplete_gamma(a, x, true); }
)J2S"},
      {"j2s_digamma_positive", {}, R"J2S(
/// digamma(a) for a > 0 in double: the recurrence digamma(a) = digamma(a + 1) - 1/a up to a >= 10, then the
/// asymptotic series (its first neglected term, 1/(132 z^10)... 691/(32760 z^12), is below 3e-14 there)
static double j2s_digamma_positive(double a)
{
   double shift = 0.0;
   for (; a < 10.0; a += 1.0)
      shift -= 1.0 / a;
   const double r = 1.0 / (a * a);
   const double series = r * (1.0 / 12 - r * (1.0 / 120 - r * (1.0 / 252 - r * (1.0 / 240 - r * (1.0 / 132)))));
   return shift + std::log(a) - 0.5 / a - series;
}
)J2S"},
      {"j2s_igamma_grad_a", {"j2s_lgamma_positive", "j2s_digamma_positive"}, R"J2S(
/// d/da P(a, x), P the regularized lower incomplete gamma function, in double: where x <= 1 or x <= a the
/// series of P, else the continued fraction of Q = 1 - P (the convergents' recurrence, rescaled against
/// overflow), each with its derivative in a carried along step by step, until value and derivative no
/// longer change in double (at most 2000 steps); as lax.igamma_grad_a: NaN for a <= 0, x < 0 or NaN
/// arguments, 0 at x = 0 (and at x = inf, where P is 1 for every a)
static float j2s_igamma_grad_a(float af, float xf)
{
   const double a = af, x = xf;
   if (std::isnan(a) || std::isnan(x) || a <= 0.0 || x < 0.0)
      return std::numeric_limits<float>::quiet_NaN();
   if (x == 0.0 || std::isinf(x) || std::isinf(a))
      return 0.0f;
   const double logX = std::log(x);
   if (!(x > 1.0 && x > a)) {
      // P = x^a e^-x / Gamma(a + 1) * S, S = sum_n c_n, c_n = x^n / ((a + 1) ... (a + n)), dc_n/da carried
      double r = a, c = 1.0, sum = 1.0, dc = 0.0, dsum = 0.0;
      for (int n = 0; n < 2000; n++) {
         r += 1.0;
         dc = (dc * x - c * x / r) / r;
         c *= x / r;
         sum += c;
         dsum += dc;
         if (c <= sum * 1e-17 && std::fabs(dc) <= std::fabs(dsum) * 1e-17)
            break;
      }
      const double logFront = a * logX - x - j2s_lgamma_positive(a + 1.0); // log(x^a e^-x / Gamma(a + 1))
      const double front = std::exp(logFront);
      return static_cast<float>(front * (dsum + sum * (logX - j2s_digamma_positive(a + 1.0))));
   }
   // Q = x^a e^-x / Gamma(a) * h, h the limit of p_k / q_k (Cephes' igamc recurrence), dp/da and dq/da carried
   double y = 1.0 - a, z = x + y + 1.0, c = 0.0;
   double pkm2 = 1.0, qkm2 = x, pkm1 = x + 1.0, qkm1 = z * x;
   double dpkm2 = 0.0, dqkm2 = 0.0, dpkm1 = 0.0, dqkm1 = -x;
   double h = pkm1 / qkm1, dh = (dpkm1 - h * dqkm1) / qkm1;
   const double big = 4503599627370496.0, bigInverse = 2.22044604925031308085e-16;
   for (int k = 0; k < 2000; k++) {
      c += 1.0;
      y += 1.0;
      z += 2.0;
      const double yc = y * c;
      const double pk = pkm1 * z - pkm2 * yc, qk = qkm1 * z - qkm2 * yc;
      const double dpk = dpkm1 * z - pkm1 - dpkm2 * yc + pkm2 * c;
      const double dqk = dqkm1 * z - qkm1 - dqkm2 * yc + qkm2 * c;
      bool converged = false;
      if (qk != 0.0) {
         const double next = pk / qk, dnext = (dpk - next * dqk) / qk;
         converged = std::fabs(next - h) <= std::fabs(next) * 1e-15 && std::fabs(dnext - dh) <= std::fabs(dnext) * 1e-15;
         h = next;
         dh = dnext;
      }
      pkm2 = pkm1;
      pkm1 = pk;
      qkm2 = qkm1;
      qkm1 = qk;
      dpkm2 = dpkm1;
      dpkm1 = dpk;
      dqkm2 = dqkm1;
      dqkm1 = dqk;
      if (std::fabs(pk) > big) {
         pkm2 *= bigInverse;
         pkm1 *= bigInverse;
         qkm2 *= bigInverse;
         qkm1 *= bigInverse;
         dpkm2 *= bigInverse;
         dpkm1 *= bigInverse;
         dqkm2 *= bigInverse;
         dqkm1 *= bigInverse;
      }
      if (converged)
         break;
   }
   const double front = std::exp(a * logX - x - j2s_lgamma_positive(a)); // x^a e^-x / Gamma(a)
   return static_cast<float>(-front * (dh + h * (logX - j2s_digamma_positive(a))));
}
)J2S"},
      {"j2s_betainc", {"j2s_lgamma_positive"}, R"J2S(
/// the regularized incomplete beta function I_x(a, b) in double: its continued fraction (modified Lentz,
/// until a step changes it by less than 1e-15, at most 300 steps) where x < (a + 1) / (a + b + 2), else
/// 1 - I_(1-x)(b, a); special values as lax.betainc
static float j2s_betainc(float af, float bf, float xf)
{
   double a = af, b = bf, x = xf;
   const double inf = std::numeric_limits<double>::infinity();
   const bool aZero = a == 0.0 || b == inf, bZero = b == 0.0 || a == inf;
   if (std::isnan(a) || std::isnan(b) || std::isnan(x) || a < 0.0 || b < 0.0 || x < 0.0 || x > 1.0 || (aZero && bZero))
      return std::numeric_limits<float>::quiet_NaN();
   if ((bZero && x != 1.0) || (aZero && x == 0.0))
      return 0.0f;
   if (aZero || bZero)
      return 1.0f;
   const bool swap = !(x < (a + 1.0) / (a + b + 2.0));
   if (swap) {
      const double t = a;
      a = b;
      b = t;
      x = 1.0 - x; // exact: x is a float
   }
   const double logBeta = j2s_lgamma_positive(a) + j2s_lgamma_positive(b) - j2s_lgamma_positive(a + b);
   const double front = std::exp(a * std::log(x) + b * std::log1p(-x) - logBeta) / a;
   const double tiny = 1e-300;
   double c = 1.0, d = 1.0 - (a + b) * x / (a + 1.0);
   d = 1.0 / (std::fabs(d) < tiny ? tiny : d);
   double h = d;
   for (int m = 1; m <= 300; m++) {
      const double m2 = 2.0 * m;
      double step = m * (b - m) * x / ((a - 1.0 + m2) * (a + m2));
      d = 1.0 + step * d;
      d = 1.0 / (std::fabs(d) < tiny ? tiny : d);
      c = 1.0 + step / c;
      c = std::fabs(c) < tiny ? tiny : c;
      h *= d * c;
      step = -(a + m) * (a + b + m) * x / ((a + m2) * (a + 1.0 + m2));
      d = 1.0 + step * d;
      d = 1.0 / (std::fabs(d) < tiny ? tiny : d);
      c = 1.0 + step / c;
      c = std::fabs(c) < tiny ? tiny : c;
      const double delta = d * c;
      h *= delta;
      if (std::fabs(delta - 1.0) < 1e-15)
         break;
   }
   const double value = front * h;
   return static_cast<float>(swap ? 1.0 - value : value);
}
)J2S"},
   };
   return helpers;
}

/// Whether `code` calls `name` (the name followed by '(' or '<', not the tail of a longer name).
inline bool Calls(const std::string &code, const std::string &name)
{
   for (std::size_t pos = code.find(name); pos != std::string::npos; pos = code.find(name, pos + 1)) {
      const std::size_t end = pos + name.size();
      const bool startsName = pos == 0 || !(std::isalnum(static_cast<unsigned char>(code[pos - 1])) || code[pos - 1] == '_');
      if (startsName && end < code.size() && (code[end] == '(' || code[end] == '<'))
         return true;
   }
   return false;
}

/// The definitions of the helpers that `expression` calls and of those they call (each in its own guarded
/// block, named after the model: the Sessions of several headers in one program each have theirs), or ""
/// when it calls none.
inline std::string Definitions(const std::string &expression, const std::string &model)
{
   const auto &helpers = Helpers();
   std::vector<bool> used(helpers.size(), false);
   // the helpers a used helper needs, until nothing changes (the table is small)
   for (std::size_t i = 0; i < helpers.size(); i++)
      used[i] = Calls(expression, helpers[i].name);
   for (bool changed = true; changed;) {
      changed = false;
      for (std::size_t i = 0; i < helpers.size(); i++)
         for (std::size_t j = 0; used[i] && j < helpers.size(); j++)
            for (const auto &need : helpers[i].needs)
               if (!used[j] && need == helpers[j].name)
                  used[j] = changed = true;
   }
   std::string s;
   for (std::size_t i = 0; i < helpers.size(); i++) {
      if (!used[i])
         continue;
      const std::string guard = "J2S_" + model + "_" + helpers[i].name;
      s += "#ifndef " + guard + "\n#define " + guard + helpers[i].code + "#endif\n";
   }
   return s.empty() ? s : Prelude() + s;
}

} // namespace jax2sofie::special
