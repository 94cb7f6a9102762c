// Vector code of J2S_Reduce for float32 sum, max and min over one run of axes (csrc/owned/reduce.hpp):
//
// - Rows: the reduced axes are the trailing ones, x is [rows, n] with n static (a softmax's max, a
//   layer norm's mean). A block of w rows (w: the level's vector width, at most n) is reduced
//   together: each row's n values are folded into one vector p_i of w lanes (lane l: the values at
//   l, l + w, ...), then the w vectors are folded across their lanes into one vector whose lane i is
//   row i (the "transpose-reduce": log2(w) rounds, each pairs the vectors, gathers the lower and upper
//   halves of each row's lanes with two shuffles and combines them, halving the lanes per row), and
//   stored at once. Per row that is one combine and two shuffles, where folding each row's own
//   vector (a tree of log2(w) shuffle + combine steps) costs log2(w) of each and a scalar store;
//   the rows left after the last full block take the per-row tree. Measured for max over rows of 8,
//   16, 32, 64 and 784 values (3.2 MB of input, one thread, g++ 12 -O2 -march=x86-64-v3): the
//   transpose-reduce took 174, 152, 119, 109, 100 us, the per-row tree 476, 447, 321, 260, 237 us;
//   with SSE2 only 214, 213, 206, 208, 215 us against 368, 339, 330, 386, 590 us. It is used for
//   every row length.
//   A row length that is no multiple of w ends with the vector of the row's last w values, which
//   overlaps the previous one: max/min are idempotent, the sum's overlap lanes are masked to 0.
// - Columns: the run of reduced axes is followed by kept axes, x is [outer, n, inner] with inner
//   static (edge convolutions' max over neighbours, a mean over points): out[o, :] is accumulated
//   over r from x[o, r, :] in vectors along the inner axis, a chunk of vectors at a time held in
//   registers. An inner length that is no multiple of w ends with the vector of the last w lanes,
//   which recomputes (and rewrites with the same values) lanes of the one before.
//
// max/min are branch-free selects with lax.reduce_max's semantics: NaN wins and stays, and -0.0
// ranks below +0.0 (max(-0.0, 0.0) is 0.0 and min is -0.0, as XLA gives). The sum's order differs
// from a sequential one: lanes accumulate every w-th value, then are added pairwise (no less
// accurate than in order; the float32 results agree with JAX's within rtol 1e-4).
//
// The vector code needs GCC or Clang vector extensions (and their two-vector shuffle: Clang's and GCC
// 12's __builtin_shufflevector, older GCC's __builtin_shuffle); other compilers run the scalar loop.
#pragma once

#include "codegen.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace jax2sofie::reduce_vector {

/// The condition under which the vector code is compiled (else the scalar loop).
inline std::string VectorCondition()
{
   return "defined(__GNUC__) || defined(__clang__)";
}

/// J2S_SHUFFLE(int vector type, a, b, lanes...): the lanes of the concatenation a ++ b, by index.
inline std::string ShuffleMacro()
{
   return "\n#ifndef J2S_SHUFFLE\n"
          "#if defined(__clang__) || __GNUC__ >= 12\n"
          "#define J2S_SHUFFLE(IT, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)\n"
          "#else\n"
          "#define J2S_SHUFFLE(IT, a, b, ...) __builtin_shuffle(a, b, (IT){__VA_ARGS__})\n"
          "#endif\n"
          "#endif\n";
}

/// The statement `a = a (op) b` for float vectors of `width` lanes, op: sum | max | min.
inline std::string Combine(const std::string &mode, const std::string &a, const std::string &b, std::int64_t width)
{
   if (mode == "sum")
      return a + " += " + b + ";";
   const std::string I = "j2s_vi" + std::to_string(width), V = codegen::VectorType(width);
   // take b where it ranks above (max) / below (min) a, where it is NaN, and where the two are equal
   // with the sign bit set on a (max: a is -0.0, b may be +0.0) / on b (min): equal values other than
   // zeros are the same number, so taking b there changes nothing
   const std::string better = mode == "max" ? "(" + b + " > " + a + ")" : "(" + b + " < " + a + ")";
   const std::string signed_ = mode == "max" ? "((" + I + ")" + a + " < 0)" : "((" + I + ")" + b + " < 0)";
   return "{ const " + I + " take_ = " + better + " | (" + b + " != " + b + ") | ((" + b + " == " + a + ") & " +
          signed_ + "); " + a + " = (" + V + ")(((" + I + ")" + b + " & take_) | ((" + I + ")" + a + " & ~take_)); }";
}

/// The statement `acc = acc (op) v` for floats (the scalar loop's update, same semantics as Combine).
inline std::string CombineScalar(const std::string &mode, const std::string &acc, const std::string &v)
{
   if (mode == "sum")
      return acc + " += " + v + ";";
   if (mode == "prod")
      return acc + " *= " + v + ";";
   const bool max = mode == "max";
   return "{ const auto v_ = " + v + "; if (v_" + (max ? " > " : " < ") + acc + " || v_ != v_ || (v_ == " + acc +
          " && std::signbit(" + (max ? acc : std::string("v_")) + "))) " + acc + " = v_; }";
}

