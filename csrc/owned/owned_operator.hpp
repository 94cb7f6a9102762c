// Base of jax2sofie's own SOFIE operators (where SOFIE has none, or its own is wrong or slow).
//
// A subclass says what its outputs are (InferOutputs, from the input shapes and types read in
// Initialize) and what code computes them (Generate). Tensor names, the shape/type bookkeeping with
// the RModel and the std headers are done here once. Generated code addresses tensors as
// `tensor_<name>` like SOFIE's own operators; shapes may hold Dims ("bs") for a dynamic batch, and
// Length() gives the C++ expression of an element count.
#pragma once

#include "codegen.hpp"

#include "SOFIE/RModel.hxx"
#include "SOFIE/ROperator.hxx"
#include "SOFIE/SOFIE_common.hxx"

#include <optional>
#include <regex>
#include <set>
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
      fDefinition.reset();
      fModelName = model.GetName();
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
      // a view shares its input's memory where SOFIE allows it (as its own Reshape does: not for a
      // graph input or output, nor for bool tensors); else the operator copies
      fAliased = ViewsInput() && model.AddAliasTensor(fOutputs[0], fInputs[0]);
      fInitialized = true;
   }

   std::string Generate(std::string opName) final
   {
      if (!fInitialized)
         throw std::runtime_error("jax2sofie " + fKindName + " called to Generate without being initialized");
      if (!UsesKernel())
         return "\n   //------ jax2sofie " + fKindName + " (" + opName + ")\n" + GenerateCode();
      return "\n   //------ jax2sofie " + fKindName + " (" + opName + ")\n" +
             codegen::KernelCall(MakeKernel(), Definition().first);
   }

   /// The kernel functions of an operator that UsesKernel (one per instruction-set level).
   std::string GenerateSessionMembersCode(std::string) override
   {
      return UsesKernel() ? codegen::KernelFunctions(Definition(), fModelName) : "";
   }

   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint"}; }

protected:
   /// Output types and shapes from the inputs' (called once, in Initialize).
   virtual std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) = 0;
   /// The C++ statements of the operator (inside Session::infer), for an operator without a kernel.
   virtual std::string GenerateCode() { return ""; }

   /// Whether output 0 holds input 0's elements in the same order (a reshape): it may then be an alias
   /// of the input (Aliased()), whose code only names the input's memory.
   virtual bool ViewsInput() const { return false; }
   bool Aliased() const { return fAliased; }

   /// Whether the operator's code is a kernel compiled once per instruction-set level and chosen at
   /// run time (codegen::KernelFunctions): for code that is faster with wider vectors than the build's
   /// flags give. Its statements come from KernelCode; they see the tensors under the names that
   /// In()/Out() give and the shape parameters ("bs") under theirs.
   virtual bool UsesKernel() const { return false; }
   virtual std::string KernelCode(const codegen::Isa &) { return ""; }
   /// More (parameter declaration, argument) pairs of the kernel, e.g. a scratch buffer of the Session.
   virtual std::vector<std::pair<std::string, std::string>> KernelExtraParameters() const { return {}; }

   /// `tensor_<name>` of input / output i, as the generated code names it.
   /// Inside a kernel (KernelCode) they are its parameters, named by position, so that operators with
   /// the same shapes and attributes have the same kernel text, which the header then holds once.
   std::string In(std::size_t i) const
   {
      return fInKernel ? "j2s_in" + std::to_string(i) : "tensor_" + fInputs.at(i);
   }
   std::string Out(std::size_t i) const
   {
      return fInKernel ? "j2s_out" + std::to_string(i) : "tensor_" + fOutputs.at(i);
   }
   const TensorInfo &InInfo(std::size_t i) const { return fIn.at(i); }
   const TensorInfo &OutInfo(std::size_t i) const { return fOut.at(i); }
   /// The element count of a shape as a C++ expression ("bs*16" for a dynamic batch).
   static std::string Length(const std::vector<SOFIE::Dim> &shape) { return SOFIE::ConvertDimShapeToLength(shape); }
   /// The C++ element type name of a SOFIE tensor type ("float", "int64_t", ...).
   static std::string CType(SOFIE::ETensorType type) { return SOFIE::ConvertTypeToString(type); }

   /// The kernel's name and parameters: the outputs, the inputs (in order, as In()/Out() name them in
   /// the kernel), the shape parameters the tensors' shapes name and the extra ones; the arguments
   /// are the tensors of doInfer.
   codegen::Kernel MakeKernel() const
   {
      codegen::Kernel k;
      for (std::size_t i = 0; i < fOutputs.size(); i++) {
         k.parameters.push_back(CType(fOut[i].type) + " *j2s_out" + std::to_string(i));
         k.arguments.push_back("tensor_" + fOutputs[i]);
      }
      for (std::size_t i = 0; i < fInputs.size(); i++) {
         k.parameters.push_back("const " + CType(fIn[i].type) + " *j2s_in" + std::to_string(i));
         k.arguments.push_back("tensor_" + fInputs[i]);
      }
      std::set<std::string> seen;
      static const std::regex identifier("[A-Za-z_][A-Za-z0-9_]*");
      for (const auto *infos : {&fIn, &fOut})
         for (const auto &info : *infos)
            for (const auto &dim : info.shape) {
               if (!dim.isParam)
                  continue;
               for (std::sregex_iterator m(dim.param.begin(), dim.param.end(), identifier), end; m != end; ++m)
                  if (seen.insert(m->str()).second) {
                     k.parameters.push_back("std::size_t " + m->str());
                     k.arguments.push_back(m->str());
                  }
            }
      for (auto &[param, arg] : KernelExtraParameters()) {
         k.parameters.push_back(param);
         k.arguments.push_back(arg);
      }
      return k;
   }

   /// The kernel's name and functions (codegen::KernelDefinition), written once per Initialize: the
   /// Session's members hold the functions and doInfer calls them by that name.
   const std::pair<std::string, std::string> &Definition()
   {
      if (!fDefinition) {
         KernelScope scope(*this);
         fDefinition = codegen::KernelDefinition(MakeKernel(), [this](const codegen::Isa &isa) { return KernelCode(isa); });
      }
      return *fDefinition;
   }

   /// In()/Out() name the kernel's parameters while one lives.
   struct KernelScope {
      explicit KernelScope(const OwnedOperator &op) : fOp(op) { fOp.fInKernel = true; }
      ~KernelScope() { fOp.fInKernel = false; }
      const OwnedOperator &fOp;
   };

   std::string fKindName, fModelName;
   std::vector<std::string> fInputs, fOutputs;
   std::vector<TensorInfo> fIn, fOut;
   bool fInitialized = false, fAliased = false;
   mutable bool fInKernel = false;
   std::optional<std::pair<std::string, std::string>> fDefinition;
};

} // namespace jax2sofie
