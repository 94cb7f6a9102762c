// J2S_Tile: lax.tile, numpy tile with one repeat count per axis (project-owned).
#pragma once

#include "indexing_common.hpp"

namespace jax2sofie {

/// J2S_Tile: lax.tile, the input repeated reps[d] times along each dim d (y[i] = x[i mod n]).
class TileOperator final : public OwnedOperator {
public:
   TileOperator(std::vector<std::int64_t> reps, std::string x, std::string y)
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

} // namespace jax2sofie
