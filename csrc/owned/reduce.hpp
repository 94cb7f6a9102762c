// Project-owned reductions, scans and sorts: what SOFIE lacks (ArgMax/ArgMin, cumulative max/min/prod/
// logsumexp, sorting with several operands) or offers only for float (reductions of ints and bools).
//
// Every op here walks its input as row-major (outer, n, inner) around one axis, or (J2S_Reduce) as
// alternating groups of kept and reduced axes. Sizes are C++ expressions, so a symbolic batch ("bs")
// can sit in any dimension; nothing is evaluated at generation time except static strides.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"
#include "reduce_vector.hpp"

#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie {

namespace reduce_detail {

/// (outer, n, inner) of `shape` around `axis`, as expressions.
struct AxisSplit {
   std::string outer, n, inner;
};
inline AxisSplit SplitAt(const std::vector<SOFIE::Dim> &shape, std::size_t axis)
{
   return {codegen::Paren(codegen::Product(shape, 0, axis)), "(" + shape[axis].GetVal() + ")",
           codegen::Paren(codegen::Product(shape, axis + 1))};
}

inline std::size_t CheckAxis(std::int64_t axis, std::size_t rank, const std::string &what)
{
   if (axis < 0)
      axis += static_cast<std::int64_t>(rank);
   if (axis < 0 || static_cast<std::size_t>(axis) >= rank)
      throw std::runtime_error("jax2sofie " + what + ": axis out of range for a rank-" + std::to_string(rank) +
                               " input");
   return static_cast<std::size_t>(axis);
}

} // namespace reduce_detail

