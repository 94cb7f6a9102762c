// Project-owned slicing operators: J2S_Slice (static, strided, and with start indices read at run
// time) and J2S_DynamicUpdateSlice.
//
// SOFIE's own Slice computes the output size of a strided slice as (end - start) / step, rounded
// down (a 0:5:2 slice gets 2 elements, not 3), and its run-time start/end code does not compile in
// some cases (docs/sofie_workarounds.md), so slices are done here. Start indices read at run time are
// clamped into [0, dim - size] exactly as lax.dynamic_slice / dynamic_update_slice do.
//
// A batch-sized (symbolic) axis can only be taken whole; everything else is plain numbers, so the
// generated loops hoist the index arithmetic and copy the trailing whole axes as one contiguous run.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie {

namespace slicing_detail {

using codegen::Product;

/// Start of axis `axis` as code: a number, or the clamped run-time index variable.
inline std::string StartName(std::size_t axis) { return "start" + std::to_string(axis); }

} // namespace slicing_detail

/// out = data[starts : starts + sizes * steps : steps] per axis.
/// Inputs: [data, index_0, ...]; index_j (a scalar int32/int64 tensor) is the start along
/// dynamic_axes[j], clamped into [0, dim - size]. Per axis: starts[a] (static start), steps[a] (>= 1),
/// sizes[a] (-1: the whole axis, start 0, step 1 — the only choice for a batch-sized axis).
class SliceOperator final : public OwnedOperator {
public:
   SliceOperator(std::string kind, std::vector<std::string> inputs, std::string output, std::vector<std::int64_t> starts,
                 std::vector<std::int64_t> steps, std::vector<std::int64_t> sizes,
                 std::vector<std::int64_t> dynamicAxes)
      : OwnedOperator(std::move(kind), std::move(inputs), {std::move(output)}), fStarts(std::move(starts)),
        fSteps(std::move(steps)), fSizes(std::move(sizes)), fDynamicAxes(std::move(dynamicAxes))
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &shape = in.at(0).shape;
      const std::size_t rank = shape.size();
      if (fStarts.size() != rank || fSteps.size() != rank || fSizes.size() != rank)
         throw std::runtime_error(fKindName + ": starts/steps/sizes need one entry per axis of the rank-" +
                                  std::to_string(rank) + " input");
      if (fDynamicAxes.size() + 1 != in.size())
         throw std::runtime_error(fKindName + ": one index input per dynamic axis is needed");
      std::vector<SOFIE::Dim> out(rank);
      for (std::size_t a = 0; a < rank; a++) {
         if (fSizes[a] < 0) {
            out[a] = shape[a];
            continue;
         }
         if (shape[a].isParam)
            throw std::runtime_error(fKindName + ": axis " + std::to_string(a) + " has the symbolic size " +
                                     shape[a].param + " and can only be taken whole");
         const auto dim = static_cast<std::int64_t>(shape[a].dim);
         if (fSteps[a] < 1 || fStarts[a] < 0 || fSizes[a] > dim ||
             (fSizes[a] > 0 && fStarts[a] + (fSizes[a] - 1) * fSteps[a] >= dim))
            throw std::runtime_error(fKindName + ": slice of axis " + std::to_string(a) + " out of range");
         out[a] = SOFIE::Dim{static_cast<std::size_t>(fSizes[a])};
      }
      return {{in.at(0).type, out}};
   }

   std::string GenerateCode() override
   {
      using namespace slicing_detail;
      const auto &inShape = InInfo(0).shape;
      const auto &outShape = OutInfo(0).shape;
      const std::size_t rank = inShape.size();
      codegen::Code code;
      code.OpenScope();
      std::vector<bool> dynamic(rank, false);
      for (std::size_t j = 0; j < fDynamicAxes.size(); j++) {
         const auto a = static_cast<std::size_t>(fDynamicAxes[j]);
         dynamic.at(a) = true;
         const std::int64_t hi = static_cast<std::int64_t>(inShape[a].dim) - fSizes[a];
         code.Line("const std::int64_t " + StartName(a) + " = std::clamp<std::int64_t>(static_cast<std::int64_t>(" +
                   In(j + 1) + "[0]), 0, " + std::to_string(hi) + ");");
      }
      // `last`: the last axis that is not taken whole; the axes after it form one contiguous block
      std::size_t last = rank;
      for (std::size_t a = 0; a < rank; a++)
         if (!IsWhole(a, inShape))
            last = a;
      if (last == rank) { // nothing is cut: a plain copy
         code.Line("std::copy(" + In(0) + ", " + In(0) + " + " + Length(inShape) + ", " + Out(0) + ");");
         code.Close();
         return code.Str();
      }
      const std::string block = Product(inShape, last + 1, rank);
      code.Line(CType(InInfo(0).type) + " *out = " + Out(0) + ";");
      std::string offset = "0";
      for (std::size_t a = 0; a < last; a++) {
         const std::string i = "i" + std::to_string(a);
         code.Loop(i, outShape[a].GetVal(), "std::size_t");
         code.Line("const std::size_t off" + std::to_string(a) + " = (" + offset + " + " + Position(a, i, dynamic) +
                   ") * " + Product(inShape, a + 1, a + 2) + ";");
         offset = "off" + std::to_string(a);
      }
      const std::string start = dynamic[last] ? StartName(last) : std::to_string(fStarts[last]);
      const std::string type = CType(InInfo(0).type);
      if (fSteps[last] == 1) {
         code.Line("const " + type + " *src = " + In(0) + " + (" + offset + " + " + start + ") * " + block + ";");
         code.Line("out = std::copy(src, src + " + std::to_string(fSizes[last]) + " * " + block + ", out);");
      } else {
         code.Loop("k", std::to_string(fSizes[last]), "std::size_t");
         code.Line("const " + type + " *src = " + In(0) + " + (" + offset + " + " + start + " + k * " +
                   std::to_string(fSteps[last]) + ") * " + block + ";");
         code.Line("out = std::copy(src, src + " + block + ", out);");
         code.Close();
      }
      code.Close(last);
      code.Close();
      return code.Str();
   }

