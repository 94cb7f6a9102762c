// J2S_LayerNorm: a layer norm over the last axis of a float32 tensor, in groups of contiguous rows.
//
// What Flax's and Keras' LayerNorm trace to is two sum reductions, a few loops over the row
// statistics and one or two loops over the whole tensor; passes/layernorm.py replaces them by this
// operator, which does a group of rows while it is in the L1 cache: their sums in vectors, the
// variances, then the output. The numbers follow the traced formula, whichever the model used
// (the `variance` and `output` attributes), so they stay within float rounding of JAX's:
//   mean m = sum(x) / n;
//   variance "moments" (Flax): v = max(0, sum(x * x) / n - m * m)  (a NaN gives 0, as Relu does);
//   variance "centered" (Keras): v = sum((x - m)^2) / n;
//   r = 1 / sqrt(v + eps);
//   output "centered" (Flax): y = (x - m) * (r * scale) + bias;
//   output "folded" (Keras): y = x * (r * scale) + (-m * (r * scale) + bias);
// scale and bias are optional (has_scale, has_bias); a missing scale is r alone, a missing bias no add.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"
#include "softmax.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie {

namespace row_kernels {

/// One sum over a row: its result's name and the term summed, as an expression of `v` (a vector or, in
/// the other compilers' branch and past the last vector, a float).
struct RowSum {
   std::string result, term;
};

/// Declares `float <sum.result>` for each of `sums`: the sums of their terms over the `n` floats at
/// `row`, all in one pass, in vectors of the level's width (narrower for a short row, none below 4
/// floats); each sum's lanes are then folded in halves, down to 4 lanes, and those one by one, so
/// that a row's chain of dependent adds stays short. `m`: a float the terms may name (the row's mean;
/// in vector code a vector of it, `mv`), or empty.
inline void RowSums(codegen::Code &c, const codegen::Isa &isa, const std::string &row, std::int64_t n,
                    const std::vector<RowSum> &sums, const std::string &m)
{
   auto term = [](const RowSum &sum, const std::string &v, const std::string &mean) {
      std::string t = sum.term;
      for (const auto &[from, to] : {std::pair<std::string, std::string>{"mv", mean}, {"v", v}}) {
         std::string out;
         for (std::size_t i = 0; i < t.size();) {
            const bool word = t.compare(i, from.size(), from) == 0 &&
                              (i == 0 || !std::isalnum(static_cast<unsigned char>(t[i - 1]))) &&
                              (i + from.size() >= t.size() || !std::isalnum(static_cast<unsigned char>(t[i + from.size()])));
            out += word ? to : std::string(1, t[i]);
            i += word ? from.size() : 1;
         }
         t = out;
      }
      return t;
   };
   std::int64_t w = isa.width;
   while (w > 4 && w > n)
      w /= 2;
   for (const auto &sum : sums)
      c.Line("float " + sum.result + " = 0.0f;");
   auto scalarTail = [&](std::int64_t from) {
      if (from >= n)
         return;
      c.Open("for (size_t j = " + std::to_string(from) + "; j < " + std::to_string(n) + "; j++)");
      for (const auto &sum : sums)
         c.Line(sum.result + " += " + term(sum, "(" + row + "[j])", m) + ";");
      c.Close();
   };
   if (n < w) { // too short for a vector
      scalarTail(0);
      return;
   }
   const std::int64_t full = n / w;
   const std::string W = std::to_string(w), V = codegen::VectorType(w);
   c.OpenScope();
   c.Line("const " + V + " *rv = reinterpret_cast<const " + V + " *>(" + row + ");");
   for (const auto &sum : sums)
      c.Line(V + " acc_" + sum.result + ";");
   c.Line("\n#if defined(__GNUC__) || defined(__clang__)");
   if (!m.empty())
      // the scalar added to a zero vector: a broadcast (filling the lanes one by one cost GCC -O3 a
      // store and a reload per row)
      c.Line("const " + V + " mv = " + V + "{} + " + m + ";");
   c.Line("{ const " + V + " v = rv[0]; " + [&] {
      std::string init;
      for (const auto &sum : sums)
         init += "acc_" + sum.result + " = " + term(sum, "v", "mv") + "; ";
      return init;
   }() + "}");
   if (full > 1) {
      c.Open("for (size_t j = 1; j < " + std::to_string(full) + "; j++)");
      c.Line("const " + V + " v = rv[j];");
      for (const auto &sum : sums)
         c.Line("acc_" + sum.result + " += " + term(sum, "v", "mv") + ";");
      c.Close();
   }
   c.Line("\n#else");
   c.Open("for (int l = 0; l < " + W + "; l++)");
   for (const auto &sum : sums) {
      c.Line("acc_" + sum.result + "[l] = 0.0f;");
      c.Line("for (size_t j = 0; j < " + std::to_string(full) + "; j++) acc_" + sum.result + "[l] += " +
             term(sum, "(" + row + "[j * " + W + " + l])", m) + ";");
   }
   c.Close();
   c.Line("\n#endif");
   for (const auto &sum : sums) {
      std::string lanes = "acc_" + sum.result;
      for (std::int64_t half = w / 2; half >= 4; half /= 2) {
         const std::string H = std::to_string(half), VH = codegen::VectorType(half), folded = lanes + "_" + H;
         c.Line(VH + " " + folded + ", " + folded + "_hi;");
         c.Line("std::memcpy(&" + folded + ", &" + lanes + ", sizeof " + folded + ");");
         c.Line("std::memcpy(&" + folded + "_hi, reinterpret_cast<const char *>(&" + lanes + ") + sizeof " + folded +
                ", sizeof " + folded + "_hi);");
         c.Line(folded + " += " + folded + "_hi;");
         lanes = folded;
      }
      c.Line(sum.result + " = (" + lanes + "[0] + " + lanes + "[1]) + (" + lanes + "[2] + " + lanes + "[3]);");
   }
   c.Close();
   scalarTail(full * w);
}

} // namespace row_kernels