// ---------------------------------------------------------------------------------------------
/// J2S_Reduce: reduce over `axes` with sum | prod | max | min | and | or | xor, for every element
/// type (SOFIE's Reduce is float-only). max/min propagate NaN like lax.reduce_max, and for floats
/// rank -0.0 below +0.0 as XLA does. keepdims keeps the reduced axes as size 1 (how a reduction to a
/// scalar is written: SOFIE has no rank-0 tensors in its intermediate bookkeeping). float32 sum, max
/// and min over one run of axes that is trailing or followed by kept axes of a static length are
/// vector kernels (reduce_vector.hpp); the rest is one scalar loop over the input.
class ReduceOperator final : public OwnedOperator {
public:
   ReduceOperator(std::string mode, std::vector<std::int64_t> axes, bool keepdims, std::string x, std::string y)
      : OwnedOperator("J2S_Reduce", {std::move(x)}, {std::move(y)}), fMode(std::move(mode)), fAxesIn(std::move(axes)),
        fKeepDims(keepdims)
   {
      static const std::set<std::string> modes = {"sum", "prod", "max", "min", "and", "or", "xor"};
      if (!modes.count(fMode))
         throw std::runtime_error("jax2sofie J2S_Reduce: unknown mode '" + fMode + "'");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0);
      fReduced.assign(x.shape.size(), false);
      for (auto a : fAxesIn)
         fReduced[reduce_detail::CheckAxis(a, x.shape.size(), fKindName)] = true;
      std::vector<SOFIE::Dim> out;
      for (std::size_t i = 0; i < x.shape.size(); i++) {
         if (!fReduced[i])
            out.push_back(x.shape[i]);
         else if (fKeepDims)
            out.push_back(SOFIE::Dim{std::size_t(1)});
      }
      if (out.empty())
         throw std::runtime_error("jax2sofie J2S_Reduce: a reduction to rank 0 must use keepdims=1");
      const bool logic = fMode == "and" || fMode == "or" || fMode == "xor";
      if (logic && x.type != SOFIE::ETensorType::BOOL)
         throw std::runtime_error("jax2sofie J2S_Reduce: mode '" + fMode + "' needs a bool input");
      if (!logic && x.type == SOFIE::ETensorType::BOOL)
         throw std::runtime_error("jax2sofie J2S_Reduce: mode '" + fMode + "' needs a numeric input");
      // float32 sum/max/min over one run of axes in vectors (reduce_vector.hpp): the trailing axes
      // (rows of a static length) or axes followed by kept ones of a static total length
      std::size_t first = 0;
      while (first < x.shape.size() && !fReduced[first])
         first++;
      std::size_t last = first;
      while (last < x.shape.size() && fReduced[last])
         last++;
      bool oneRun = first < x.shape.size();
      for (std::size_t i = last; i < x.shape.size(); i++)
         oneRun = oneRun && !fReduced[i];
      fKernel = Kernel::None;
      if (oneRun && x.type == SOFIE::ETensorType::FLOAT && (fMode == "sum" || fMode == "max" || fMode == "min")) {
         const std::vector<SOFIE::Dim> kept(x.shape.begin() + last, x.shape.end()),
            reduced(x.shape.begin() + first, x.shape.begin() + last);
         fOuter = codegen::Product(x.shape, 0, first);
         fN = codegen::Product(reduced);
         auto staticLength = [](const std::vector<SOFIE::Dim> &dims) -> std::int64_t {
            std::int64_t n = 1;
            for (auto &d : dims) {
               if (d.isParam)
                  return -1;
               n *= static_cast<std::int64_t>(d.dim);
            }
            return n;
         };
         if (kept.empty()) {
            fStaticN = staticLength(reduced);
            if (fStaticN >= 4)
               fKernel = Kernel::Rows;
         } else {
            fInner = staticLength(kept);
            if (fInner >= 4)
               fKernel = Kernel::Columns;
         }
      }
      return {{x.type, out}};
   }

   bool UsesKernel() const override { return fKernel != Kernel::None; }

   /// The vector code where the compiler has vector extensions, else the scalar loop.
   std::string KernelCode(const codegen::Isa &isa) override
   {
      std::string vector;
      if (fKernel == Kernel::Rows)
         vector = reduce_vector::RowsKernel(fMode, In(0), Out(0), fOuter, fStaticN, isa.width);
      else
         vector = reduce_vector::ColumnsKernel(fMode, In(0), Out(0), fOuter, fN, fInner, isa);
      return "\n#if " + reduce_vector::VectorCondition() + "\n" + vector + "\n#else\n" + GenerateCode() + "\n#endif\n";
   }

   std::string GenerateCode() override
   {
      using codegen::Product;
      const auto &shape = InInfo(0).shape;
      const std::string T = CType(InInfo(0).type);
      const bool isFloat = codegen::IsFloat(InInfo(0).type);
      // merge neighbouring axes of the same kind: loops over groups, alternately kept and reduced
      std::vector<std::pair<bool, std::vector<SOFIE::Dim>>> groups;
      for (std::size_t i = 0; i < shape.size(); i++) {
         if (groups.empty() || groups.back().first != fReduced[i])
            groups.push_back({fReduced[i], {}});
         groups.back().second.push_back(shape[i]);
      }
      std::string init, update;
      const std::string acc = Out(0) + "[io]", v = In(0) + "[ix]";
      if (fMode == "sum") {
         init = "0";
         update = acc + " += " + v + ";";
      } else if (fMode == "prod") {
         init = "1";
         update = acc + " *= " + v + ";";
      } else if (fMode == "max" || fMode == "min") {
         init = isFloat ? std::string(fMode == "max" ? "-" : "") + "std::numeric_limits<" + T + ">::infinity()"
                        : "std::numeric_limits<" + T + ">::" + (fMode == "max" ? "lowest()" : "max()");
         const std::string cmp = fMode == "max" ? " > " : " < ";
         // floats: NaN wins and stays (a number never compares greater than NaN) and -0.0 ranks below
         // +0.0, as lax.reduce_max/min
         update = isFloat ? reduce_vector::CombineScalar(fMode, acc, v)
                          : "{ const " + T + " v_ = " + v + "; if (v_" + cmp + acc + ") " + acc + " = v_; }";
      } else if (fMode == "and") {
         init = "true";
         update = acc + " = " + acc + " && " + v + ";";
      } else if (fMode == "or") {
         init = "false";
         update = acc + " = " + acc + " || " + v + ";";
      } else { // xor
         init = "false";
         update = acc + " = " + acc + " != " + v + ";";
      }
      codegen::Code out;
      out.OpenScope();
      out.Line("for (size_t io = 0; io < " + Length(OutInfo(0).shape) + "; io++) " + Out(0) + "[io] = " + init + ";");
      // the output stride of each kept group: the product of the kept groups after it
      std::vector<std::string> outStride(groups.size(), "1");
      std::string after = "1";
      for (std::size_t g = groups.size(); g-- > 0;) {
         if (!groups[g].first) {
            outStride[g] = after;
            after = "(" + after + "*" + Product(groups[g].second) + ")";
         }
      }
      out.Line("size_t ix = 0;");
      std::string io = "0";
      for (std::size_t g = 0; g < groups.size(); g++) {
         const std::string idx = "g" + std::to_string(g);
         out.Loop(idx, Product(groups[g].second));
         if (!groups[g].first)
            io += " + " + idx + "*" + outStride[g];
      }
      out.Line("const size_t io = " + io + ";");
      out.Line(update);
      out.Line("ix++;");
      out.Close(groups.size());
      out.Close();
      return out.Str();
   }

