// J2S_Gather: XLA gather (project-owned; helpers in indexing_common.hpp).
#pragma once

#include "indexing_common.hpp"

namespace jax2sofie {

/// J2S_Gather: XLA gather with the index vector in the last dimension of `indices` (as JAX writes
/// it). For each index vector (the batch dims of `indices`), the start of the window in the operand
/// is start[start_index_map[k]] = indices[..., k], start[operand_batching_dims[i]] = the batch
/// coordinate start_indices_batching_dims[i]; the window (slice_sizes, -1 = the whole operand dim)
/// is copied to the output with the collapsed and batching dims dropped, its remaining dims at
/// `offset_dims`. Out-of-bounds starts: clamped to [0, dim - size] (XLA's gather, JAX's CLIP and
/// PROMISE_IN_BOUNDS) or, with `fill`, the whole window is fill_value (JAX's FILL_OR_DROP).
/// With `wrapNegative`, a negative index first has the operand dim added (numpy's x[-1], which JAX
/// writes as select(i < 0, i + n, i) before the gather; passes/gather_index_wrap.py folds that in),
/// and what is still out of bounds is clamped or filled as above.
class GatherOperator final : public OwnedOperator {
public:
   struct Dims {
      std::vector<std::int64_t> offset_dims, collapsed_slice_dims, start_index_map, operand_batching_dims,
         start_indices_batching_dims, slice_sizes;
   };

   GatherOperator(Dims dims, bool fill, double fillValue, bool wrapNegative, std::string operand, std::string indices,
                  std::string out)
      : OwnedOperator("J2S_Gather", {std::move(operand), std::move(indices)}, {std::move(out)}), fD(std::move(dims)),
        fFill(fill), fWrapNegative(wrapNegative), fFillValue(fillValue)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace indexing_detail;
      const auto &x = in.at(0).shape, &idx = in.at(1).shape;
      const std::size_t r = x.size();
      if (!IsIndexType(in.at(1).type))
         throw Error(fKindName, "indices must be int32 or int64");
      if (idx.empty() || idx.back().isParam || idx.back().dim != fD.start_index_map.size())
         throw Error(fKindName, "the last dimension of the indices must be the index vector, of length " +
                                   std::to_string(fD.start_index_map.size()));
      if (fD.slice_sizes.size() != r)
         throw Error(fKindName, "slice_sizes has " + std::to_string(fD.slice_sizes.size()) + " entries for a rank-" +
                                   std::to_string(r) + " operand");
      CheckDims(fD.start_index_map, r, fKindName, "start_index_map");
      CheckDims(fD.collapsed_slice_dims, r, fKindName, "collapsed_slice_dims");
      CheckDims(fD.operand_batching_dims, r, fKindName, "operand_batching_dims");
      CheckDims(fD.start_indices_batching_dims, idx.size() - 1, fKindName, "start_indices_batching_dims");
      if (fD.operand_batching_dims.size() != fD.start_indices_batching_dims.size())
         throw Error(fKindName, "operand_batching_dims and start_indices_batching_dims differ in length");
      fSize.clear();
      for (std::size_t d = 0; d < r; d++) {
         const auto s = fD.slice_sizes[d];
         fSize.push_back(s < 0 ? x[d] : Dim{static_cast<std::size_t>(s)});
         if (!x[d].isParam && !fSize[d].isParam && fSize[d].dim > x[d].dim)
            throw Error(fKindName, "slice size " + std::to_string(s) + " exceeds operand dim " + std::to_string(d));
      }
      fWindow.clear();
      for (std::size_t d = 0; d < r; d++)
         if (!Contains(fD.collapsed_slice_dims, d) && !Contains(fD.operand_batching_dims, d))
            fWindow.push_back(d);
      if (fWindow.size() != fD.offset_dims.size())
         throw Error(fKindName, std::to_string(fD.offset_dims.size()) + " offset_dims for " +
                                   std::to_string(fWindow.size()) + " window dimensions");
      const std::size_t outRank = idx.size() - 1 + fWindow.size();
      CheckDims(fD.offset_dims, outRank, fKindName, "offset_dims");
      Shape out;
      fBatchPos.clear();
      for (std::size_t p = 0, w = 0, b = 0; p < outRank; p++) {
         if (Contains(fD.offset_dims, p)) {
            out.push_back(fSize[fWindow[w++]]);
         } else {
            fBatchPos.push_back(p);
            out.push_back(idx[b++]);
         }
      }
      if (out.empty()) // a rank-0 result is a [1] tensor, as rank-0 values are everywhere in the model
         out.push_back(Dim{std::size_t(1)});
      return {{in.at(0).type, out}};
   }