class LayerNormOperator final : public OwnedOperator {
public:
   /// `variance`: "moments" or "centered"; `output`: "centered" or "folded" (see the top of the file).
   LayerNormOperator(std::vector<std::string> inputs, std::string y, std::string variance, std::string output,
                     double eps, bool hasScale, bool hasBias)
      : OwnedOperator("J2S_LayerNorm", std::move(inputs), {std::move(y)}), fVariance(std::move(variance)),
        fOutput(std::move(output)), fEps(eps), fHasScale(hasScale), fHasBias(hasBias)
   {
      if (fVariance != "moments" && fVariance != "centered")
         throw std::runtime_error("jax2sofie J2S_LayerNorm: variance '" + fVariance +
                                  "' is not one of 'moments', 'centered'");
      if (fOutput != "centered" && fOutput != "folded")
         throw std::runtime_error("jax2sofie J2S_LayerNorm: output '" + fOutput + "' is not one of 'centered', 'folded'");
      if (!(fEps >= 0.0) || fEps > 1e30)
         throw std::runtime_error("jax2sofie J2S_LayerNorm: eps must be a finite number >= 0");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0);
      if (x.type != SOFIE::ETensorType::FLOAT)
         throw std::runtime_error("jax2sofie J2S_LayerNorm: the input must be float32");
      fRowLength = row_kernels::StaticRowLength(x.shape, fKindName);
      fRows = codegen::Product(x.shape, 0, x.shape.size() - 1);
      for (std::size_t i = 1; i < in.size(); i++) {
         const char *what = (i == 1 && fHasScale) ? "scale" : "bias";
         if (in[i].type != SOFIE::ETensorType::FLOAT)
            throw std::runtime_error(std::string("jax2sofie J2S_LayerNorm: the ") + what + " must be float32");
         std::int64_t size = 1;
         for (const auto &d : in[i].shape) {
            if (d.isParam)
               throw std::runtime_error(std::string("jax2sofie J2S_LayerNorm: the ") + what + " has a symbolic size");
            size *= static_cast<std::int64_t>(d.dim);
         }
         if (size != fRowLength)
            throw std::runtime_error(std::string("jax2sofie J2S_LayerNorm: the ") + what + " has " + std::to_string(size) +
                                     " values for rows of " + std::to_string(fRowLength));
      }
      return {{x.type, x.shape}};
   }

   bool UsesKernel() const override { return true; }

   std::vector<std::string> GetStdLibs() override { return {"cmath", "cstdint", "cstring"}; }

   std::string KernelCode(const codegen::Isa &isa) override
   {
      const std::string N = std::to_string(fRowLength);
      std::ostringstream eps;
      // scientific: a float literal even for a whole number (0 -> "0.000000000e+00f", not "0f")
      eps << std::scientific << std::setprecision(9) << static_cast<float>(fEps) << "f";
      const std::string scale = fHasScale ? In(1) : "", bias = fHasBias ? In(fHasScale ? 2 : 1) : "";
      codegen::Code c(1);
      // Rows in groups of about 8 KB, each step over the whole group before the next (sums, variances,
      // outputs): the rows of a group are independent work for the core, and the group stays in the
      // L1 cache (as J2S_Softmax).
      const std::int64_t group = row_kernels::RowsPerGroup(fRowLength);
      const std::string G = std::to_string(group);
      auto rowLoop = [&](const std::string &step) {
         row_kernels::OpenRowOfGroup(c, In(0), Out(0), fRowLength);
         if (step == "statistics" && fVariance == "moments") {
            // the sum and the sum of squares in one pass (two independent chains of adds)
            row_kernels::RowSums(c, isa, "x", fRowLength, {{"s", "v"}, {"q", "v * v"}}, "");
            c.Line("const float m = s / " + N + ".0f;");
            c.Line("const float v = q / " + N + ".0f - m * m;");
            c.Line("m_[i] = m;");
            c.Line("r_[i] = 1.0f / std::sqrt((v > 0 ? v : 0.0f) + " + eps.str() + ");");
         } else if (step == "statistics") {
            row_kernels::RowSums(c, isa, "x", fRowLength, {{"s", "v"}}, "");
            c.Line("const float m = s / " + N + ".0f;");
            row_kernels::RowSums(c, isa, "x", fRowLength, {{"q", "(v - mv) * (v - mv)"}}, "m");
            c.Line("m_[i] = m;");
            c.Line("r_[i] = 1.0f / std::sqrt(q / " + N + ".0f + " + eps.str() + ");");
         } else {
            c.Line("const float m = m_[i];");
            c.Line("const float r = r_[i];");
            c.Line("(void)m;");
            row_kernels::BlockedLoop(c, fRowLength, [&](codegen::Code &b) {
               b.Line("const float s = " + (fHasScale ? "r * " + scale + "[j]" : std::string("r")) + ";");
               const std::string plusBias = fHasBias ? " + " + bias + "[j]" : "";
               if (fOutput == "centered")
                  b.Line("y[j] = (x[j] - m) * s" + plusBias + ";");
               else
                  b.Line("y[j] = x[j] * s + (-m * s" + plusBias + ");");
            });
         }
         c.Close();
      };
      c.Line("float m_[" + G + "], r_[" + G + "];");
      c.Open("for (size_t r0 = 0; r0 < " + fRows + "; r0 += " + G + ")");
      c.Line("const size_t rows = " + fRows + " - r0 < " + G + " ? " + fRows + " - r0 : " + G + ";");
      for (const char *step : {"statistics", "output"})
         rowLoop(step);
      c.Close();
      return c.Str();
   }

private:
   std::string fVariance, fOutput;
   double fEps;
   bool fHasScale, fHasBias;
   std::int64_t fRowLength = 1;
   std::string fRows;
};

} // namespace jax2sofie
