// J2S_BatchedMatMul: a stack of small matrix products read and written through strides, for the
// per-head products of attention (scores = Q K^T, context = P V).
//
// Why not SOFIE's Gemm: a batched Gemm is one sgemm call per matrix, and the heads of attention are
// small (16 x 16 x 16 in a 4-head block of width 64): the call and BLAS's packing cost more than the
// product, and the operands must first be transposed from [b, s, h, dh] to [b, h, s, dh] (and the
// context back again) by Transpose nodes. Here the operands are read where they lie: A's element
// (batch..., m, k) and B's (batch..., k, n) are at the strides of the axes the node names, and the
// output may be a transpose of (batch..., M, N) (perm), so no Transpose is left around the product.
// The kernel is compiled once per instruction-set level (codegen::KernelFunctions): per matrix, B is
// copied into a (K, N) row-major block when its N axis is not contiguous (K^T of the scores), then
// rows of A are taken a few at a time and each B row loaded once for all of them, into vector
// accumulators of the level's width.
#pragma once

#include "owned_operator.hpp"

#include <numeric>

namespace jax2sofie {

class J2S_BatchedMatMul final : public OwnedOperator {
public:
   /// aAxes: A's axes (batch..., m, k); bAxes: B's (batch..., k, n); perm: the output's axes as a
   /// permutation of (batch..., m, n) (empty: unpermuted).
   J2S_BatchedMatMul(std::string a, std::string b, std::string y, std::vector<std::int64_t> aAxes,
                     std::vector<std::int64_t> bAxes, std::vector<std::int64_t> perm)
      : OwnedOperator("J2S_BatchedMatMul", {std::move(a), std::move(b)}, {std::move(y)}), fAAxes(std::move(aAxes)),
        fBAxes(std::move(bAxes)), fPerm(std::move(perm))
   {
      if (fAAxes.size() < 2 || fAAxes.size() != fBAxes.size())
         throw std::runtime_error("J2S_BatchedMatMul: a_axes and b_axes must name (batch..., rows, cols) alike, got " +
                                  std::to_string(fAAxes.size()) + " and " + std::to_string(fBAxes.size()) + " axes");
      if (fPerm.empty()) {
         fPerm.resize(fAAxes.size());
         std::iota(fPerm.begin(), fPerm.end(), 0);
      }
      std::vector<std::int64_t> sorted = fPerm;
      std::sort(sorted.begin(), sorted.end());
      for (std::size_t i = 0; i < sorted.size(); i++)
         if (sorted[i] != static_cast<std::int64_t>(i) || sorted.size() != fAAxes.size())
            throw std::runtime_error("J2S_BatchedMatMul: perm is not a permutation of the output's " +
                                     std::to_string(fAAxes.size()) + " axes");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &a = in.at(0), &b = in.at(1);
      if (a.type != SOFIE::ETensorType::FLOAT || b.type != SOFIE::ETensorType::FLOAT)
         throw std::runtime_error("J2S_BatchedMatMul is float32 only");
      for (auto [axes, rank, what] : {std::tuple{&fAAxes, a.shape.size(), "a_axes"}, {&fBAxes, b.shape.size(), "b_axes"}}) {
         std::vector<std::int64_t> sorted = *axes;
         std::sort(sorted.begin(), sorted.end());
         if (sorted.size() != rank || std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() ||
             sorted.front() < 0 || sorted.back() >= static_cast<std::int64_t>(rank))
            throw std::runtime_error(std::string("J2S_BatchedMatMul: ") + what + " must list each of the operand's " +
                                     std::to_string(rank) + " axes once");
      }
      const std::size_t nb = fAAxes.size() - 2;
      for (std::size_t i = 0; i < nb; i++)
         if (!SameDim(a.shape[fAAxes[i]], b.shape[fBAxes[i]]))
            throw std::runtime_error("J2S_BatchedMatMul: batch axis " + std::to_string(i) + " differs between A and B");
      fM = Static(a.shape[fAAxes[nb]], "rows of A");
      fK = Static(a.shape[fAAxes[nb + 1]], "columns of A");
      if (Static(b.shape[fBAxes[nb]], "rows of B") != fK)
         throw std::runtime_error("J2S_BatchedMatMul: A has " + std::to_string(fK) + " columns and B " +
                                  std::to_string(b.shape[fBAxes[nb]].dim) + " rows");
      fN = Static(b.shape[fBAxes[nb + 1]], "columns of B");
      std::vector<SOFIE::Dim> logical;
      for (std::size_t i = 0; i < nb; i++)
         logical.push_back(a.shape[fAAxes[i]]);
      logical.push_back(SOFIE::Dim{static_cast<std::size_t>(fM)});
      logical.push_back(SOFIE::Dim{static_cast<std::size_t>(fN)});
      fLogical = logical;
      std::vector<SOFIE::Dim> out;
      for (auto p : fPerm)
         out.push_back(logical[p]);
      return {{SOFIE::ETensorType::FLOAT, out}};
   }

