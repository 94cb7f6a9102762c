// J2S_Dense: Y = act(A W + b) for a dense layer, A of shape (..., K), W of shape (K, N), b of (N).
//
// Why not SOFIE's Gemm: (1) it always calls sgemm, which at one row costs several times sgemv
// (OpenBLAS, 1 thread: 256x256 at M=1 is ~6x slower); (2) for A of rank > 2 it loops over the
// leading axes with one small sgemm each, while a dense layer is one (prod(...), K) x (K, N)
// product; (3) its fused sigmoid/tanh are dropped by the CPU code (docs/sofie_workarounds.md). Here the
// leading axes are one M (possibly a batch Dim), a few rows go through inline vector code or sgemv,
// more through one sgemm, or, with the weight stored in panels (panel = 32, chosen at conversion
// time), through a register-tiled product (PanelCode); bias + activation go with the product. The code
// is a kernel compiled once per instruction-set level and chosen at run time (codegen::KernelFunctions),
// so a build with plain -O2 runs the AVX-512 or AVX2 tiles where the CPU has them.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

namespace jax2sofie {

class DenseOperator final : public OwnedOperator {
public:
   /// activation: "" (none), "relu" or "sigmoid" (what passes/dense.py fuses). `bias` may be empty. panel: 0 (W row-major)
   /// or kPanel (W's data in panels of kPanel columns, see PanelCode).
   DenseOperator(std::string a, std::string w, std::string bias, std::string y, std::string activation, int panel = 0)
      : OwnedOperator("J2S_Dense", bias.empty() ? std::vector<std::string>{a, w} : std::vector<std::string>{a, w, bias},
                      {std::move(y)}),
        fHasBias(!bias.empty()), fActivation(std::move(activation)), fPanel(panel)
   {
      if (fActivation != "" && fActivation != "relu" && fActivation != "sigmoid")
         throw std::runtime_error("J2S_Dense: unknown activation '" + fActivation + "' (\"\", relu, sigmoid)");
      if (fPanel != 0 && fPanel != kPanel)
         throw std::runtime_error("J2S_Dense: panel must be 0 or " + std::to_string(kPanel) + ", got " +
                                  std::to_string(fPanel));
   }

   /// Columns per panel of a packed weight: two vectors of 16 floats.
   static constexpr int kPanel = 32;

   std::vector<std::string> GetBlasRoutines() override { return {"Gemm", "Gemv"}; }

   /// Rows up to this many go one by one through a matrix-vector product (measured crossover with
   /// OpenBLAS's sgemm: ~4).
   static constexpr int kGemvRows = 4;
   /// Weights up to this many elements: that product is inline vector code, not sgemv (a call and
   /// its argument checks cost more than the work below this; measured 1.3-2x faster up to 128x512).
   static constexpr std::size_t kInlineWeights = 65536;

   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint", "cstring"}; }

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
      if (fPanel && fN % fPanel)
         throw std::runtime_error("J2S_Dense: a weight in panels of " + std::to_string(fPanel) +
                                  " columns needs N a multiple of it, got " + std::to_string(fN));
      std::vector<SOFIE::Dim> rows(a.begin(), a.end() - 1), y = rows;
      y.push_back(SOFIE::Dim{fN});
      fRows = rows.empty() ? std::string("1") : Length(rows);
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   bool UsesKernel() const override { return true; }

   std::string KernelCode(const codegen::Isa &isa) override
   {
      if (fPanel)
         return PanelCode(isa);
      const std::string n = std::to_string(fN), k = std::to_string(fK);
      const long rows = StaticRows();
      std::string few, many; // the code for a few rows, and for more
      if (fK * fN <= kInlineWeights) {
         few = InlineRows(isa, "      ");
         if (fActivation == "sigmoid")
            few += BiasAndActivation("      ", false);
      } else {
         few = "      const int n = " + n + ", k = " + k + ", inc = 1;\n";
         few += "      const float one = 1.0f, zero = 0.0f;\n";
         few += "      for (int r = 0; r < m; r++)\n";
         few += "         BLAS::sgemv_(\"N\", &n, &k, &one, " + In(1) + ", &n, " + In(0) +
                " + r * k, &inc, &zero, y + r * n, &inc);\n";
         few += BiasAndActivation("      ", true);
      }
      many = "      const int n = " + n + ", k = " + k + ";\n";
      many += "      const float one = 1.0f, zero = 0.0f;\n";
      many += "      BLAS::sgemm_(\"N\", \"N\", &n, &m, &k, &one, " + In(1) + ", &n, " + In(0) + ", &k, &zero, y, &n);\n";
      many += BiasAndActivation("      ", true);
      std::string s;
      s += "   const int m = " + fRows + ";\n";
      s += "   float *y = " + Out(0) + ";\n";
      // each branch computes every row: bias and relu inside the inline code, the rest in a pass after;
      // with a static batch only the branch that runs is written
      if (rows >= 0)
         return s + "   {\n" + (rows <= kGemvRows ? few : many) + "   }\n";
      return s + "   if (m <= " + std::to_string(kGemvRows) + ") {\n" + few + "   } else {\n" + many + "   }\n";
   }

private:
   /// The number of rows when it is known at conversion time (a static batch), else -1.
   long StaticRows() const
   {
      const bool number = !fRows.empty() && std::all_of(fRows.begin(), fRows.end(), [](char c) { return c >= '0' && c <= '9'; });
      return number ? std::stol(fRows) : -1;
   }

