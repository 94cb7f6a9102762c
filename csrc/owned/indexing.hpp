// Project-owned indexing and data-movement operators with XLA semantics:
//   J2S_Gather   XLA gather, any GatherDimensionNumbers (incl. batching dims), clamped or filled
//                out-of-bounds starts (SOFIE's Gather is one axis only; its GatherND wraps negative
//                indices once and never checks bounds);
//   J2S_Scatter  XLA scatter with set/add/sub/mul/min/max, clamped or dropped out-of-bounds windows
//                (SOFIE's ScatterND fails shape inference on the index shapes JAX produces);
//   J2S_Pad      lax.pad: low/high padding (negative crops) and interior padding;
//   J2S_Reverse  lax.rev over any set of axes;
//   J2S_Tile     lax.tile (numpy tile with one repeat count per axis);
//   J2S_Split    lax.split into pieces of given sizes along one axis (several outputs).
//
// Shapes may hold a symbolic batch ("bs"): every size and stride is a C++ expression built from the
// Dims, with the numeric part folded ("bs*20", not "bs*4*5"). Index arithmetic is hoisted out of the
// innermost loops: a window's base offsets are computed once per index vector.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie {

namespace indexing_detail {

using namespace codegen;

/// The value of a Dim as a signed C++ expression.
inline std::string Signed(const Dim &d)
{
   return d.isParam ? "static_cast<int64_t>(" + d.param + ")" : std::to_string(static_cast<std::int64_t>(d.dim));
}

/// `d - size` as a signed expression (the largest valid start of a window of `size` along `d`).
inline std::string LastStart(const Dim &d, const Dim &size)
{
   if (d == size)
      return "0";
   if (!d.isParam && !size.isParam)
      return std::to_string(static_cast<std::int64_t>(d.dim) - static_cast<std::int64_t>(size.dim));
   return Signed(d) + " - " + Signed(size);
}

inline bool Contains(const std::vector<std::int64_t> &v, std::size_t x)
{
   return std::find(v.begin(), v.end(), static_cast<std::int64_t>(x)) != v.end();
}

inline std::runtime_error Error(const std::string &op, const std::string &what)
{
   return std::runtime_error("jax2sofie " + op + ": " + what);
}

inline void CheckDims(const std::vector<std::int64_t> &dims, std::size_t rank, const std::string &op,
                      const std::string &what)
{
   std::set<std::int64_t> seen;
   for (auto d : dims) {
      if (d < 0 || static_cast<std::size_t>(d) >= rank || !seen.insert(d).second)
         throw Error(op, what + " holds an invalid or repeated dimension " + std::to_string(d) + " (rank " +
                             std::to_string(rank) + ")");
   }
}

inline bool IsIndexType(SOFIE::ETensorType t)
{
   return t == SOFIE::ETensorType::INT32 || t == SOFIE::ETensorType::INT64;
}

/// A value of type `type` as a C++ literal (NaN and infinities spelled through numeric_limits).
inline std::string Literal(double v, SOFIE::ETensorType type)
{
   const std::string T = SOFIE::ConvertTypeToString(type);
   if (type == SOFIE::ETensorType::BOOL)
      return v != 0 ? "1" : "0";
   if (IsFloat(type)) {
      if (v != v)
         return "std::numeric_limits<" + T + ">::quiet_NaN()";
      if (v == std::numeric_limits<double>::infinity())
         return "std::numeric_limits<" + T + ">::infinity()";
      if (v == -std::numeric_limits<double>::infinity())
         return "-std::numeric_limits<" + T + ">::infinity()";
      std::stringstream s;
      s.precision(17);
      s << "static_cast<" << T << ">(" << v << ")";
      return s.str();
   }
   if (type == SOFIE::ETensorType::INT64 && v <= -9.2233720368547758e18)
      return "std::numeric_limits<int64_t>::min()";
   std::stringstream s;
   s << "static_cast<" << T << ">(" << static_cast<std::int64_t>(v) << "LL)";
   return s.str();
}

} // namespace indexing_detail

// ---------------------------------------------------------------------------------------------
/// J2S_Gather: XLA gather with the index vector in the last dimension of `indices` (as JAX writes
/// it). For each index vector (the batch dims of `indices`), the start of the window in the operand
/// is start[start_index_map[k]] = indices[..., k], start[operand_batching_dims[i]] = the batch
/// coordinate start_indices_batching_dims[i]; the window (slice_sizes, -1 = the whole operand dim)
/// is copied to the output with the collapsed and batching dims dropped, its remaining dims at
/// `offset_dims`. Out-of-bounds starts: clamped to [0, dim - size] (XLA's gather, JAX's CLIP and
/// PROMISE_IN_BOUNDS) or, with `fill`, the whole window is fill_value (JAX's FILL_OR_DROP).
class J2S_Gather final : public OwnedOperator {
public:
   struct Dims {
      std::vector<std::int64_t> offset_dims, collapsed_slice_dims, start_index_map, operand_batching_dims,
         start_indices_batching_dims, slice_sizes;
   };