   std::string GenerateCode() override
   {
      using namespace indexing_detail;
      const auto &x = InInfo(0).shape, &y = OutInfo(0).shape, &idx = InInfo(1).shape;
      const auto sx = Strides(x), sy = Strides(y);
      const std::size_t k = fD.start_index_map.size();
      Code c;
      c.Open("");
      c.Line("size_t g = 0; // index vectors read so far");
      std::vector<std::string> xBase, yBase;
      for (std::size_t j = 0; j + 1 < idx.size(); j++) {
         const std::string b = "b" + std::to_string(j);
         c.Loop(b, Product(idx, j, j + 1));
         yBase.push_back(Scaled(b, sy[fBatchPos[j]]));
      }
      c.Line("const " + CType(InInfo(1).type) + " *iv = " + In(1) + " + g * " + std::to_string(k) + ";");
      c.Line("g++;");
      if (fFill)
         c.Line("bool inBounds = true;");
      for (std::size_t m = 0; m < k; m++) {
         const auto d = static_cast<std::size_t>(fD.start_index_map[m]);
         const std::string s = "s" + std::to_string(d), last = LastStart(x[d], fSize[d]);
         c.Line("int64_t " + s + " = static_cast<int64_t>(iv[" + std::to_string(m) + "]);");
         if (fWrapNegative)
            c.Line("if (" + s + " < 0) " + s + " += " + Signed(x[d]) + ";");
         if (fFill)
            c.Line("inBounds = inBounds && " + s + " >= 0 && " + s + " <= " + last + ";");
         else
            c.Line(s + " = std::min<int64_t>(std::max<int64_t>(" + s + ", 0), " + last + ");");
         xBase.push_back(Scaled("static_cast<size_t>(" + s + ")", sx[d]));
      }
      for (std::size_t i = 0; i < fD.operand_batching_dims.size(); i++)
         xBase.push_back(Scaled("b" + std::to_string(fD.start_indices_batching_dims[i]),
                                sx[fD.operand_batching_dims[i]]));
      c.Line("const size_t yb = " + Sum(yBase) + ";");
      if (fFill) {
         c.Open("if (!inBounds)");
         WindowLoops(c, "yb", "", Literal(fFillValue, InInfo(0).type));
         c.Close();
         c.Open("else");
      }
      c.Line("const size_t xb = " + Sum(xBase) + ";");
      WindowLoops(c, "yb", "xb", "");
      if (fFill)
         c.Close();
      for (std::size_t j = 0; j + 1 < idx.size(); j++)
         c.Close();
      c.Close();
      return c.Str();
   }

private:
   /// Loops over the window: y[yb + ...] = x[xb + ...] (or = `value` when xb is empty). The innermost
   /// window dims that are contiguous in both the operand and the output (an embedding lookup's whole
   /// row) are one std::copy (std::fill for `value`) instead of a loop of single elements.
   void WindowLoops(indexing_detail::Code &c, const std::string &yb, const std::string &xb, const std::string &value)
   {
      using namespace indexing_detail;
      const auto sx = Strides(InInfo(0).shape), sy = Strides(OutInfo(0).shape);
      const std::size_t looped = fWindow.size() - ContiguousWindowDims();
      std::vector<std::string> yTerms{yb}, xTerms{xb};
      for (std::size_t w = 0; w < looped; w++) {
         const std::string v = "w" + std::to_string(w);
         c.Loop(v, Product({fSize[fWindow[w]]}));
         yTerms.push_back(Scaled(v, sy[fD.offset_dims[w]]));
         xTerms.push_back(Scaled(v, sx[fWindow[w]]));
      }
      if (looped == fWindow.size()) {
         c.Line(Out(0) + "[" + Sum(yTerms) + "] = " + (xb.empty() ? value : In(0) + "[" + Sum(xTerms) + "]") + ";");
      } else {
         const std::string run = Product(RunSizes(looped)), y = Out(0) + " + " + Paren(Sum(yTerms));
         if (xb.empty())
            c.Line("std::fill(" + y + ", " + y + " + " + Paren(run) + ", " + value + ");");
         else
            c.Line("std::copy(" + In(0) + " + " + Paren(Sum(xTerms)) + ", " + In(0) + " + " + Paren(Sum(xTerms)) +
                   " + " + Paren(run) + ", " + y + ");");
      }
      for (std::size_t w = 0; w < looped; w++)
         c.Close();
   }

   /// The window sizes of window dims [from, end), in order.
   indexing_detail::Shape RunSizes(std::size_t from) const
   {
      indexing_detail::Shape sizes;
      for (std::size_t w = from; w < fWindow.size(); w++)
         sizes.push_back(fSize[fWindow[w]]);
      return sizes;
   }

   /// How many of the innermost window dims form one contiguous run of elements in both the operand
   /// and the output: each one's stride, in both, is the product of the window sizes after it (the
   /// strides and that product are folded the same way by Product, so comparing the texts is exact
   /// for numbers and for the symbolic batch alike).
   std::size_t ContiguousWindowDims() const
   {
      using namespace indexing_detail;
      const auto sx = Strides(InInfo(0).shape), sy = Strides(OutInfo(0).shape);
      std::size_t n = 0;
      for (std::size_t w = fWindow.size(); w-- > 0; n++) {
         const std::string after = Product(RunSizes(w + 1));
         if (sx[fWindow[w]] != after || sy[fD.offset_dims[w]] != after)
            break;
      }
      return n;
   }

   Dims fD;
   bool fFill, fWrapNegative;
   double fFillValue;
   std::vector<SOFIE::Dim> fSize;     // window size per operand dim
   std::vector<std::size_t> fWindow;  // operand dims that are window (offset) dims, in order
   std::vector<std::size_t> fBatchPos; // output positions of the indices' batch dims
};

} // namespace jax2sofie
