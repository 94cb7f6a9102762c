// J2S_BatchReshape: a reshape whose target shape depends on the batch size in a way SOFIE's Reshape
// cannot take. SOFIE's Reshape reads its target from a tensor of numbers and infers one -1 entry by
// dividing lengths written as text, which fails as soon as the batch is merged with other axes:
// (bs, 5, 16) -> (bs*5, 16), the rows of a per-token dense layer, and back (bs*5, 16) -> (bs, 5, 16).
// Here every output dim is given as scale * bs + offset, like J2S_BroadcastTo's, so the output's
// shape is known without any inference. The output is an alias of the input where SOFIE allows it
// (OwnedOperator::ViewsInput), else a copy.
#pragma once

#include "batch_broadcast.hpp"
#include "owned_operator.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace jax2sofie {

class BatchReshapeOperator final : public OwnedOperator {
public:
   /// Output dim a is scale[a] * param + offset[a] (a plain number where scale[a] is 0).
   BatchReshapeOperator(std::string input, std::string output, const std::vector<std::int64_t> &scale,
                        const std::vector<std::int64_t> &offset, const std::string &param)
      : OwnedOperator("J2S_BatchReshape", {std::move(input)}, {std::move(output)})
   {
      if (scale.size() != offset.size())
         throw std::runtime_error("J2S_BatchReshape: scale and offset need one entry per output axis");
      for (std::size_t a = 0; a < scale.size(); a++)
         fShape.push_back(BatchDim(scale[a], offset[a], param));
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      return {{in.at(0).type, fShape}};
   }

   bool ViewsInput() const override { return true; }

   std::string GenerateCode() override
   {
      // the lengths are expressions of the batch ("bs * 80", "(bs*5) * 16"): equal for every batch
      // size by construction (dynamic.py solves each dim from two traced sizes), so not checked here
      if (Aliased())
         return "   auto * " + Out(0) + " = " + In(0) + ";\n";
      return "   std::copy(" + In(0) + ", " + In(0) + " + " + Length(InInfo(0).shape) + ", " + Out(0) + ");\n";
   }

private:
   std::vector<SOFIE::Dim> fShape;
};

} // namespace jax2sofie