   /// A register tile of the panel product: `rows` rows x `vectors` vectors of isa.width columns.
   struct PanelShape {
      int rows, vectors;
   };

   /// The tile that fills the level's registers with accumulators and leaves a few for the weight
   /// vectors and the broadcast input: 12 x 32 columns with AVX-512's 32 registers, 6 x 16 with
   /// AVX2's 16, 4 x 8 with 16 SSE/NEON registers (SSE also needs a temporary per multiply-add).
   static PanelShape PanelTileShape(const codegen::Isa &isa)
   {
      if (isa.registers >= 32 && isa.width == 16)
         return {12, 2};
      return {isa.width == 8 ? 6 : 4, 2};
   }

   /// W packed at conversion time in panels of kPanel columns, each K x kPanel row-major: panel p
   /// holds columns [p kPanel, (p + 1) kPanel). Y is computed panel by panel, in groups of columns of
   /// the panel as wide as the level's tile (PanelTileShape), in register tiles of R rows, reading the
   /// panel contiguously from L1 for every tile of rows: BLAS packs W again at every call, which for the
   /// few hundred rows of an inference batch costs as much as the product.
   std::string PanelCode(const codegen::Isa &isa) const
   {
      if (isa.level > 0)
         return PanelTiles(isa);
      // x86 CPUs without AVX2 (or a build capped below it): sgemm per panel, a K x kPanel matrix, as
      // the BLAS picks its kernel for the CPU at run time; the tiles elsewhere (NEON)
      const std::string n = std::to_string(fN), k = std::to_string(fK), panel = std::to_string(kPanel);
      std::string s = "#if defined(__x86_64__) || defined(__i386__)\n";
      s += "   const int m = " + fRows + ";\n";
      s += "   float *y = " + Out(0) + ";\n";
      s += "   const int n = " + n + ", k = " + k + ", width = " + panel + ";\n";
      s += "   const float one = 1.0f, zero = 0.0f;\n";
      s += "   for (int p = 0; p < " + std::to_string(fN / kPanel) + "; p++)\n";
      s += "      BLAS::sgemm_(\"N\", \"N\", &width, &m, &k, &one, " + In(1) + " + p * " + std::to_string(fK * kPanel) +
           ", &width, " + In(0) + ", &k, &zero, y + p * " + panel + ", &n);\n";
      s += BiasAndActivation("   ", true);
      return s + "#else\n" + PanelTiles(isa) + "#endif\n";
   }

   std::string PanelTiles(const codegen::Isa &isa) const
   {
      const PanelShape shape = PanelTileShape(isa);
      const int columns = shape.vectors * isa.width, groups = kPanel / columns;
      const std::string panel = std::to_string(kPanel), panels = std::to_string(fN / kPanel);
      const std::string panelSize = std::to_string(fK * kPanel), ind = "         ";
      std::string s;
      s += "   const int m = " + fRows + ";\n";
      s += "   float *y = " + Out(0) + ";\n";
      s += "   for (int p = 0; p < " + panels + "; p++) {\n";
      s += "      for (int g = 0; g < " + std::to_string(groups) + "; g++) {\n";
      s += ind + "const int col = p * " + panel + " + g * " + std::to_string(columns) + ";\n";
      s += ind + "const float *w = " + In(1) + " + p * " + panelSize + " + g * " + std::to_string(columns) + ";\n";
      if (fHasBias)
         s += ind + "const float *bp = " + In(2) + " + col;\n";
      s += ind + "int r0 = 0;\n";
      s += RowTilesOfPanel(shape, isa, ind);
      s += "      }\n   }\n";
      if (fActivation == "sigmoid")
         s += BiasAndActivation("   ", false);
      return s;
   }