private:
   std::string fMode;
   std::vector<std::int64_t> fAxesIn;
   bool fKeepDims;
   std::vector<bool> fReduced;
   enum class Kernel { None, Rows, Columns };
   Kernel fKernel = Kernel::None;
   std::string fOuter, fN;                   // the kept elements before the reduced run, the reduced ones
   std::int64_t fStaticN = 0, fInner = 0;    // Rows: the row length; Columns: the kept elements after the run
};

// ---------------------------------------------------------------------------------------------
/// J2S_ArgMax / J2S_ArgMin: the index of the largest / smallest element along `axis`, as lax.argmax:
/// ties give the first index, a NaN counts as the extreme (the first NaN wins). Output type int32 or
/// int64 (`index_dtype`); keepdims as J2S_Reduce.
class ArgReduceOperator final : public OwnedOperator {
public:
   ArgReduceOperator(bool isMax, std::int64_t axis, SOFIE::ETensorType indexType, bool keepdims, std::string x,
                 std::string y)
      : OwnedOperator(isMax ? "J2S_ArgMax" : "J2S_ArgMin", {std::move(x)}, {std::move(y)}), fIsMax(isMax),
        fAxisIn(axis), fIndexType(indexType), fKeepDims(keepdims)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0);
      fAxis = reduce_detail::CheckAxis(fAxisIn, x.shape.size(), fKindName);
      if (x.type == SOFIE::ETensorType::BOOL)
         throw std::runtime_error("jax2sofie " + fKindName + ": bool input (cast it to int32 first)");
      auto out = x.shape;
      if (fKeepDims)
         out[fAxis] = SOFIE::Dim{std::size_t(1)};
      else
         out.erase(out.begin() + fAxis);
      if (out.empty())
         throw std::runtime_error("jax2sofie " + fKindName + ": a reduction to rank 0 must use keepdims=1");
      return {{fIndexType, out}};
   }

   std::string GenerateCode() override
   {
      const auto s = reduce_detail::SplitAt(InInfo(0).shape, fAxis);
      const std::string T = CType(InInfo(0).type), I = CType(fIndexType);
      const bool isFloat = codegen::IsFloat(InInfo(0).type);
      const std::string cmp = fIsMax ? " > " : " < ";
      std::stringstream out;
      out << "   {\n";
      out << "      const size_t n_ = " << s.n << ", inner_ = " << s.inner << ";\n";
      out << "      for (size_t o = 0; o < " << s.outer << "; o++) {\n";
      out << "         const " << T << " *x_ = " << In(0) << " + o * n_ * inner_;\n";
      out << "         " << I << " *y_ = " << Out(0) << " + o * inner_;\n";
      out << "         for (size_t i = 0; i < inner_; i++) {\n";
      out << "            " << T << " best = x_[i];\n";
      out << "            size_t at = 0;\n";
      if (isFloat)
         out << "            if (best == best)\n"; // a NaN first element is already the answer
      out << "            for (size_t k = 1; k < n_; k++) {\n";
      out << "               const " << T << " v = x_[k * inner_ + i];\n";
      if (isFloat)
         out << "               if (v != v) { at = k; break; }\n";
      out << "               if (v" << cmp << "best) { best = v; at = k; }\n";
      out << "            }\n";
      out << "            y_[i] = static_cast<" << I << ">(at);\n";
      out << "         }\n";
      out << "      }\n";
      out << "   }\n";
      return out.str();
   }

