// J2S_Pad: lax.pad with low/high (negative crops) and interior padding (project-owned).
#pragma once

#include "indexing_common.hpp"

namespace jax2sofie {

/// J2S_Pad: lax.pad. Inputs [X, padding value (one element)]; per dim low, high (negative: crop)
/// and interior padding. Output dim = low + high + n + (n - 1) * interior. A symbolic dim takes
/// no interior padding.
class PadOperator final : public OwnedOperator {
public:
   PadOperator(std::vector<std::int64_t> low, std::vector<std::int64_t> high, std::vector<std::int64_t> interior,
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

} // namespace jax2sofie
