// J2S_Split: lax.split into pieces of given sizes along one axis, several outputs (project-owned).
#pragma once

#include "indexing_common.hpp"

namespace jax2sofie {

/// J2S_Split: lax.split, the input cut along `axis` into consecutive pieces of `sizes`, one output
/// per piece (each a contiguous block per outer index, copied with std::copy).
class SplitOperator final : public OwnedOperator {
public:
   SplitOperator(std::int64_t axis, std::vector<std::int64_t> sizes, std::string x, std::vector<std::string> outputs)
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
