// J2S_BatchedMatMul: a stack of small matrix products read and written through strides, for the
// per-head products of attention (scores = Q K^T, context = P V).
//
// Why not SOFIE's Gemm: a batched Gemm is one sgemm call per matrix, and the heads of attention are
// small (16 x 16 x 16 in a 4-head block of width 64): the call and BLAS's packing cost more than the
// product, and the operands must first be transposed from [b, s, h, dh] to [b, h, s, dh] (and the
// context back again) by Transpose nodes. Here the operands are read where they lie: A's element
// (batch..., m, k) and B's (batch..., k, n) are at the strides of the axes the node names (the axes
// it does not name must have size 1: flax's nnx attention carries one), and the output's axes are any
// order of (batch..., M, N) and unit axes (out_axes), so no Transpose is left around the product.
// An operand may also be read at a fixed index of an axis it does not name (a_fixed, b_fixed): the
// query, key and value of a fused QKV projection are then read from the one [3, b, h, s, dh] tensor
// (or its untransposed source) instead of three copies.
// The kernel is compiled once per instruction-set level (codegen::KernelFunctions): per matrix, B is
// copied into a (K, N) row-major block when its N axis is not contiguous (K^T of the scores), then
// rows of A are taken a few at a time and each B row loaded once for all of them, into vector
// accumulators of the level's width.
#pragma once

#include "owned_operator.hpp"


namespace jax2sofie {

class BatchedMatMulOperator final : public OwnedOperator {
public:
   /// aAxes: A's axes (batch..., m, k); bAxes: B's (batch..., k, n); outAxes: for each output axis,
   /// which of (batch..., m, n) it is, or -1 for an axis of size 1. aFixed, bFixed: pairs (axis,
   /// index) flattened, the index at which an operand's axis outside aAxes/bAxes is read.
   BatchedMatMulOperator(std::string a, std::string b, std::string y, std::vector<std::int64_t> aAxes,
                     std::vector<std::int64_t> bAxes, std::vector<std::int64_t> outAxes,
                     std::vector<std::int64_t> aFixed = {}, std::vector<std::int64_t> bFixed = {})
      : OwnedOperator("J2S_BatchedMatMul", {std::move(a), std::move(b)}, {std::move(y)}), fAAxes(std::move(aAxes)),
        fBAxes(std::move(bAxes)), fOutAxes(std::move(outAxes)), fAFixed(std::move(aFixed)), fBFixed(std::move(bFixed))
   {
      if (fAFixed.size() % 2 != 0 || fBFixed.size() % 2 != 0)
         throw std::runtime_error("J2S_BatchedMatMul: a_fixed and b_fixed must be (axis, index) pairs");
      if (fAAxes.size() < 2 || fAAxes.size() != fBAxes.size())
         throw std::runtime_error("J2S_BatchedMatMul: a_axes and b_axes must name (batch..., rows, cols) alike, got " +
                                  std::to_string(fAAxes.size()) + " and " + std::to_string(fBAxes.size()) + " axes");
      std::vector<std::int64_t> named;
      for (auto a : fOutAxes)
         if (a != -1)
            named.push_back(a);
      std::sort(named.begin(), named.end());
      for (std::size_t i = 0; i < named.size(); i++)
         if (named[i] != static_cast<std::int64_t>(i) || named.size() != fAAxes.size())
            throw std::runtime_error("J2S_BatchedMatMul: out_axes must name each of the product's " +
                                     std::to_string(fAAxes.size()) + " axes once (and -1 for unit axes)");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &a = in.at(0), &b = in.at(1);
      if (a.type != SOFIE::ETensorType::FLOAT || b.type != SOFIE::ETensorType::FLOAT)
         throw std::runtime_error("J2S_BatchedMatMul is float32 only");
      for (auto [axes, fixed, rank, what] : {std::tuple{&fAAxes, &fAFixed, a.shape.size(), "a_axes"},
                                             {&fBAxes, &fBFixed, b.shape.size(), "b_axes"}}) {
         std::vector<std::int64_t> sorted = *axes;
         std::sort(sorted.begin(), sorted.end());
         if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end() || sorted.front() < 0 ||
             sorted.back() >= static_cast<std::int64_t>(rank))
            throw std::runtime_error(std::string("J2S_BatchedMatMul: ") + what + " must list distinct axes of the operand's " +
                                     std::to_string(rank));
         const auto &shape = axes == &fAAxes ? a.shape : b.shape;
         for (std::size_t i = 0; i < fixed->size(); i += 2) {
            const std::int64_t d = (*fixed)[i], index = (*fixed)[i + 1];
            if (d < 0 || d >= static_cast<std::int64_t>(rank) || std::binary_search(sorted.begin(), sorted.end(), d) ||
                shape[d].isParam || index < 0 || index >= static_cast<std::int64_t>(shape[d].dim))
               throw std::runtime_error(std::string("J2S_BatchedMatMul: fixed index ") + std::to_string(index) +
                                        " of axis " + std::to_string(d) + " is not an index of a fixed-size axis outside " + what);
         }
         for (std::size_t d = 0; d < rank; d++)
            if (!std::binary_search(sorted.begin(), sorted.end(), static_cast<std::int64_t>(d)) &&
                FixedIndex(*fixed, d) < 0 && (shape[d].isParam || shape[d].dim != 1))
               throw std::runtime_error(std::string("J2S_BatchedMatMul: axis ") + std::to_string(d) +
                                        " of an operand is not in " + what + ", not of size 1 and not read at a fixed index");
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
      for (auto p : fOutAxes)
         out.push_back(p == -1 ? SOFIE::Dim{std::size_t(1)} : logical[p]);
      return {{SOFIE::ETensorType::FLOAT, out}};
   }