private:
   bool fIsMax;
   std::int64_t fAxisIn;
   SOFIE::ETensorType fIndexType;
   bool fKeepDims;
   std::size_t fAxis = 0;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Cumulative: inclusive scan along `axis` with sum | prod | max | min | logsumexp, forwards or
/// (`reverse`) backwards, as lax.cumsum & co. max/min propagate NaN from where it appears.
class CumulativeOperator final : public OwnedOperator {
public:
   CumulativeOperator(std::string mode, std::int64_t axis, bool reverse, std::string x, std::string y)
      : OwnedOperator("J2S_Cumulative", {std::move(x)}, {std::move(y)}), fMode(std::move(mode)), fAxisIn(axis),
        fReverse(reverse)
   {
      static const std::set<std::string> modes = {"sum", "prod", "max", "min", "logsumexp"};
      if (!modes.count(fMode))
         throw std::runtime_error("jax2sofie J2S_Cumulative: unknown mode '" + fMode + "'");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0);
      fAxis = reduce_detail::CheckAxis(fAxisIn, x.shape.size(), fKindName);
      if (x.type == SOFIE::ETensorType::BOOL)
         throw std::runtime_error("jax2sofie J2S_Cumulative: bool input");
      if (fMode == "logsumexp" && !codegen::IsFloat(x.type))
         throw std::runtime_error("jax2sofie J2S_Cumulative: logsumexp needs a float input");
      return {{x.type, x.shape}};
   }

   std::string GenerateCode() override
   {
      const auto s = reduce_detail::SplitAt(InInfo(0).shape, fAxis);
      const std::string T = CType(InInfo(0).type);
      const bool isFloat = codegen::IsFloat(InInfo(0).type);
      std::string step; // acc from acc and v
      if (fMode == "sum")
         step = "acc += v;";
      else if (fMode == "prod")
         step = "acc *= v;";
      else if (fMode == "max" || fMode == "min")
         step = std::string("if (v") + (fMode == "max" ? " > " : " < ") + "acc" + (isFloat ? " || v != v" : "") +
                ") acc = v;";
      else // log(exp(acc) + exp(v)) without overflow; NaN propagates, an infinite max is the answer
         step = "if (v != v || acc != acc) { if (v != v) acc = v; } else { const " + T +
                " m = std::max(acc, v); acc = std::isinf(m) ? m : m + std::log1p(std::exp(-std::abs(acc - v))); }";
      std::stringstream out;
      out << "   {\n";
      out << "      const size_t n_ = " << s.n << ", inner_ = " << s.inner << ";\n";
      out << "      for (size_t o = 0; o < " << s.outer << "; o++) {\n";
      out << "         const " << T << " *x_ = " << In(0) << " + o * n_ * inner_;\n";
      out << "         " << T << " *y_ = " << Out(0) << " + o * n_ * inner_;\n";
      out << "         for (size_t i = 0; i < inner_; i++) {\n";
      out << "            if (n_ == 0) continue;\n";
      if (fReverse) {
         out << "            " << T << " acc = x_[(n_ - 1) * inner_ + i];\n";
         out << "            y_[(n_ - 1) * inner_ + i] = acc;\n";
         out << "            for (size_t k = n_ - 1; k-- > 0;) {\n";
      } else {
         out << "            " << T << " acc = x_[i];\n";
         out << "            y_[i] = acc;\n";
         out << "            for (size_t k = 1; k < n_; k++) {\n";
      }
      out << "               const " << T << " v = x_[k * inner_ + i];\n";
      out << "               " << step << "\n";
      out << "               y_[k * inner_ + i] = acc;\n";
      out << "            }\n";
      out << "         }\n";
      out << "      }\n";
      out << "   }\n";
      return out.str();
   }

private:
   std::string fMode;
   std::int64_t fAxisIn;
   bool fReverse;
   std::size_t fAxis = 0;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Sort: lax.sort of several operands of one shape along `axis`: the first `num_keys` operands are
