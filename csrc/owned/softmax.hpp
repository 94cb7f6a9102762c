// J2S_Softmax: jax.nn.softmax over the last axis of a float32 tensor, in groups of contiguous rows.
//
// What jax.nn.softmax traces to is five loops over memory (a max reduction, x - max and its exp, a
// sum reduction, a divide); passes/softmax.py replaces them by this operator, which does a group of
// rows while it is in the L1 cache: their maxima in vectors, exp(x - max) into the output in loops
// the compiler vectorises, their sums in vectors, then the divides. The numbers are JAX's formula
// unchanged: the max is subtracted (a row of all -inf gives NaN, as in JAX: -inf - -inf), a NaN
// anywhere in a row makes the whole row NaN, and the result is exp / sum (a divide, not a multiply
// by the reciprocal). The exp is the expression the Python side gives (`exp` attribute: the
// vectorisable exp of ops/expressions.py over `x0`), so it is the same as J2S_Elementwise's.
#pragma once

#include "codegen.hpp"
#include "elementwise.hpp"
#include "owned_operator.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace jax2sofie {

namespace row_kernels {

/// `#pragma GCC ivdep` before a loop that writes the output while it reads the input (they never
/// overlap: SOFIE places an operator's outputs before it frees its inputs), so that GCC at -O2
/// vectorises it without a run-time overlap check; `block`: the loop is the inner loop of a block,
/// which GCC -O3 would otherwise unroll completely before vectorising (see elementwise.hpp).
inline std::string NoAliasing(bool block)
{
   return std::string("\n#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC ivdep\n") +
          (block ? "#pragma GCC unroll 1\n" : "") + "#endif";
}

/// `for (j = 0; j < n; j++) body(j)` over a row of a static length, in blocks of 16 iterations and a
/// loop over the rest: GCC at -O2 vectorises only loops whose trip count is a known multiple of the
/// vector length, which 16 is at every level.
template <class Body>
void BlockedLoop(codegen::Code &c, std::int64_t n, Body body)
{
   constexpr std::int64_t block = 16;
   const std::int64_t full = n / block * block;
   if (full > 0) {
      // `jb + 16 <= n`, not `jb < full`: GCC -O2 vectorises the inner loop only in the first form
      c.Open("for (size_t jb = 0; jb + " + std::to_string(block) + " <= " + std::to_string(n) + "; jb += " +
             std::to_string(block) + ")");
      c.Line(NoAliasing(true));
      c.Open("for (size_t j = jb; j < jb + " + std::to_string(block) + "; j++)");
      body(c);
      c.Close(2);
   }
   if (full < n) {
      c.Line(NoAliasing(false));
      c.Open("for (size_t j = " + std::to_string(full) + "; j < " + std::to_string(n) + "; j++)");
      body(c);
      c.Close();
   }
}

/// Declares `float result` = the max (NaN wins, as lax.reduce_max) or the sum of the `n` floats at
/// `row`: in vectors of the level's width (narrower for a short row, none below 4 floats), the
/// lanes and the elements past the last full vector then folded in one by one.
inline void RowReduction(codegen::Code &c, const codegen::Isa &isa, bool isMax, const std::string &row,
                         std::int64_t n, const std::string &result)
{
   auto update = [&](const std::string &acc, const std::string &v) {
      if (!isMax)
         return acc + " += " + v + ";";
      return "{ const float v_ = " + v + "; if (v_ > " + acc + " || v_ != v_) " + acc + " = v_; }";
   };
   std::int64_t w = isa.width;
   while (w > 4 && w > n)
      w /= 2;
   if (n < w) { // too short for a vector
      c.Line("float " + result + " = " + row + "[0];");
      c.Line("for (size_t j = 1; j < " + std::to_string(n) + "; j++) " + update(result, row + "[j]"));
      return;
   }
   const std::int64_t full = n / w;
   const std::string W = std::to_string(w), V = codegen::VectorType(w);
   c.Line("float " + result + ";");
   c.OpenScope();
   c.Line("const " + V + " *rv = reinterpret_cast<const " + V + " *>(" + row + ");");
   c.Line(V + " acc = rv[0];");
   if (full > 1) {
      c.Open("for (size_t j = 1; j < " + std::to_string(full) + "; j++)");
      c.Line(V + " v = rv[j];");
      if (!isMax) {
         c.Line("acc += v;");
      } else {
         c.Line("\n#if defined(__GNUC__) || defined(__clang__)");
         c.Line("const j2s_vi" + W + " take = (v > acc) | (v != v);");
         c.Line("acc = (" + V + ")(((j2s_vi" + W + ")v & take) | ((j2s_vi" + W + ")acc & ~take));");
         c.Line("\n#else");
         c.Line("for (int l = 0; l < " + W + "; l++) " + update("acc[l]", "v[l]"));
         c.Line("\n#endif");
      }
      c.Close();
   }
   // the lanes folded in halves, in vectors down to 4 lanes, then one by one: a row's serial chain of
   // dependent steps is then 2 + log2(width / 4) long, not width - 1 (a short row is mostly this)
   std::string lanes = "acc";
   for (std::int64_t half = w / 2; half >= 4; half /= 2) {
      const std::string H = std::to_string(half), VH = codegen::VectorType(half), folded = "acc" + H;
      c.Line(VH + " " + folded + ", hi" + H + ";");
      c.Line("std::memcpy(&" + folded + ", &" + lanes + ", sizeof " + folded + ");");
      c.Line("std::memcpy(&hi" + H + ", reinterpret_cast<const char *>(&" + lanes + ") + sizeof " + folded + ", sizeof hi" +
             H + ");");
      if (!isMax) {
         c.Line(folded + " += hi" + H + ";");
      } else {
         c.Line("\n#if defined(__GNUC__) || defined(__clang__)");
         c.Line("const j2s_vi" + H + " take" + H + " = (hi" + H + " > " + folded + ") | (hi" + H + " != hi" + H + ");");
         c.Line(folded + " = (" + VH + ")(((j2s_vi" + H + ")hi" + H + " & take" + H + ") | ((j2s_vi" + H + ")" + folded +
                " & ~take" + H + "));");
         c.Line("\n#else");
         c.Line("for (int l = 0; l < " + H + "; l++) " + update(folded + "[l]", "hi" + H + "[l]"));
         c.Line("\n#endif");
      }
      lanes = folded;
   }
   c.Line(result + " = " + lanes + "[0];");
   c.Line("for (int l = 1; l < 4; l++) " + update(result, lanes + "[l]"));
   if (full * w < n)
      c.Line("for (size_t j = " + std::to_string(full * w) + "; j < " + std::to_string(n) + "; j++) " +
             update(result, row + "[j]"));
   c.Close();
}

/// The statements of a J2S_Elementwise-style expression ("t0 = ...; result") over `x0`, ending in
/// `target = result;`.
inline void ExpressionStatements(codegen::Code &c, const std::string &expression, const std::string &target)
{
   auto trim = [](const std::string &s) {
      const auto b = s.find_first_not_of(' ');
      const auto e = s.find_last_not_of(' ');
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
   };
   std::string rest = expression;
   for (std::size_t pos; (pos = rest.find(';')) != std::string::npos; rest = rest.substr(pos + 1))
      c.Line("const auto " + trim(rest.substr(0, pos)) + ";");
   c.Line(target + " = " + trim(rest) + ";");
}

/// Rows per group of a row kernel (J2S_Softmax, J2S_LayerNorm): about 8 KB of rows, 1 to 64, each step
/// of the kernel done over the whole group before the next, so that the rows of a group are
/// independent work for the core and the group stays in the L1 cache.
inline std::int64_t RowsPerGroup(std::int64_t rowLength)
{
   return std::max<std::int64_t>(1, std::min<std::int64_t>(64, 2048 / rowLength));
}

/// Opens the loop over the rows of the group at r0 (`rows` of them) and points x at row r0 + i of
/// `in` and y at that of `out`, rows of `rowLength` floats (a step may read only one of them).
inline void OpenRowOfGroup(codegen::Code &c, const std::string &in, const std::string &out, std::int64_t rowLength)
{
   const std::string N = std::to_string(rowLength);
   c.Open("for (size_t i = 0; i < rows; i++)");
   c.Line("const float *x = " + in + " + (r0 + i) * " + N + ";");
   c.Line("float *y = " + out + " + (r0 + i) * " + N + ";");
   c.Line("(void)x;");
   c.Line("(void)y;");
}

/// The static length of the last axis of `shape` (what a row kernel needs to unroll its row).
inline std::int64_t StaticRowLength(const std::vector<SOFIE::Dim> &shape, const std::string &kind)
{
   if (shape.empty())
      throw std::runtime_error("jax2sofie " + kind + ": the input has rank 0 (rows are along the last axis)");
   if (shape.back().isParam)
      throw std::runtime_error("jax2sofie " + kind + ": the last axis has the symbolic size '" + shape.back().param +
                               "' (its length must be static)");
   if (shape.back().dim == 0)
      throw std::runtime_error("jax2sofie " + kind + ": the last axis has size 0");
   return static_cast<std::int64_t>(shape.back().dim);
}

} // namespace row_kernels

