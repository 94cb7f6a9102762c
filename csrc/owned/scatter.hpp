// J2S_Scatter: XLA scatter (project-owned; helpers in indexing_common.hpp).
#pragma once

#include "indexing_common.hpp"

namespace jax2sofie {

/// J2S_Scatter: XLA scatter with the index vector in the last dimension of `indices`. The output is
/// the operand with, for every update window, y[start + w] = combine(y[start + w], updates[..., w]),
/// applied in the order of the updates (so with `set`, the last of duplicate indices wins, as XLA
/// on CPU). start[scatter_dims_to_operand_dims[k]] = indices[..., k]; operand_batching_dims take the
/// batch coordinate scatter_indices_batching_dims. A window that does not fit is dropped whole (XLA,
/// JAX's FILL_OR_DROP and PROMISE_IN_BOUNDS), or with `clip` its start is clamped (JAX's CLIP).
/// combine: set | add | sub | mul | min | max (min/max propagate NaN like lax.min/lax.max).
class ScatterOperator final : public OwnedOperator {
public:
   struct Dims {
      std::vector<std::int64_t> update_window_dims, inserted_window_dims, scatter_dims_to_operand_dims,
         operand_batching_dims, scatter_indices_batching_dims;
   };

   ScatterOperator(Dims dims, std::string combine, bool clip, std::string operand, std::string indices,
               std::string updates, std::string out)
      : OwnedOperator("J2S_Scatter", {std::move(operand), std::move(indices), std::move(updates)}, {std::move(out)}),
        fD(std::move(dims)), fCombine(std::move(combine)), fClip(clip)
   {
      static const std::set<std::string> kinds = {"set", "add", "sub", "mul", "min", "max"};
      if (!kinds.count(fCombine))
         throw indexing_detail::Error(fKindName, "unknown combine '" + fCombine + "'");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace indexing_detail;
      const auto &x = in.at(0).shape, &idx = in.at(1).shape;
      const std::size_t r = x.size();
      // a rank-0 update (x.at[i].set(v) with a scalar v) is a [1] tensor in the model, as rank-0
      // values are everywhere: its rank is the one the dimension numbers say, 0
      const bool scalarUpdates = idx.size() == 1 && fD.update_window_dims.empty();
      fUpdates = in.at(2).shape;
      if (scalarUpdates && fUpdates.size() == 1 && !fUpdates[0].isParam && fUpdates[0].dim == 1)
         fUpdates.clear();
      const auto &u = fUpdates;
      if (!IsIndexType(in.at(1).type))
         throw Error(fKindName, "indices must be int32 or int64");
      if (in.at(2).type != in.at(0).type)
         throw Error(fKindName, "updates and operand differ in type");
      if (in.at(0).type == SOFIE::ETensorType::BOOL && fCombine != "set")
         throw Error(fKindName, "combine '" + fCombine + "' needs a numeric operand");
      if (idx.empty() || idx.back().isParam || idx.back().dim != fD.scatter_dims_to_operand_dims.size())
         throw Error(fKindName, "the last dimension of the indices must be the index vector, of length " +
                                   std::to_string(fD.scatter_dims_to_operand_dims.size()));
      CheckDims(fD.update_window_dims, u.size(), fKindName, "update_window_dims");
      CheckDims(fD.inserted_window_dims, r, fKindName, "inserted_window_dims");
      CheckDims(fD.scatter_dims_to_operand_dims, r, fKindName, "scatter_dims_to_operand_dims");
      CheckDims(fD.operand_batching_dims, r, fKindName, "operand_batching_dims");
      CheckDims(fD.scatter_indices_batching_dims, idx.size() - 1, fKindName, "scatter_indices_batching_dims");
      if (fD.operand_batching_dims.size() != fD.scatter_indices_batching_dims.size())
         throw Error(fKindName, "operand_batching_dims and scatter_indices_batching_dims differ in length");
      if (u.size() != idx.size() - 1 + fD.update_window_dims.size())
         throw Error(fKindName, "updates have rank " + std::to_string(u.size()) + ", expected " +
                                   std::to_string(idx.size() - 1 + fD.update_window_dims.size()));
      fWindow.clear();
      for (std::size_t d = 0; d < r; d++)
         if (!Contains(fD.inserted_window_dims, d) && !Contains(fD.operand_batching_dims, d))
            fWindow.push_back(d);
      if (fWindow.size() != fD.update_window_dims.size())
         throw Error(fKindName, std::to_string(fD.update_window_dims.size()) + " update_window_dims for " +
                                   std::to_string(fWindow.size()) + " window dimensions of the operand");
      fSize.assign(r, Dim{std::size_t(1)});
      for (std::size_t w = 0; w < fWindow.size(); w++)
         fSize[fWindow[w]] = u[fD.update_window_dims[w]];
      fScatterPos.clear();
      for (std::size_t p = 0; p < u.size(); p++)
         if (!Contains(fD.update_window_dims, p))
            fScatterPos.push_back(p);
      return {{in.at(0).type, x}};
   }

