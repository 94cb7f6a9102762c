// J2S_Dense: Y = act(A W + b) for a dense layer, A of shape (..., K), W of shape (K, N), b of (N).
//
// Why not SOFIE's Gemm: (1) it always calls sgemm, which at one row costs several times sgemv
// (OpenBLAS, 1 thread: 256x256 at M=1 is ~6x slower); (2) for A of rank > 2 it loops over the
// leading axes with one small sgemm each, while a dense layer is one (prod(...), K) x (K, N)
// product; (3) its fused sigmoid/tanh are dropped by the CPU code (SOFIE_PITFALLS.md). Here the
// leading axes are one M (possibly a batch Dim), rows go through sgemv when M is small and through
// one sgemm otherwise, and bias + activation are one pass over the output.
#pragma once

#include "owned_operator.hpp"

namespace jax2sofie {

class J2S_Dense final : public OwnedOperator {
public:
   /// activation: "" (none), "relu", "sigmoid" or "tanh". `bias` may be empty.
   J2S_Dense(std::string a, std::string w, std::string bias, std::string y, std::string activation)
      : OwnedOperator("J2S_Dense", bias.empty() ? std::vector<std::string>{a, w} : std::vector<std::string>{a, w, bias},
                      {std::move(y)}),
        fHasBias(!bias.empty()), fActivation(std::move(activation))
   {
      if (fActivation != "" && fActivation != "relu" && fActivation != "sigmoid" && fActivation != "tanh")
         throw std::runtime_error("J2S_Dense: unknown activation '" + fActivation + "' (\"\", relu, sigmoid, tanh)");
   }

   std::vector<std::string> GetBlasRoutines() override { return {"Gemm", "Gemv"}; }

   /// Rows up to this many go through sgemv one by one (measured crossover with OpenBLAS: ~4).
   static constexpr int kGemvRows = 4;

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &a = in.at(0).shape, &w = in.at(1).shape;
      if (a.empty() || w.size() != 2 || a.back().isParam || w[0].isParam || w[1].isParam)
         throw std::runtime_error("J2S_Dense: needs A (..., K) with a numeric K and W (K, N) of numbers");
      if (a.back().dim != w[0].dim)
         throw std::runtime_error("J2S_Dense: K of A (" + std::to_string(a.back().dim) + ") and W (" +
                                  std::to_string(w[0].dim) + ") differ");
      if (fHasBias && SOFIE::ConvertDimShapeToLength(in.at(2).shape) != std::to_string(w[1].dim))
         throw std::runtime_error("J2S_Dense: the bias must have N = " + std::to_string(w[1].dim) + " elements");
      for (auto &t : in)
         if (t.type != SOFIE::ETensorType::FLOAT)
            throw std::runtime_error("J2S_Dense: float32 only");
      fK = w[0].dim;
      fN = w[1].dim;
      std::vector<SOFIE::Dim> rows(a.begin(), a.end() - 1), y = rows;
      y.push_back(SOFIE::Dim{fN});
      fRows = rows.empty() ? std::string("1") : Length(rows);
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   std::string GenerateCode() override
   {
      const std::string n = std::to_string(fN), k = std::to_string(fK);
      std::string s;
      s += "   {\n";
      s += "      const int m = " + fRows + ", n = " + n + ", k = " + k + ", inc = 1;\n";
      s += "      const float one = 1.0f, zero = 0.0f;\n";
      s += "      float *y = " + Out(0) + ";\n";
      s += "      if (m <= " + std::to_string(kGemvRows) + ") {\n";
      s += "         for (int r = 0; r < m; r++)\n";
      s += "            BLAS::sgemv_(\"N\", &n, &k, &one, " + In(1) + ", &n, " + In(0) +
           " + r * k, &inc, &zero, y + r * n, &inc);\n";
      s += "      } else {\n";
      s += "         BLAS::sgemm_(\"N\", \"N\", &n, &m, &k, &one, " + In(1) + ", &n, " + In(0) +
           ", &k, &zero, y, &n);\n";
      s += "      }\n";
      if (fHasBias || !fActivation.empty()) {
         const std::string v = fHasBias ? "y[r * " + n + " + j] + " + In(2) + "[j]" : "y[r * " + n + " + j]";
         std::string apply;
         if (fActivation.empty())
            apply = "v";
         else if (fActivation == "relu")
            apply = "(v > 0.0f ? v : 0.0f)";
         else if (fActivation == "sigmoid")
            apply = "1.0f / (1.0f + std::exp(-v))";
         else
            apply = "std::tanh(v)";
         s += "      for (int r = 0; r < m; r++) {\n";
         s += "         for (int j = 0; j < " + n + "; j++) {\n";
         s += "            const float v = " + v + ";\n";
         s += "            y[r * " + n + " + j] = " + apply + ";\n";
         s += "         }\n";
         s += "      }\n";
      }
      s += "   }\n";
      return s;
   }

private:
   bool fHasBias;
   std::string fActivation;
   std::size_t fK = 0, fN = 0;
   std::string fRows;
};

} // namespace jax2sofie