private:
   bool IsWhole(std::size_t a, const std::vector<SOFIE::Dim> &shape) const
   {
      if (fSizes[a] < 0)
         return true;
      bool dynamicAxis = false;
      for (auto d : fDynamicAxes)
         dynamicAxis |= static_cast<std::size_t>(d) == a;
      return !dynamicAxis && !shape[a].isParam && fStarts[a] == 0 && fSteps[a] == 1 &&
             static_cast<std::size_t>(fSizes[a]) == shape[a].dim;
   }

   /// Index along axis a of the input for output index `i`.
   std::string Position(std::size_t a, const std::string &i, const std::vector<bool> &dynamic) const
   {
      if (fSizes[a] < 0)
         return i;
      const std::string start = dynamic[a] ? slicing_detail::StartName(a) : std::to_string(fStarts[a]);
      return start + " + " + i + (fSteps[a] == 1 ? "" : " * " + std::to_string(fSteps[a]));
   }

   std::vector<std::int64_t> fStarts, fSteps, fSizes, fDynamicAxes;
};

/// out = operand with `update` written at the start indices (lax.dynamic_update_slice).
/// Inputs: [operand, update, index_0, ...]; index_j is the start along dynamic_axes[j]; the other
/// axes start at starts[a]. Every start is clamped into [0, dim - update dim], as JAX does.
class DynamicUpdateSliceOperator final : public OwnedOperator {
public:
   DynamicUpdateSliceOperator(std::vector<std::string> inputs, std::string output, std::vector<std::int64_t> starts,
                              std::vector<std::int64_t> dynamicAxes)
      : OwnedOperator("J2S_DynamicUpdateSlice", std::move(inputs), {std::move(output)}), fStarts(std::move(starts)),
        fDynamicAxes(std::move(dynamicAxes))
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &shape = in.at(0).shape;
      const auto &update = in.at(1).shape;
      if (update.size() != shape.size() || fStarts.size() != shape.size())
         throw std::runtime_error(fKindName + ": operand, update and starts need the same rank");
      if (fDynamicAxes.size() + 2 != in.size())
         throw std::runtime_error(fKindName + ": one index input per dynamic axis is needed");
      if (in.at(1).type != in.at(0).type)
         throw std::runtime_error(fKindName + ": operand and update have different element types");
      for (std::size_t a = 0; a < shape.size(); a++) {
         if (shape[a].isParam || update[a].isParam) {
            if (!(shape[a] == update[a]))
               throw std::runtime_error(fKindName + ": along the symbolic axis " + std::to_string(a) +
                                        " the update must cover the whole operand");
         } else if (update[a].dim > shape[a].dim) {
            throw std::runtime_error(fKindName + ": the update is larger than the operand along axis " +
                                     std::to_string(a));
         }
      }
      return {{in.at(0).type, shape}};
   }

   std::string GenerateCode() override
   {
      using namespace slicing_detail;
      const auto &shape = InInfo(0).shape;
      const auto &update = InInfo(1).shape;
      const std::size_t rank = shape.size();
      std::vector<std::string> start(rank);
      codegen::Code code;
      code.OpenScope();
      code.Line("std::copy(" + In(0) + ", " + In(0) + " + " + Length(shape) + ", " + Out(0) + ");");
      for (std::size_t a = 0; a < rank; a++) {
         const std::int64_t hi = shape[a].isParam ? 0 : static_cast<std::int64_t>(shape[a].dim - update[a].dim);
         start[a] = std::to_string(std::clamp<std::int64_t>(fStarts[a], 0, hi));
      }
      for (std::size_t j = 0; j < fDynamicAxes.size(); j++) {
         const auto a = static_cast<std::size_t>(fDynamicAxes[j]);
         const std::int64_t hi = shape[a].isParam ? 0 : static_cast<std::int64_t>(shape[a].dim - update[a].dim);
         start[a] = StartName(a);
         code.Line("const std::int64_t " + start[a] + " = std::clamp<std::int64_t>(static_cast<std::int64_t>(" +
                   In(j + 2) + "[0]), 0, " + std::to_string(hi) + ");");
      }
      // the trailing axes the update covers whole form one contiguous run in both tensors
      std::size_t last = rank; // the last axis the update does not cover whole
      for (std::size_t a = 0; a < rank; a++)
         if (!(shape[a] == update[a]))
            last = a;
      if (last == rank) {
         code.Line("std::copy(" + In(1) + ", " + In(1) + " + " + Length(update) + ", " + Out(0) + ");");
         code.Close();
         return code.Str();
      }
      const std::string block = Product(shape, last + 1, rank);
      code.Line("const " + CType(InInfo(1).type) + " *src = " + In(1) + ";");
      std::string offset = "0";
      for (std::size_t a = 0; a < last; a++) {
         const std::string i = "i" + std::to_string(a);
         code.Loop(i, update[a].GetVal(), "std::size_t");
         code.Line("const std::size_t off" + std::to_string(a) + " = (" + offset + " + " + start[a] + " + " + i +
                   ") * " + Product(shape, a + 1, a + 2) + ";");
         offset = "off" + std::to_string(a);
      }
      code.Line("const std::size_t n = " + std::to_string(update[last].dim) + " * " + block + ";");
      code.Line("std::copy(src, src + n, " + Out(0) + " + (" + offset + " + " + start[last] + ") * " + block + ");");
      code.Line("src += n;");
      code.Close(last);
      code.Close();
      return code.Str();
   }

private:
   std::vector<std::int64_t> fStarts, fDynamicAxes;
};

} // namespace jax2sofie