   bool UsesKernel() const override { return true; }

   std::string KernelCode(const codegen::Isa &isa) override
   {
      using namespace codegen;
      const std::size_t nb = fAAxes.size() - 2;
      const auto aStrides = Strides(InInfo(0).shape), bStrides = Strides(InInfo(1).shape);
      const auto outStrides = Strides(OutInfo(0).shape);
      std::vector<std::string> yStrides(fPerm.size()); // stride of each logical axis in the output
      for (std::size_t i = 0; i < fPerm.size(); i++)
         yStrides[fPerm[i]] = outStrides[i];
      const std::string sam = aStrides[fAAxes[nb]], sak = aStrides[fAAxes[nb + 1]];
      const std::string sbk = bStrides[fBAxes[nb]], sbn = bStrides[fBAxes[nb + 1]];
      const std::string sym = yStrides[nb], syn = yStrides[nb + 1];
      const std::string M = std::to_string(fM), K = std::to_string(fK), N = std::to_string(fN);

      Code c(1);
      std::vector<std::string> aOff, bOff, yOff;
      for (std::size_t i = 0; i < nb; i++) {
         const std::string v = "j2s_b" + std::to_string(i);
         c.Loop(v, fLogical[i].GetVal());
         aOff.push_back(Scaled(v, aStrides[fAAxes[i]]));
         bOff.push_back(Scaled(v, bStrides[fBAxes[i]]));
         yOff.push_back(Scaled(v, yStrides[i]));
      }
      c.Line("const float *a = " + In(0) + " + " + Paren(Sum(aOff)) + ";");
      c.Line("const float *b = " + In(1) + " + " + Paren(Sum(bOff)) + ";");
      c.Line("float *y = " + Out(0) + " + " + Paren(Sum(yOff)) + ";");
      std::string ldb = sbk;
      if (sbn != "1") {
         if (fK * fN > kMaxPackedB)
            throw std::runtime_error("J2S_BatchedMatMul: B's columns are strided and its " + std::to_string(fK) + " x " +
                                     std::to_string(fN) + " matrix is too large to copy on the stack (at most " +
                                     std::to_string(kMaxPackedB) + " elements)");
         // B's columns are strided (K^T read from [b, s, h, dh]): copy it once into a (K, N) block,
         // which every row of A then reads contiguously
         c.Line("float bp[" + std::to_string(fK * fN) + "];");
         c.Loop("k", K);
         c.Loop("n", N);
         c.Line("bp[k * " + N + " + n] = b[" + Sum({Scaled("k", sbk), Scaled("n", sbn)}) + "];");
         c.Close();
         c.Close();
         c.Line("b = bp;");
         ldb = N;
      }
      // the columns in chunks of at most kChunkBlocks vectors, rows `rows` at a time so that each
      // loaded B vector serves `rows` accumulators (rows * blocks accumulators stay in registers)
      const auto blocks = VectorBlocks(fN, isa.width);
      const std::size_t kChunkBlocks = 4;
      for (std::size_t first = 0; first < blocks.size(); first += kChunkBlocks) {
         const std::vector<VectorBlock> chunk(blocks.begin() + first,
                                              blocks.begin() + std::min(blocks.size(), first + kChunkBlocks));
         std::int64_t rows = std::max<std::int64_t>(1, (isa.registers / 2) / static_cast<std::int64_t>(chunk.size()));
         rows = std::min<std::int64_t>({rows, 8, fM});
         c.Line("{");
         c.Line("size_t m = 0;");
         RowTile(c, chunk, rows, M, K, sam, sak, ldb, sym, syn);
         if (rows > 1)
            RowTile(c, chunk, 1, M, K, sam, sak, ldb, sym, syn);
         c.Line("}");
      }
      for (std::size_t i = 0; i < nb; i++)
         c.Close();
      return c.Str();
   }

private:
   /// The most elements of a B copied into a contiguous block per matrix (64 KiB on the stack).
   static constexpr std::int64_t kMaxPackedB = 16384;