   J2S_Gather(Dims dims, bool fill, double fillValue, std::string operand, std::string indices, std::string out)
      : OwnedOperator("J2S_Gather", {std::move(operand), std::move(indices)}, {std::move(out)}), fD(std::move(dims)),
        fFill(fill), fFillValue(fillValue)
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
   bool fFill;
   double fFillValue;
   std::vector<SOFIE::Dim> fSize;     // window size per operand dim
   std::vector<std::size_t> fWindow;  // operand dims that are window (offset) dims, in order
   std::vector<std::size_t> fBatchPos; // output positions of the indices' batch dims
};

// ---------------------------------------------------------------------------------------------
/// J2S_Scatter: XLA scatter with the index vector in the last dimension of `indices`. The output is
/// the operand with, for every update window, y[start + w] = combine(y[start + w], updates[..., w]),
/// applied in the order of the updates (so with `set`, the last of duplicate indices wins, as XLA
/// on CPU). start[scatter_dims_to_operand_dims[k]] = indices[..., k]; operand_batching_dims take the
/// batch coordinate scatter_indices_batching_dims. A window that does not fit is dropped whole (XLA,
/// JAX's FILL_OR_DROP and PROMISE_IN_BOUNDS), or with `clip` its start is clamped (JAX's CLIP).
/// combine: set | add | sub | mul | min | max (min/max propagate NaN like lax.min/lax.max).
class J2S_Scatter final : public OwnedOperator {
public:
   struct Dims {
      std::vector<std::int64_t> update_window_dims, inserted_window_dims, scatter_dims_to_operand_dims,
         operand_batching_dims, scatter_indices_batching_dims;
   };

