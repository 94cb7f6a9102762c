// J2S_Reverse: lax.rev over any set of axes (project-owned).
#pragma once

#include "indexing_common.hpp"

namespace jax2sofie {

/// J2S_Reverse: lax.rev, the order of the elements reversed along `axes`.
class ReverseOperator final : public OwnedOperator {
public:
   ReverseOperator(std::vector<std::int64_t> axes, std::string x, std::string y)
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

} // namespace jax2sofie