   /// Tiles of shape.rows rows over the column group at w, while that many rows are left, then the
   /// rest in tiles of 8, 4, 2 and 1 rows (at most one of each: a few tile sizes keep the header small
   /// and quick to compile, where one tile per remainder would multiply its code).
   std::string RowTilesOfPanel(const PanelShape &shape, const codegen::Isa &isa, const std::string &ind) const
   {
      const long m = StaticRows(); // with a static batch only the tiles that run are written
      const std::string rows = std::to_string(shape.rows);
      std::string s;
      if (m < 0 || m >= shape.rows)
         s += ind + "for (; r0 + " + rows + " <= m; r0 += " + rows + ")\n" + PanelTile(shape.rows, shape.vectors, isa, ind);
      for (int r = 8; r >= 1; r /= 2) {
         if (r >= shape.rows || (m >= 0 && !((m % shape.rows) & r)))
            continue;
         s += ind + (m < 0 ? "if (m - r0 >= " + std::to_string(r) + ") {\n" : "{\n");
         s += PanelTile(r, shape.vectors, isa, ind + "   ");
         s += ind + "   r0 += " + std::to_string(r) + ";\n" + ind + "}\n";
      }
      return s;
   }

   /// Y[r0 .. r0 + rows) of the column group = A W_g (+ b, relu), accumulated in rows x vectors
   /// vectors; one row sums over k in four interleaved chains (k mod 4), two rows in two, so that
   /// consecutive multiply-adds into one register do not wait on each other (4 in flight).
   std::string PanelTile(int rows, int vectors, const codegen::Isa &isa, const std::string &ind) const
   {
      const std::string k = std::to_string(fK), n = std::to_string(fN), panel = std::to_string(kPanel);
      const int chains = rows == 1 ? 4 : (rows == 2 ? 2 : 1);
      const std::string vf = codegen::VectorType(isa.width);
      std::string s = ind + "{\n";
      auto acc = [](int chain, int r, int h) {
         return "a" + std::to_string(chain) + "_" + std::to_string(r) + "_" + std::to_string(h);
      };
      auto half = [&](int h) { return codegen::VectorBlock{h * isa.width, isa.width, isa.width}; };
      for (int r = 0; r < rows; r++)
         for (int h = 0; h < vectors; h++) {
            if (fHasBias)
               s += ind + "   " + codegen::VectorLoad(half(h), acc(0, r, h), "bp + " + std::to_string(h * isa.width), false) + "\n";
            else
               s += ind + "   " + vf + " " + acc(0, r, h) + "{};\n";
            for (int c = 1; c < chains; c++)
               s += ind + "   " + vf + " " + acc(c, r, h) + "{};\n";
         }
      s += ind + "   const float *x = " + In(0) + " + r0 * " + k + ";\n";
      auto step = [&](const std::string &kk, int chain) {
         std::string body = ind + "      {\n";
         for (int h = 0; h < vectors; h++)
            body += ind + "         " +
                    codegen::VectorLoad(half(h), "w" + std::to_string(h),
                                        "w + (" + kk + ") * " + panel + " + " + std::to_string(h * isa.width)) + "\n";
         for (int r = 0; r < rows; r++) {
            const std::string xs = "x[" + std::to_string(r) + " * " + k + " + " + kk + "]";
            for (int h = 0; h < vectors; h++)
               body += ind + "         " + codegen::VectorFma(acc(chain, r, h), "w" + std::to_string(h), xs) + "\n";
         }
         return body + ind + "      }\n";
      };
      const std::string c = std::to_string(chains);
      s += ind + "   int kk = 0;\n";
      s += ind + "   for (; kk + " + c + " <= " + k + "; kk += " + c + ") {\n";
      for (int ch = 0; ch < chains; ch++)
         s += step(ch ? "kk + " + std::to_string(ch) : "kk", ch);
      s += ind + "   }\n";
      if (chains > 1) // the last K mod chains values of k, into the first chain
         s += ind + "   for (; kk < " + k + "; kk++) {\n" + step("kk", 0) + ind + "   }\n";
      for (int r = 0; r < rows; r++)
         for (int h = 0; h < vectors; h++) {
            const std::string a = acc(0, r, h);
            for (int ch = 1; ch < chains; ch++)
               s += ind + "   " + a + " += " + acc(ch, r, h) + ";\n";
            if (fActivation == "relu")
               s += ind + "   " + codegen::VectorRelu(a, isa.width) + "\n";
            s += ind + "   " +
                 codegen::VectorStore(half(h), "y + (r0 + " + std::to_string(r) + ") * " + n + " + col + " +
                                      std::to_string(h * isa.width), a) + "\n";
         }
      return s + ind + "}\n";
   }