/// The identity of `mode` as a float expression.
inline std::string Identity(const std::string &mode)
{
   if (mode == "sum")
      return "0.0f";
   return std::string(mode == "max" ? "-" : "") + "std::numeric_limits<float>::infinity()";
}

/// The largest power of two <= n that is at most `width` and at least 4 (n >= 4).
inline std::int64_t BlockWidth(std::int64_t n, std::int64_t width)
{
   std::int64_t w = width;
   while (w > 4 && w > n)
      w /= 2;
   return w;
}

inline std::string Lanes(const std::vector<std::int64_t> &lanes)
{
   std::string s;
   for (auto l : lanes)
      s += (s.empty() ? "" : ", ") + std::to_string(l);
   return s;
}

/// Statements folding row `p`'s vector (w lanes) into `p`'s lane 0: halves combined, log2(w) times.
inline void FoldLanes(codegen::Code &c, const std::string &mode, const std::string &p, std::int64_t w)
{
   const std::string V = codegen::VectorType(w), I = "j2s_vi" + std::to_string(w);
   for (std::int64_t h = w / 2; h >= 1; h /= 2) {
      std::vector<std::int64_t> lanes(w);
      for (std::int64_t o = 0; o < w; o++)
         lanes[o] = o < h ? o + h : o;
      c.Line("{ const " + V + " hi_ = J2S_SHUFFLE(" + I + ", " + p + ", " + p + ", " + Lanes(lanes) + "); " +
             Combine(mode, p, "hi_", w) + " }");
   }
}

/// The statements of rows `r0 .. r0 + count - 1` (pointer `x` at row r0) read into vectors p0, p1, ...
/// of w lanes: each row's n values folded lane-wise, the rows interleaved (independent accumulators).
inline void LoadRows(codegen::Code &c, const std::string &mode, std::int64_t count, std::int64_t n, std::int64_t w,
                     const std::string &rowStride)
{
   const std::string V = codegen::VectorType(w), I = "j2s_vi" + std::to_string(w);
   auto at = [&](std::int64_t i, const std::string &offset) {
      return "*reinterpret_cast<const " + V + " *>(x + " + (i ? std::to_string(i) + " * " + rowStride + " + " : "") +
             offset + ")";
   };
   for (std::int64_t i = 0; i < count; i++)
      c.Line(V + " p" + std::to_string(i) + " = " + at(i, "0") + ";");
   const std::int64_t full = n / w, tail = n % w;
   if (full > 1) {
      c.Open("for (size_t j = " + std::to_string(w) + "; j < " + std::to_string(full * w) + "; j += " +
             std::to_string(w) + ")");
      for (std::int64_t i = 0; i < count; i++) {
         const std::string p = "p" + std::to_string(i);
         c.Line("{ const " + V + " v_ = " + at(i, "j") + "; " + Combine(mode, p, "v_", w) + " }");
      }
      c.Close();
   }
   if (tail) {
      // the row's last w values; for the sum the lanes already read are masked off
      std::string keep;
      for (std::int64_t l = 0; l < w; l++)
         keep += std::string(l ? ", " : "") + (l < w - tail ? "0" : "-1");
      if (mode == "sum")
         c.Line("const " + I + " keep_ = {" + keep + "};");
      for (std::int64_t i = 0; i < count; i++) {
         const std::string p = "p" + std::to_string(i);
         std::string v = at(i, std::to_string(n - w));
         if (mode == "sum")
            v = "(" + V + ")((" + I + ")" + v + " & keep_)";
         c.Line("{ const " + V + " v_ = " + v + "; " + Combine(mode, p, "v_", w) + " }");
      }
   }
}