   /// A loop over the rows from `m`, `rows` at a time, each giving the chunk's columns of those rows.
   static void RowTile(codegen::Code &c, const std::vector<codegen::VectorBlock> &chunk, std::int64_t rows,
                       const std::string &M, const std::string &K, const std::string &sam, const std::string &sak,
                       const std::string &ldb, const std::string &sym, const std::string &syn)
   {
      using namespace codegen;
      const std::string R = std::to_string(rows);
      c.Open("for (; m + " + R + " <= " + M + "; m += " + R + ")");
      auto acc = [](std::int64_t r, std::size_t j) { return "acc" + std::to_string(r) + "_" + std::to_string(j); };
      for (std::int64_t r = 0; r < rows; r++)
         for (std::size_t j = 0; j < chunk.size(); j++)
            c.Line(VectorType(chunk[j].width) + " " + acc(r, j) + "{};");
      c.Loop("k", K);
      for (std::size_t j = 0; j < chunk.size(); j++)
         c.Line(VectorLoad(chunk[j], "w" + std::to_string(j), "b + " + Sum({Scaled("k", ldb), std::to_string(chunk[j].first)})));
      for (std::int64_t r = 0; r < rows; r++) {
         const std::string row = r == 0 ? "m" : "(m + " + std::to_string(r) + ")";
         c.Line("const float x" + std::to_string(r) + " = a[" + Sum({Scaled(row, sam), Scaled("k", sak)}) + "];");
         for (std::size_t j = 0; j < chunk.size(); j++)
            c.Line(VectorFma(acc(r, j), "w" + std::to_string(j), "x" + std::to_string(r)));
      }
      c.Close();
      for (std::int64_t r = 0; r < rows; r++) {
         const std::string row = r == 0 ? "m" : "(m + " + std::to_string(r) + ")";
         for (std::size_t j = 0; j < chunk.size(); j++) {
            const std::string at = "y + " + Sum({Scaled(row, sym), Scaled(std::to_string(chunk[j].first), syn)});
            if (syn == "1") {
               c.Line(VectorStore(chunk[j], at, acc(r, j)));
            } else {
               // a strided output (the context written straight into [b, s, h, dh]) lane by lane
               c.Line("for (int l = 0; l < " + std::to_string(chunk[j].lanes) + "; l++) (" + at + ")[" +
                      Scaled("l", syn) + "] = " + acc(r, j) + "[l];");
            }
         }
      }
      c.Close();
   }

   static bool SameDim(const SOFIE::Dim &x, const SOFIE::Dim &y)
   {
      return x.isParam == y.isParam && (x.isParam ? x.param == y.param : x.dim == y.dim);
   }

   static std::int64_t Static(const SOFIE::Dim &d, const char *what)
   {
      if (d.isParam)
         throw std::runtime_error(std::string("J2S_BatchedMatMul: the ") + what + " must be a fixed size, got '" +
                                  d.param + "' (only batch axes may be symbolic)");
      return static_cast<std::int64_t>(d.dim);
   }

   std::vector<std::int64_t> fAAxes, fBAxes, fPerm;
   std::vector<SOFIE::Dim> fLogical;
   std::int64_t fM = 0, fK = 0, fN = 0;
};

} // namespace jax2sofie