   bool UsesKernel() const override { return true; }

   std::string KernelCode(const codegen::Isa &isa) override
   {
      using namespace codegen;
      const std::size_t nb = fAAxes.size() - 2;
      const auto aStrides = Strides(InInfo(0).shape), bStrides = Strides(InInfo(1).shape);
      const auto outStrides = Strides(OutInfo(0).shape);
      std::vector<std::string> yStrides(fAAxes.size()); // stride of each logical axis in the output
      for (std::size_t i = 0; i < fOutAxes.size(); i++)
         if (fOutAxes[i] != -1)
            yStrides[fOutAxes[i]] = outStrides[i];
      std::string sam = aStrides[fAAxes[nb]], sak = aStrides[fAAxes[nb + 1]];
      std::string sbk = bStrides[fBAxes[nb]], sbn = bStrides[fBAxes[nb + 1]];
      std::string sym = yStrides[nb], syn = yStrides[nb + 1];
      std::int64_t rowsM = fM, colsN = fN;
      // Y^T = B^T A^T where Y's columns are strided and its rows contiguous (nnx attention's context,
      // computed as V^T P^T): then the vectors run along Y's rows, stored whole
      const bool swapped = syn != "1" && sym == "1";
      if (swapped) {
         std::swap(sam, sbn);
         std::swap(sak, sbk);
         std::swap(sym, syn);
         std::swap(rowsM, colsN);
      }
      const std::string M = std::to_string(rowsM), K = std::to_string(fK), N = std::to_string(colsN);

      Code c(1);
      std::vector<std::string> aOff, bOff, yOff;
      for (std::size_t i = 0; i < fAFixed.size(); i += 2)
         aOff.push_back(Scaled(std::to_string(fAFixed[i + 1]), aStrides[fAFixed[i]]));
      for (std::size_t i = 0; i < fBFixed.size(); i += 2)
         bOff.push_back(Scaled(std::to_string(fBFixed[i + 1]), bStrides[fBFixed[i]]));
      for (std::size_t i = 0; i < nb; i++) {
         const std::string v = "j2s_b" + std::to_string(i);
         c.Loop(v, fLogical[i].GetVal());
         aOff.push_back(Scaled(v, aStrides[fAAxes[i]]));
         bOff.push_back(Scaled(v, bStrides[fBAxes[i]]));
         yOff.push_back(Scaled(v, yStrides[i]));
      }
      c.Line("const float *a = " + In(swapped ? 1 : 0) + " + " + Paren(Sum(swapped ? bOff : aOff)) + ";");
      c.Line("const float *b = " + In(swapped ? 0 : 1) + " + " + Paren(Sum(swapped ? aOff : bOff)) + ";");
      c.Line("float *y = " + Out(0) + " + " + Paren(Sum(yOff)) + ";");
      std::string ldb = sbk;
      if (sbn != "1") {
         if (fK * colsN > kMaxPackedB)
            throw std::runtime_error("J2S_BatchedMatMul: B's columns are strided and its " + std::to_string(fK) + " x " +
                                     std::to_string(colsN) + " matrix is too large to copy on the stack (at most " +
                                     std::to_string(kMaxPackedB) + " elements)");
         // B's columns are strided (K^T read from [b, s, h, dh]): copy it once into a (K, N) block,
         // which every row of A then reads contiguously
         c.Line("float bp[" + std::to_string(fK * colsN) + "];");
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
      const auto blocks = VectorBlocks(colsN, isa.width);
      const std::size_t kChunkBlocks = 4;
      for (std::size_t first = 0; first < blocks.size(); first += kChunkBlocks) {
         const std::vector<VectorBlock> chunk(blocks.begin() + first,
                                              blocks.begin() + std::min(blocks.size(), first + kChunkBlocks));
         std::int64_t rows = std::max<std::int64_t>(1, (isa.registers / 2) / static_cast<std::int64_t>(chunk.size()));
         rows = std::min<std::int64_t>({rows, 8, rowsM});
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

   /// The index at which axis d is read (a_fixed/b_fixed), or -1.
   static std::int64_t FixedIndex(const std::vector<std::int64_t> &fixed, std::size_t d)
   {
      for (std::size_t i = 0; i < fixed.size(); i += 2)
         if (fixed[i] == static_cast<std::int64_t>(d))
            return fixed[i + 1];
      return -1;
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

   std::vector<std::int64_t> fAAxes, fBAxes, fOutAxes, fAFixed, fBFixed;
   std::vector<SOFIE::Dim> fLogical;
   std::int64_t fM = 0, fK = 0, fN = 0;
};

} // namespace jax2sofie
