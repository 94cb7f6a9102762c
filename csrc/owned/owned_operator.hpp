// Base of jax2sofie's own SOFIE operators (where SOFIE has none, or its own is wrong or slow).
//
// A subclass says what its outputs are (InferOutputs, from the input shapes and types read in
// Initialize) and what code computes them (Generate). Tensor names, the shape/type bookkeeping with
// the RModel and the std headers are done here once. Generated code addresses tensors as
// `tensor_<name>` like SOFIE's own operators; shapes may hold Dims ("bs") for a dynamic batch, and
// Length() gives the C++ expression of an element count.
#pragma once

#include "SOFIE/RModel.hxx"
#include "SOFIE/ROperator.hxx"
#include "SOFIE/SOFIE_common.hxx"

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace jax2sofie {

struct TensorInfo {
   SOFIE::ETensorType type;
   std::vector<SOFIE::Dim> shape;
};

class OwnedOperator : public SOFIE::ROperator {
public:
   OwnedOperator(std::string kind, std::vector<std::string> inputs, std::vector<std::string> outputs)
      : fKindName(std::move(kind))
   {
      for (auto &name : inputs)
         fInputs.push_back(SOFIE::UTILITY::Clean_name(name));
      for (auto &name : outputs)
         fOutputs.push_back(SOFIE::UTILITY::Clean_name(name));
      // the views point into fInputs/fOutputs, which are not resized after this
      for (auto &name : fInputs)
         fInputTensorNames.emplace_back(name);
      for (auto &name : fOutputs)
         fOutputTensorNames.emplace_back(name);
   }

   void Initialize(SOFIE::RModel &model) final
   {
      fIn.clear();
      for (auto &name : fInputs) {
         if (!model.CheckIfTensorAlreadyExist(name))
            throw std::runtime_error("jax2sofie " + fKindName + ": input tensor '" + name + "' is not in the model");
         fIn.push_back({model.GetTensorType(name), model.GetDimTensorShape(name)});
      }
      fOut = InferOutputs(fIn);
      if (fOut.size() != fOutputs.size())
         throw std::runtime_error("jax2sofie " + fKindName + ": " + std::to_string(fOut.size()) + " output shapes for " +
                                  std::to_string(fOutputs.size()) + " outputs");
      for (std::size_t i = 0; i < fOutputs.size(); i++)
         model.AddIntermediateTensor(fOutputs[i], fOut[i].type, fOut[i].shape);
      fInitialized = true;
   }

   std::string Generate(std::string opName) final
   {
      if (!fInitialized)
         throw std::runtime_error("jax2sofie " + fKindName + " called to Generate without being initialized");
      return "\n   //------ jax2sofie " + fKindName + " (" + opName + ")\n" + GenerateCode();
   }

   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint"}; }

protected:
   /// Output types and shapes from the inputs' (called once, in Initialize).
   virtual std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) = 0;
   /// The C++ statements of the operator (inside Session::infer).
   virtual std::string GenerateCode() = 0;

   /// `tensor_<name>` of input / output i, as the generated code names it.
   std::string In(std::size_t i) const { return "tensor_" + fInputs.at(i); }
   std::string Out(std::size_t i) const { return "tensor_" + fOutputs.at(i); }
   const TensorInfo &InInfo(std::size_t i) const { return fIn.at(i); }
   const TensorInfo &OutInfo(std::size_t i) const { return fOut.at(i); }
   /// The element count of a shape as a C++ expression ("bs*16" for a dynamic batch).
   static std::string Length(const std::vector<SOFIE::Dim> &shape) { return SOFIE::ConvertDimShapeToLength(shape); }
   /// The C++ element type name of a SOFIE tensor type ("float", "int64_t", ...).
   static std::string CType(SOFIE::ETensorType type) { return SOFIE::ConvertTypeToString(type); }

   std::string fKindName;
   std::vector<std::string> fInputs, fOutputs;
   std::vector<TensorInfo> fIn, fOut;
   bool fInitialized = false;
};

} // namespace jax2sofie