/// The statements reducing [rows, n] (n static, >= 4) from `x` to `y` at one level's vector width.
inline std::string RowsKernel(const std::string &mode, const std::string &in, const std::string &out,
                              const std::string &rows, std::int64_t n, int width)
{
   const std::int64_t w = BlockWidth(n, width);
   const std::string V = codegen::VectorType(w), I = "j2s_vi" + std::to_string(w), N = std::to_string(n);
   codegen::Code c(1);
   c.Raw(ShuffleMacro());
   // the bound of the blocks is computed once: with a static row count the compiler then sees that
   // the loop of the rows after them runs 0 times (else GCC warns of an overflow it cannot rule out)
   c.Line("const size_t rows_ = " + rows + ", blocked_ = rows_ / " + std::to_string(w) + " * " + std::to_string(w) + ";");
   c.Open("for (size_t r0 = 0; r0 < blocked_; r0 += " + std::to_string(w) + ")");
   c.Line("const float *x = " + in + " + r0 * " + N + ";");
   LoadRows(c, mode, w, n, w, N);
   // transpose-reduce: `names` hold m rows each, a row's partial values in a segment of L lanes
   std::vector<std::string> names;
   for (std::int64_t i = 0; i < w; i++)
      names.push_back("p" + std::to_string(i));
   for (std::int64_t m = 1, L = w, round = 1; names.size() > 1; m *= 2, L /= 2, round++) {
      const std::int64_t half = L / 2;
      std::vector<std::int64_t> lo(w), hi(w);
      for (std::int64_t o = 0; o < w; o++) {
         const std::int64_t seg = o / half, off = o % half;
         lo[o] = seg < m ? seg * L + off : w + (seg - m) * L + off;
         hi[o] = lo[o] + half;
      }
      std::vector<std::string> next;
      for (std::size_t k = 0; k + 1 < names.size(); k += 2) {
         const std::string q = "q" + std::to_string(round) + "_" + std::to_string(k / 2);
         const std::string a = names[k], b = names[k + 1];
         c.Line(V + " " + q + " = J2S_SHUFFLE(" + I + ", " + a + ", " + b + ", " + Lanes(lo) + ");");
         c.Line("{ const " + V + " hi_ = J2S_SHUFFLE(" + I + ", " + a + ", " + b + ", " + Lanes(hi) + "); " +
                Combine(mode, q, "hi_", w) + " }");
         next.push_back(q);
      }
      names = next;
   }
   c.Line("*reinterpret_cast<" + V + " *>(" + out + " + r0) = " + names[0] + ";");
   c.Close();
   // the rows after the last full block, one at a time
   c.Open("for (size_t r0 = blocked_; r0 < rows_; r0++)");
   c.Line("const float *x = " + in + " + r0 * " + N + ";");
   LoadRows(c, mode, 1, n, w, N);
   FoldLanes(c, mode, "p0", w);
   c.Line(out + "[r0] = p0[0];");
   c.Close();
   return c.Str();
}

/// The statements reducing [outer, n, inner] over n (inner static, >= 4) at one level's vector width.
inline std::string ColumnsKernel(const std::string &mode, const std::string &in, const std::string &out,
                                 const std::string &outer, const std::string &n, std::int64_t inner, const codegen::Isa &isa)
{
   const std::int64_t w = BlockWidth(inner, isa.width);
   const std::string V = codegen::VectorType(w), W = std::to_string(w), In = std::to_string(inner);
   // vectors at offsets 0, w, 2w, ... and, when inner is no multiple of w, inner - w
   std::vector<std::int64_t> offsets;
   for (std::int64_t f = 0; f + w <= inner; f += w)
      offsets.push_back(f);
   if (inner % w)
      offsets.push_back(inner - w);
   // accumulators per chunk: a quarter of the registers (max/min need temporaries besides)
   const std::int64_t chunk = isa.registers / 4;
   const std::int64_t fullChunks = static_cast<std::int64_t>(offsets.size()) / chunk;
   codegen::Code c(1);
   c.Line("const size_t outer_ = " + outer + ", n_ = " + n + ";");
   c.Line("const " + V + " identity_ = " + V + "{} + " + Identity(mode) + ";");
   c.Loop("o", "outer_");
   c.Line("const float *x = " + in + " + o * n_ * " + In + ";");
   c.Line("float *y = " + out + " + o * " + In + ";");
   auto pass = [&](const std::vector<std::string> &at) { // one pass over r for vectors at offsets `at`
      for (std::size_t k = 0; k < at.size(); k++)
         c.Line(V + " a" + std::to_string(k) + " = identity_;");
      c.Open("for (size_t r = 0; r < n_; r++)");
      c.Line("const float *xr = x + r * " + In + ";");
      for (std::size_t k = 0; k < at.size(); k++)
         c.Line("{ const " + V + " v_ = *reinterpret_cast<const " + V + " *>(xr + " + at[k] + "); " +
                Combine(mode, "a" + std::to_string(k), "v_", w) + " }");
      c.Close();
      for (std::size_t k = 0; k < at.size(); k++)
         c.Line("*reinterpret_cast<" + V + " *>(y + " + at[k] + ") = a" + std::to_string(k) + ";");
   };
   if (fullChunks > 1) {
      c.Open("for (size_t c = 0; c < " + std::to_string(fullChunks * chunk * w) + "; c += " +
             std::to_string(chunk * w) + ")");
      std::vector<std::string> at;
      for (std::int64_t k = 0; k < chunk; k++)
         at.push_back("c" + (k ? " + " + std::to_string(k * w) : std::string()));
      pass(at);
      c.Close();
   }
   const std::size_t done = fullChunks > 1 ? static_cast<std::size_t>(fullChunks * chunk) : 0;
   for (std::size_t first = done; first < offsets.size(); first += chunk) {
      std::vector<std::string> at;
      for (std::size_t k = first; k < offsets.size() && k < first + chunk; k++)
         at.push_back(std::to_string(offsets[k]));
      c.OpenScope();
      pass(at);
      c.Close();
   }
   c.Close();
   return c.Str();
}

} // namespace jax2sofie::reduce_vector