class SoftmaxOperator final : public OwnedOperator {
public:
   SoftmaxOperator(std::string expExpression, std::string x, std::string y)
      : OwnedOperator("J2S_Softmax", {std::move(x)}, {std::move(y)}), fExp(std::move(expExpression))
   {
      if (fExp.empty())
         throw std::runtime_error("jax2sofie J2S_Softmax: empty exp expression");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0);
      if (x.type != SOFIE::ETensorType::FLOAT)
         throw std::runtime_error("jax2sofie J2S_Softmax: the input must be float32");
      fRowLength = row_kernels::StaticRowLength(x.shape, fKindName);
      fRows = codegen::Product(x.shape, 0, x.shape.size() - 1);
      return {{x.type, x.shape}};
   }

   bool UsesKernel() const override { return true; }

   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint", "cstring"}; }

   std::string KernelCode(const codegen::Isa &isa) override
   {
      const std::string N = std::to_string(fRowLength);
      codegen::Code c(1);
      // Rows in groups of about 8 KB, each step over the whole group before the next (maxima, exps,
      // sums, divides): one row alone is a chain of dependent steps (its max before its exps, their
      // sum before its divides), which for short rows (attention's 16 to 64 keys) left the core
      // waiting; the rows of a group are independent work, and the group stays in the L1 cache.
      const std::int64_t group = row_kernels::RowsPerGroup(fRowLength);
      const std::string G = std::to_string(group);
      auto rowLoop = [&](const std::string &body) {
         row_kernels::OpenRowOfGroup(c, In(0), Out(0), fRowLength);
         if (body == "max") {
            row_kernels::RowReduction(c, isa, true, "x", fRowLength, "m");
            c.Line("m_[i] = m;");
         } else if (body == "exp") {
            c.Line("const float m = m_[i];");
            row_kernels::BlockedLoop(c, fRowLength, [&](codegen::Code &b) {
               b.Line("const float x0 = x[j] - m;");
               row_kernels::ExpressionStatements(b, fExp, "y[j]");
            });
         } else if (body == "sum") {
            row_kernels::RowReduction(c, isa, false, "y", fRowLength, "s");
            c.Line("m_[i] = s;");
         } else {
            c.Line("const float s = m_[i];");
            row_kernels::BlockedLoop(c, fRowLength, [&](codegen::Code &b) { b.Line("y[j] = y[j] / s;"); });
         }
         c.Close();
      };
      c.Raw(ElementwiseOperator::Helpers(fExp, "   "));
      c.Line("float m_[" + G + "];");
      c.Open("for (size_t r0 = 0; r0 < " + fRows + "; r0 += " + G + ")");
      c.Line("const size_t rows = " + fRows + " - r0 < " + G + " ? " + fRows + " - r0 : " + G + ";");
      for (const char *step : {"max", "exp", "sum", "divide"})
         rowLoop(step);
      c.Close();
      return c.Str();
   }

private:
   std::string fExp;
   std::int64_t fRowLength = 1;
   std::string fRows;
};

} // namespace jax2sofie