   /// y = act(A W + b) over all m rows (bias: whether to add it too), a pass over the output.
   std::string BiasAndActivation(const std::string &ind, bool bias) const
   {
      const std::string n = std::to_string(fN);
      const bool addBias = bias && fHasBias;
      if (!addBias && fActivation.empty())
         return "";
      const std::string v = addBias ? "y[r * " + n + " + j] + " + In(2) + "[j]" : "y[r * " + n + " + j]";
      std::string apply;
      if (fActivation.empty())
         apply = "v";
      else if (fActivation == "relu")
         apply = "(v > 0.0f ? v : 0.0f)";
      else // sigmoid
         apply = "1.0f / (1.0f + std::exp(-v))";
      std::string s;
      s += ind + "for (int r = 0; r < m; r++) {\n";
      s += ind + "   for (int j = 0; j < " + n + "; j++) {\n";
      s += ind + "      const float v = " + v + ";\n";
      s += ind + "      y[r * " + n + " + j] = " + apply + ";\n";
      s += ind + "   }\n";
      s += ind + "}\n";
      return s;
   }

   /// Each row r < m: y[r] = A[r] W (+ b, relu) with the columns in vector registers, in tiles of
   /// vector blocks (codegen::VectorBlocks) that read W row by row: up to 16 blocks (256 columns) with
   /// AVX-512's 32 registers, so a 256-wide layer streams W once, contiguously; up to 8 with 16.
   /// A tile of fewer than 8 blocks sums over k in two interleaved chains (even and odd k) so that
   /// consecutive multiply-adds into one register do not wait on each other.
   std::string InlineRows(const codegen::Isa &isa, const std::string &ind) const
   {
      std::string s = ind + "const float *w = " + In(1) + ";\n";
      s += ind + "for (int r = 0; r < m; r++) {\n";
      s += ind + "const float *x = " + In(0) + " + r * " + std::to_string(fK) + ";\n";
      s += ind + "float *yr = y + r * " + std::to_string(fN) + ";\n";
      s += RowTiles(isa, ind);
      s += ind + "}\n";
      return s;
   }

   /// The tiles of one row.
   std::string RowTiles(const codegen::Isa &isa, const std::string &ind) const
   {
      const std::size_t maxBlocks = isa.registers / 2;
      const std::vector<codegen::VectorBlock> blocks = codegen::VectorBlocks(fN, isa.width);
      const std::string n = std::to_string(fN);
      std::string s;
      for (std::size_t t = 0; t < blocks.size(); t += maxBlocks) {
         const std::size_t end = std::min(blocks.size(), t + maxBlocks);
         const bool twoChains = end - t < 8;
         s += ind + "{\n";
         for (std::size_t b = t; b < end; b++) {
            const auto &blk = blocks[b];
            const std::string vf = codegen::VectorType(blk.width), i = std::to_string(b - t);
            if (fHasBias)
               s += ind + "   " + codegen::VectorLoad(blk, "a" + i, In(2) + " + " + std::to_string(blk.first), false) + "\n";
            else
               s += ind + "   " + vf + " a" + i + "{};\n";
            if (twoChains)
               s += ind + "   " + vf + " c" + i + "{};\n";
         }
         auto step = [&](const std::string &k, const std::string &acc) {
            std::string body;
            for (std::size_t b = t; b < end; b++) {
               const std::string i = std::to_string(b - t);
               body += ind + "      { " +
                       codegen::VectorLoad(blocks[b], "wv", "w + (" + k + ") * " + n + " + " + std::to_string(blocks[b].first)) +
                       " " + codegen::VectorFma(acc + i, "wv", "x[" + k + "]") + " }\n";
            }
            return body;
         };
         const std::string kn = std::to_string(fK);
         if (twoChains) {
            s += ind + "   std::int64_t k = 0;\n";
            s += ind + "   for (; k + 2 <= " + kn + "; k += 2) {\n" + step("k", "a") + step("k + 1", "c") + ind + "   }\n";
            if (fK % 2)
               s += ind + "   {\n" + step("k", "a") + ind + "   }\n";
         } else {
            s += ind + "   for (std::int64_t k = 0; k < " + kn + "; k++) {\n" + step("k", "a") + ind + "   }\n";
         }
         for (std::size_t b = t; b < end; b++) {
            const auto &blk = blocks[b];
            const std::string i = std::to_string(b - t), dst = "yr + " + std::to_string(blk.first);
            if (twoChains)
               s += ind + "   a" + i + " += c" + i + ";\n";
            if (fActivation == "relu")
               s += ind + "   " + codegen::VectorRelu("a" + i, blk.width) + "\n";
            s += ind + "   " + codegen::VectorStore(blk, dst, "a" + i) + "\n";
         }
         s += ind + "}\n";
      }
      return s;
   }

   bool fHasBias;
   std::string fActivation;
   int fPanel;
   std::size_t fK = 0, fN = 0;
   std::string fRows;
};

} // namespace jax2sofie