/// the keys (compared lexicographically), every operand is permuted the same way. Ascending, NaN last
/// (lax.sort's total order; -0.0 and 0.0 compare equal here), stable: equal keys keep their order,
/// which is what jnp.argsort relies on (its iota operand then gives the first index of ties first).
/// The outputs at `iotaOutputs` are int32 operands that were an iota along `axis` (argsort's
/// indices): they have no input, the sorted position is written (so they need no batch-sized weight).
class SortOperator final : public OwnedOperator {
public:
   SortOperator(std::int64_t axis, std::int64_t numKeys, std::vector<std::int64_t> iotaOutputs,
            std::vector<std::string> xs, std::vector<std::string> ys)
      : OwnedOperator("J2S_Sort", std::move(xs), std::move(ys)), fAxisIn(axis), fNumKeys(numKeys)
   {
      fIsIota.assign(fOutputs.size(), false);
      for (auto j : iotaOutputs) {
         if (j < 0 || static_cast<std::size_t>(j) >= fOutputs.size() || fIsIota[j])
            throw std::runtime_error("jax2sofie J2S_Sort: bad iota output position");
         fIsIota[j] = true;
      }
      if (fInputs.size() + iotaOutputs.size() != fOutputs.size() || fInputs.empty())
         throw std::runtime_error("jax2sofie J2S_Sort: one output per operand (iota outputs included)");
      if (fNumKeys < 1 || static_cast<std::size_t>(fNumKeys) > fInputs.size())
         throw std::runtime_error("jax2sofie J2S_Sort: num_keys must be between 1 and the number of inputs");
      for (std::int64_t j = 0; j < fNumKeys; j++)
         if (fIsIota[j])
            throw std::runtime_error("jax2sofie J2S_Sort: a key cannot be an iota output");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      fAxis = reduce_detail::CheckAxis(fAxisIn, in.at(0).shape.size(), fKindName);
      std::vector<TensorInfo> out;
      std::size_t next = 0;
      for (std::size_t j = 0; j < fIsIota.size(); j++) {
         if (fIsIota[j]) {
            out.push_back({SOFIE::ETensorType::INT32, in[0].shape});
            continue;
         }
         const auto &x = in.at(next++);
         if (x.shape.size() != in[0].shape.size())
            throw std::runtime_error("jax2sofie J2S_Sort: operands of different ranks");
         out.push_back(x);
      }
      return out;
   }

   std::string GenerateCode() override
   {
      const auto s = reduce_detail::SplitAt(InInfo(0).shape, fAxis);
      std::stringstream out;
      out << "   {\n";
      out << "      const size_t n_ = " << s.n << ", inner_ = " << s.inner << ";\n";
      out << "      std::vector<size_t> perm_(n_);\n";
      out << "      for (size_t o = 0; o < " << s.outer << "; o++) {\n";
      out << "         const size_t base_ = o * n_ * inner_;\n";
      out << "         for (size_t i = 0; i < inner_; i++) {\n";
      out << "            for (size_t k = 0; k < n_; k++) perm_[k] = k;\n";
      out << "            std::stable_sort(perm_.begin(), perm_.end(), [&](size_t a, size_t b) {\n";
      for (std::int64_t key = 0; key < fNumKeys; key++) {
         const std::string T = CType(InInfo(key).type);
         const std::string x = In(key);
         out << "               {\n";
         out << "                  const " << T << " va = " << x << "[base_ + a * inner_ + i], vb = " << x
             << "[base_ + b * inner_ + i];\n";
         if (codegen::IsFloat(InInfo(key).type)) {
            out << "                  const bool na = va != va, nb = vb != vb;\n";
            out << "                  if (na || nb) { if (na != nb) return nb; }\n";
            out << "                  else if (va != vb) return va < vb;\n";
         } else {
            out << "                  if (va != vb) return va < vb;\n";
         }
         out << "               }\n";
      }
      out << "               return false;\n";
      out << "            });\n";
      std::size_t next = 0;
      for (std::size_t j = 0; j < fIsIota.size(); j++) {
         out << "            for (size_t k = 0; k < n_; k++) " << Out(j) << "[base_ + k * inner_ + i] = ";
         if (fIsIota[j])
            out << "static_cast<int32_t>(perm_[k]);\n";
         else
            out << In(next++) << "[base_ + perm_[k] * inner_ + i];\n";
      }
      out << "         }\n";
      out << "      }\n";
      out << "   }\n";
      return out.str();
   }

   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint", "vector"}; }

private:
   std::int64_t fAxisIn, fNumKeys;
   std::vector<bool> fIsIota;
   std::size_t fAxis = 0;
};

} // namespace jax2sofie