   J2S_Scatter(Dims dims, std::string combine, bool clip, std::string operand, std::string indices,
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

// ---------------------------------------------------------------------------------------------
/// J2S_Pad: lax.pad. Inputs [X, padding value (one element)]; per dim low, high (negative: crop)
/// and interior padding. Output dim = low + high + n + (n - 1) * interior. A symbolic dim takes
/// no interior padding.
class J2S_Pad final : public OwnedOperator {
public:
   J2S_Pad(std::vector<std::int64_t> low, std::vector<std::int64_t> high, std::vector<std::int64_t> interior,
           std::string x, std::string value, std::string y)
      : OwnedOperator("J2S_Pad", {std::move(x), std::move(value)}, {std::move(y)}), fLow(std::move(low)),
        fHigh(std::move(high)), fInterior(std::move(interior))
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace indexing_detail;
      const auto &x = in.at(0).shape;
      if (fLow.size() != x.size() || fHigh.size() != x.size() || fInterior.size() != x.size())
         throw Error(fKindName, "low/high/interior need one entry per dimension of the rank-" +
                                   std::to_string(x.size()) + " input");
      if (in.at(1).type != in.at(0).type)
         throw Error(fKindName, "the padding value and the input differ in type");
      Shape out;
      for (std::size_t d = 0; d < x.size(); d++) {
         if (fInterior[d] < 0)
            throw Error(fKindName, "negative interior padding");
         const std::int64_t pads = fLow[d] + fHigh[d];
         if (x[d].isParam) {
            if (fInterior[d] != 0)
               throw Error(fKindName, "interior padding of the symbolic dimension " + x[d].param);
            const std::string e = Paren(x[d].param) + (pads > 0 ? "+" + std::to_string(pads)
                                                        : pads < 0 ? std::to_string(pads) : "");
            out.push_back(pads == 0 ? x[d] : Dim{e, static_cast<std::size_t>(-1)});
         } else {
            const auto n = static_cast<std::int64_t>(x[d].dim);
            const std::int64_t size = pads + n + (n > 0 ? (n - 1) * fInterior[d] : 0);
            if (size < 0)
               throw Error(fKindName, "padding makes dimension " + std::to_string(d) + " negative");
            out.push_back(Dim{static_cast<std::size_t>(size)});
         }
      }
      return {{in.at(0).type, out}};
   }

   std::string GenerateCode() override
   {
      using namespace indexing_detail;
      const auto &x = InInfo(0).shape, &y = OutInfo(0).shape;
      const auto sx = Strides(x), sy = Strides(y);
      Code c;
      c.Open("");
      c.Line("std::fill(" + Out(0) + ", " + Out(0) + " + " + Length(y) + ", " + In(1) + "[0]);");
      // per dim: the input positions [begin, end) that land inside the output, at lo + i * step
      std::vector<std::string> begins, ends;
      for (std::size_t d = 0; d < x.size(); d++) {
         const std::int64_t step = fInterior[d] + 1, lo = fLow[d];
         if (x[d].isParam) { // no interior padding here
            const std::int64_t cut = std::max<std::int64_t>(0, -fHigh[d]);
            begins.push_back(std::to_string(std::max<std::int64_t>(0, -lo)));
            ends.push_back(cut ? Signed(x[d]) + " - " + std::to_string(cut) : Signed(x[d]));
            continue;
         }
         const auto n = static_cast<std::int64_t>(x[d].dim), outN = static_cast<std::int64_t>(y[d].dim);
         const std::int64_t b = lo < 0 ? (-lo + step - 1) / step : 0;
         const std::int64_t e = outN - 1 - lo < 0 ? 0 : std::min(n, (outN - 1 - lo) / step + 1);
         if (e <= b) { // the padding crops the whole input away
            c.Close();
            return c.Str();
         }
         begins.push_back(std::to_string(b));
         ends.push_back(std::to_string(e));
      }
      std::vector<std::string> xTerms, yTerms;
      for (std::size_t d = 0; d < x.size(); d++) {
         const std::int64_t step = fInterior[d] + 1, lo = fLow[d];
         const std::string i = "i" + std::to_string(d);
         c.Open("for (int64_t " + i + " = " + begins[d] + "; " + i + " < " + ends[d] + "; " + i + "++)");
         xTerms.push_back(Scaled(i, sx[d]));
         std::string pos = step == 1 ? i : i + "*" + std::to_string(step);
         if (lo != 0)
            pos = "(" + pos + (lo > 0 ? " + " : " - ") + std::to_string(std::abs(lo)) + ")";
         yTerms.push_back(Scaled(pos, sy[d]));
      }
      c.Line(Out(0) + "[" + Sum(yTerms) + "] = " + In(0) + "[" + Sum(xTerms) + "];");
      for (std::size_t d = 0; d < x.size(); d++)
         c.Close();
      c.Close();
      return c.Str();
   }

private:
   std::vector<std::int64_t> fLow, fHigh, fInterior;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Reverse: lax.rev, the order of the elements reversed along `axes`.
class J2S_Reverse final : public OwnedOperator {
public:
   J2S_Reverse(std::vector<std::int64_t> axes, std::string x, std::string y)
      : OwnedOperator("J2S_Reverse", {std::move(x)}, {std::move(y)}), fAxes(std::move(axes))
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      indexing_detail::CheckDims(fAxes, in.at(0).shape.size(), fKindName, "axes");
      return {in.at(0)};
   }

   std::string GenerateCode() override
   {
      using namespace indexing_detail;
      const auto &x = InInfo(0).shape;
      const auto s = Strides(x);
      Code c;
      c.Open("");
      c.Line("size_t iy = 0;");
      std::vector<std::string> xTerms;
      for (std::size_t d = 0; d < x.size(); d++) {
         const std::string i = "i" + std::to_string(d), n = Product(x, d, d + 1);
         c.Loop(i, n);
         xTerms.push_back(Scaled(Contains(fAxes, d) ? "(" + n + " - 1 - " + i + ")" : i, s[d]));
      }
      c.Line(Out(0) + "[iy++] = " + In(0) + "[" + Sum(xTerms) + "];");
      for (std::size_t d = 0; d < x.size(); d++)
         c.Close();
      c.Close();
      return c.Str();
   }

private:
   std::vector<std::int64_t> fAxes;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Tile: lax.tile, the input repeated reps[d] times along each dim d (y[i] = x[i mod n]).
class J2S_Tile final : public OwnedOperator {
public:
   J2S_Tile(std::vector<std::int64_t> reps, std::string x, std::string y)
      : OwnedOperator("J2S_Tile", {std::move(x)}, {std::move(y)}), fReps(std::move(reps))
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace indexing_detail;
      const auto &x = in.at(0).shape;
      if (fReps.size() != x.size())
         throw Error(fKindName, "reps needs one entry per dimension of the rank-" + std::to_string(x.size()) + " input");
      Shape out;
      for (std::size_t d = 0; d < x.size(); d++) {
         if (fReps[d] < 1)
            throw Error(fKindName, "reps must be >= 1");
         const auto r = static_cast<std::size_t>(fReps[d]);
         if (r == 1)
            out.push_back(x[d]);
         else if (x[d].isParam)
            out.push_back(Dim{Paren(x[d].param) + "*" + std::to_string(r), static_cast<std::size_t>(-1)});
         else
            out.push_back(Dim{x[d].dim * r});
      }
      return {{in.at(0).type, out}};
   }

   std::string GenerateCode() override
   {
      using namespace indexing_detail;
      const auto &x = InInfo(0).shape;
      const auto s = Strides(x);
      Code c;
      c.Open("");
      c.Line("size_t iy = 0;");
      std::vector<std::string> xTerms;
      // loops over (repeat, position) per dim, in output order: the input offset needs no modulo
      for (std::size_t d = 0; d < x.size(); d++) {
         const std::string i = "i" + std::to_string(d);
         if (fReps[d] > 1)
            c.Loop("r" + std::to_string(d), std::to_string(fReps[d]));
         c.Loop(i, Product(x, d, d + 1));
         xTerms.push_back(Scaled(i, s[d]));
      }
      c.Line(Out(0) + "[iy++] = " + In(0) + "[" + Sum(xTerms) + "];");
      for (std::size_t d = 0; d < x.size(); d++) {
         c.Close();
         if (fReps[d] > 1)
            c.Close();
      }
      c.Close();
      return c.Str();
   }

private:
   std::vector<std::int64_t> fReps;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Split: lax.split, the input cut along `axis` into consecutive pieces of `sizes`, one output
/// per piece (each a contiguous block per outer index, copied with std::copy).
class J2S_Split final : public OwnedOperator {
public:
   J2S_Split(std::int64_t axis, std::vector<std::int64_t> sizes, std::string x, std::vector<std::string> outputs)
      : OwnedOperator("J2S_Split", {std::move(x)}, std::move(outputs)), fAxisIn(axis), fSizes(std::move(sizes))
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace indexing_detail;
      const auto &x = in.at(0).shape;
      const auto rank = static_cast<std::int64_t>(x.size());
      const std::int64_t axis = fAxisIn < 0 ? fAxisIn + rank : fAxisIn;
      if (axis < 0 || axis >= rank)
         throw Error(fKindName, "axis out of range for a rank-" + std::to_string(rank) + " input");
      fAxis = static_cast<std::size_t>(axis);
      if (x[fAxis].isParam)
         throw Error(fKindName, "cannot split the symbolic dimension " + x[fAxis].param);
      std::int64_t total = 0;
      for (auto s : fSizes) {
         if (s < 0)
            throw Error(fKindName, "negative piece size");
         total += s;
      }
      if (total != static_cast<std::int64_t>(x[fAxis].dim))
         throw Error(fKindName, "the piece sizes do not add up to the axis length");
      std::vector<TensorInfo> out;
      for (auto s : fSizes) {
         auto shape = x;
         shape[fAxis] = Dim{static_cast<std::size_t>(s)};
         out.push_back({in.at(0).type, shape});
      }
      return out;
   }

   std::string GenerateCode() override
   {
      using namespace indexing_detail;
      const auto &x = InInfo(0).shape;
      const std::string outer = Product(x, 0, fAxis), inner = Product(x, fAxis + 1);
      const std::string rowX = Paren(std::to_string(x[fAxis].dim) + (inner == "1" ? "" : "*" + Paren(inner)));
      Code c;
      c.Open("");
      c.Loop("o", outer);
      std::int64_t offset = 0;
      for (std::size_t p = 0; p < fSizes.size(); p++) {
         if (fSizes[p] == 0)
            continue;
         const std::string piece = Paren(std::to_string(fSizes[p]) + (inner == "1" ? "" : "*" + Paren(inner)));
         const std::string from = In(0) + " + o*" + rowX + (offset ? " + " + std::to_string(offset) +
                                                                        (inner == "1" ? "" : "*" + Paren(inner))
                                                                      : "");
         c.Line("std::copy(" + from + ", " + from + " + " + piece + ", " + Out(p) + " + o*" + piece + ");");
         offset += fSizes[p];
      }
      c.Close();
      c.Close();
      return c.Str();
   }

private:
   std::int64_t fAxisIn;
   std::size_t fAxis = 0;
   std::vector<std::int64_t> fSizes;
};

} // namespace jax2sofie
