// J2S_BroadcastTo: numpy broadcasting of a tensor to a shape whose entries may depend on the batch
// size ("bs", "bs*2+1"). SOFIE's Expand takes its target shape from a constant tensor of numbers,
// so it cannot make a batch-sized tensor out of a smaller one; the initial zero state of an RNN
// (zeros of shape (batch, hidden)) or a weight broadcast over the batch needs exactly that.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie {

/// The Dim of a size `scale * param + offset` (a plain number where scale is 0; "bs", "(bs*5)", "(bs+1)").
inline SOFIE::Dim BatchDim(std::int64_t scale, std::int64_t offset, const std::string &param)
{
   if (scale == 0)
      return SOFIE::Dim{static_cast<std::size_t>(offset)};
   if (scale == 1 && offset == 0)
      return SOFIE::Dim{param};
   std::string expr = "(" + param + (scale == 1 ? "" : "*" + std::to_string(scale));
   if (offset)
      expr += (offset > 0 ? "+" : "-") + std::to_string(offset > 0 ? offset : -offset);
   return SOFIE::Dim{expr + ")", static_cast<std::size_t>(-1)};
}

class BroadcastToOperator final : public OwnedOperator {
public:
   /// Output dim a is scale[a] * param + offset[a] (a plain number where scale[a] is 0).
   BroadcastToOperator(std::string input, std::string output, const std::vector<std::int64_t> &scale,
                       const std::vector<std::int64_t> &offset, const std::string &param)
      : OwnedOperator("J2S_BroadcastTo", {std::move(input)}, {std::move(output)})
   {
      if (scale.size() != offset.size())
         throw std::runtime_error("J2S_BroadcastTo: scale and offset need one entry per output axis");
      for (std::size_t a = 0; a < scale.size(); a++)
         fShape.push_back(BatchDim(scale[a], offset[a], param));
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &shape = in.at(0).shape;
      if (shape.size() != fShape.size())
         throw std::runtime_error(fKindName + ": the input must have the rank of the target shape");
      for (std::size_t a = 0; a < shape.size(); a++)
         if (!(shape[a] == fShape[a]) && !(!shape[a].isParam && shape[a].dim == 1))
            throw std::runtime_error(fKindName + ": input axis " + std::to_string(a) + " (" + shape[a].GetVal() +
                                     ") cannot be broadcast to " + fShape[a].GetVal());
      return {{in.at(0).type, fShape}};
   }

   std::string GenerateCode() override
   {
      const auto &in = InInfo(0).shape;
      const std::size_t rank = in.size();
      auto broadcast = [&](std::size_t a) { return !(in[a] == fShape[a]); };
      std::size_t last = rank; // the last broadcast axis; the axes after it are copied as one block
      for (std::size_t a = 0; a < rank; a++)
         if (broadcast(a))
            last = a;
      codegen::Code code;
      code.OpenScope();
      if (last == rank) {
         code.Line("std::copy(" + In(0) + ", " + In(0) + " + " + Length(in) + ", " + Out(0) + ");");
         code.Close();
         return code.Str();
      }
      std::vector<SOFIE::Dim> tail(in.begin() + last + 1, in.end());
      const std::string block = tail.empty() ? "1" : Length(tail);
      const std::string type = CType(InInfo(0).type);
      code.Line(type + " *out = " + Out(0) + ";");
      std::string offset = "0";
      for (std::size_t a = 0; a < last; a++) {
         const std::string i = "i" + std::to_string(a);
         code.Loop(i, fShape[a].GetVal(), "std::size_t");
         code.Line("const std::size_t off" + std::to_string(a) + " = (" + offset + " + " + (broadcast(a) ? "0" : i) +
                   ") * (" + in[a + 1].GetVal() + ");");
         offset = "off" + std::to_string(a);
      }
      code.Line("const " + type + " *src = " + In(0) + " + (" + offset + ") * (" + block + ");");
      code.Line("for (std::size_t k = 0; k < (std::size_t)(" + fShape[last].GetVal() + "); k++)");
      if (block == "1")
         code.Line("   *out++ = *src;");
      else
         code.Line("   out = std::copy(src, src + " + block + ", out);");
      code.Close(last);
      code.Close();
      return code.Str();
   }

private:
   std::vector<SOFIE::Dim> fShape;
};

} // namespace jax2sofie