   std::string GenerateCode() override
   {
      using namespace indexing_detail;
      const auto &x = InInfo(0).shape, &idx = InInfo(1).shape, &u = fUpdates;
      const auto sx = Strides(x), su = Strides(u);
      const std::size_t k = fD.scatter_dims_to_operand_dims.size();
      Code c;
      c.Open("");
      c.Line("std::copy(" + In(0) + ", " + In(0) + " + " + Length(x) + ", " + Out(0) + ");");
      c.Line("size_t g = 0; // index vectors read so far");
      std::vector<std::string> xBase, uBase;
      for (std::size_t j = 0; j < fScatterPos.size(); j++) {
         const std::string b = "b" + std::to_string(j);
         c.Loop(b, Product(u, fScatterPos[j], fScatterPos[j] + 1));
         uBase.push_back(Scaled(b, su[fScatterPos[j]]));
      }
      c.Line("const " + CType(InInfo(1).type) + " *iv = " + In(1) + " + g * " + std::to_string(k) + ";");
      c.Line("g++;");
      if (!fClip)
         c.Line("bool inBounds = true;");
      for (std::size_t m = 0; m < k; m++) {
         const auto d = static_cast<std::size_t>(fD.scatter_dims_to_operand_dims[m]);
         const std::string s = "s" + std::to_string(d), last = LastStart(x[d], fSize[d]);
         c.Line("int64_t " + s + " = static_cast<int64_t>(iv[" + std::to_string(m) + "]);");
         if (fClip)
            c.Line(s + " = std::min<int64_t>(std::max<int64_t>(" + s + ", 0), " + last + ");");
         else
            c.Line("inBounds = inBounds && " + s + " >= 0 && " + s + " <= " + last + ";");
         xBase.push_back(Scaled("static_cast<size_t>(" + s + ")", sx[d]));
      }
      for (std::size_t i = 0; i < fD.operand_batching_dims.size(); i++)
         xBase.push_back(Scaled("b" + std::to_string(fD.scatter_indices_batching_dims[i]),
                                sx[fD.operand_batching_dims[i]]));
      if (!fClip)
         c.Open("if (inBounds)");
      c.Line("const size_t xb = " + Sum(xBase) + ";");
      c.Line("const size_t ub = " + Sum(uBase) + ";");
      std::vector<std::string> xTerms{"xb"}, uTerms{"ub"};
      for (std::size_t w = 0; w < fWindow.size(); w++) {
         const std::string v = "w" + std::to_string(w);
         c.Loop(v, Product({fSize[fWindow[w]]}));
         xTerms.push_back(Scaled(v, sx[fWindow[w]]));
         uTerms.push_back(Scaled(v, su[fD.update_window_dims[w]]));
      }
      c.Line(Combine(Out(0) + "[" + Sum(xTerms) + "]", In(2) + "[" + Sum(uTerms) + "]"));
      for (std::size_t w = 0; w < fWindow.size(); w++)
         c.Close();
      if (!fClip)
         c.Close();
      for (std::size_t j = 0; j < fScatterPos.size(); j++)
         c.Close();
      c.Close();
      (void)idx;
      return c.Str();
   }

private:
   std::string Combine(const std::string &y, const std::string &u) const
   {
      if (fCombine == "set")
         return y + " = " + u + ";";
      if (fCombine == "add")
         return y + " += " + u + ";";
      if (fCombine == "sub")
         return y + " -= " + u + ";";
      if (fCombine == "mul")
         return y + " *= " + u + ";";
      // min / max: NaN in either operand gives NaN for floats, as lax.min / lax.max
      const std::string T = CType(InInfo(0).type);
      const std::string cmp = fCombine == "max" ? " > " : " < ";
      const bool isFloat = indexing_detail::IsFloat(InInfo(0).type);
      return "{ const " + T + " u_ = " + u + "; if (u_" + cmp + y + (isFloat ? " || u_ != u_" : "") + ") " + y +
             " = u_; }";
   }

   Dims fD;
   std::string fCombine;
   bool fClip;
   std::vector<SOFIE::Dim> fSize;       // window size per operand dim
   std::vector<std::size_t> fWindow;    // operand dims that are window dims, in order
   std::vector<std::size_t> fScatterPos; // dims of the updates that are not window dims
   std::vector<SOFIE::Dim> fUpdates;    // the updates' shape (a rank-0 update has none)
};

} // namespace jax2sofie
