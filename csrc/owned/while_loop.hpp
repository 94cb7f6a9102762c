// J2S_While: a loop whose trip count depends on the inputs (lax.while_loop).
//
// SOFIE has no Loop operator. The condition and the body are sub-models: models of their own,
// generated separately (namespaces SOFIE_<cond_model> and SOFIE_<body_model>), whose code the
// header holds before this model's (jax2sofie/sub_models.py puts it there). This operator owns a
// Session of each, as members of the model's Session, and writes a C++ `while` loop that calls the
// condition's doInfer on the carries, then the body's, until the condition is false.
//
// The carries live in the operator's outputs: they start as copies of the initial values (the
// last inputs) and are updated after each step from the body's outputs, which are written to
// scratch buffers of the Session (the body reads the carries while it writes its results). A carry
// the body returns unchanged has no body output and is not copied.
//
// A loop runs at most `maxTrips` steps: one more throws std::runtime_error, naming the user's line,
// rather than returning a result of a loop that did not finish.
#pragma once

#include "owned_operator.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace jax2sofie {

class WhileOperator final : public OwnedOperator {
public:
   struct SubModel {
      std::string name;                  // the model's name: its code is in namespace SOFIE_<name>
      std::vector<std::int64_t> inputs; // per input of the sub-model: the index of this operator's input
   };

   struct Spec {
      SubModel cond, body;
      std::vector<std::int64_t> bodyOutputs; // per carry: the body output that is its next value, -1: unchanged
      std::int64_t maxTrips = 0;
      std::string where; // the user's line of the loop, for the run-time error
   };

   WhileOperator(Spec spec, std::vector<std::string> inputs, std::vector<std::string> outputs)
      : OwnedOperator("J2S_While", std::move(inputs), std::move(outputs)), fS(std::move(spec))
   {
      if (fS.bodyOutputs.size() != fOutputs.size())
         throw std::runtime_error("jax2sofie J2S_While: body_outputs needs one entry per carry");
      if (fOutputs.size() > fInputs.size())
         throw std::runtime_error("jax2sofie J2S_While: every carry needs an initial value (the last inputs)");
      if (fS.maxTrips < 0)
         throw std::runtime_error("jax2sofie J2S_While: max_trips must not be negative");
      for (const auto *model : {&fS.cond, &fS.body})
         for (auto i : model->inputs)
            if (i < 0 || static_cast<std::size_t>(i) >= fInputs.size())
               throw std::runtime_error("jax2sofie J2S_While: sub-model input index " + std::to_string(i) +
                                        " out of range");
   }

   std::vector<std::string> GetStdLibs() override { return {"algorithm", "cstdint", "stdexcept", "string", "vector"}; }

   /// The sub-models' Sessions and the body's output buffers; sized in the constructor
   /// (GenerateInitCode), where the batch size of a dynamic batch is known.
   std::string GenerateSessionMembersCode(std::string) override
   {
      std::string members = "   SOFIE_" + fS.cond.name + "::Session " + SessionName("cond") + ";\n" +
                            "   SOFIE_" + fS.body.name + "::Session " + SessionName("body") + ";\n";
      for (std::size_t c = 0; c < fOutputs.size(); c++)
         if (fS.bodyOutputs[c] >= 0) // doInfer reads the session as const: scratch buffers are mutable
            members += "   mutable std::vector<" + BufferType(c) + "> " + NextName(c) + ";\n";
      return members;
   }

   std::string GenerateInitCode() override
   {
      std::string code;
      for (const auto &[model, which] : {std::pair{&fS.cond, "cond"}, std::pair{&fS.body, "body"}}) {
         const auto params = Params(*model);
         if (params.empty())
            continue;
         // a sub-model of a dynamic batch: sized for as many rows as this Session
         code += "   " + SessionName(which) + " = SOFIE_" + model->name + "::Session(\"\"";
         for (const auto &p : params)
            code += ", " + p;
         code += ");\n";
      }
      for (std::size_t c = 0; c < fOutputs.size(); c++)
         if (fS.bodyOutputs[c] >= 0)
            code += "   " + NextName(c) + " = std::vector<" + BufferType(c) + ">(" + Length(OutInfo(c).shape) + ");\n";
      return code;
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      // the outputs are the carries: of the initial values' types and shapes
      return std::vector<TensorInfo>(in.end() - static_cast<std::ptrdiff_t>(fOutputs.size()), in.end());
   }

   std::string GenerateCode() override
   {
      const std::size_t firstCarry = fInputs.size() - fOutputs.size();
      std::string code = "   {\n";
      for (std::size_t c = 0; c < fOutputs.size(); c++)
         code += "      std::copy(" + In(firstCarry + c) + ", " + In(firstCarry + c) + " + " +
                 Length(OutInfo(c).shape) + ", " + Out(c) + ");\n";
      code += "      std::int64_t j2s_trips = 0;\n";
      code += "      while (true) {\n";
      code += "         std::uint8_t j2s_keep_going = 0;\n";
      code += "         SOFIE_" + fS.cond.name + "::doInfer(session." + SessionName("cond") +
              Arguments(fS.cond, firstCarry) + ", &j2s_keep_going);\n";
      code += "         if (!j2s_keep_going)\n            break;\n";
      code += "         if (j2s_trips == " + std::to_string(fS.maxTrips) + ")\n";
      code += "            throw std::runtime_error(\"" + TooManyTripsMessage() + "\");\n";
      code += "         j2s_trips++;\n";
      std::string outputs;
      for (std::int64_t k = 0; k < BodyOutputCount(); k++) {
         const std::size_t c = CarryOfBodyOutput(k);
         outputs += ", " + Pointer("session." + NextName(c) + ".data()", OutInfo(c).type, false);
      }
      code += "         SOFIE_" + fS.body.name + "::doInfer(session." + SessionName("body") +
              Arguments(fS.body, firstCarry) + outputs + ");\n";
      for (std::size_t c = 0; c < fOutputs.size(); c++)
         if (fS.bodyOutputs[c] >= 0)
            // the buffer holds as many rows as the Session's largest batch: copy this call's
            code += "         std::copy(session." + NextName(c) + ".data(), session." + NextName(c) + ".data() + " +
                    Length(OutInfo(c).shape) + ", " + Out(c) + ");\n";
      code += "      }\n   }\n";
      return code;
   }

private:
   std::string SessionName(const std::string &which) const { return "fJ2S_while_" + which + "_" + fOutputs.at(0); }
   std::string NextName(std::size_t c) const { return "fJ2S_while_next_" + fOutputs.at(c); }

   /// The element type of a body output buffer: a bool output of a doInfer is written as uint8_t.
   std::string BufferType(std::size_t c) const
   {
      return OutInfo(c).type == SOFIE::ETensorType::BOOL ? "std::uint8_t" : CType(OutInfo(c).type);
   }

   /// A tensor pointer as a sub-model's doInfer takes it: a bool input as SOFIE's type of bool
   /// elements, a bool output as `uint8_t*` (the model's own bool tensors may be bool or uint8_t).
   static std::string Pointer(const std::string &pointer, SOFIE::ETensorType type, bool input)
   {
      if (type != SOFIE::ETensorType::BOOL)
         return pointer;
      const std::string target = input ? "const " + CType(type) + " *" : "std::uint8_t *";
      return "reinterpret_cast<" + target + ">(" + pointer + ")";
   }

   /// The shape parameters ("bs") of a sub-model's inputs, in the order its doInfer and its Session's
   /// constructor take them (SOFIE's RModel::GenerateInferSignature: each before the first input
   /// whose shape names it).
   std::vector<std::string> Params(const SubModel &model) const
   {
      std::vector<std::string> params;
      for (auto i : model.inputs)
         for (const auto &dim : InInfo(static_cast<std::size_t>(i)).shape)
            if (dim.isParam && std::find(params.begin(), params.end(), dim.param) == params.end())
               params.push_back(dim.param);
      return params;
   }

   /// ", tensor_a, bs, tensor_b": a sub-model's inputs with its shape parameters where its doInfer
   /// takes them, the carries read from this operator's outputs.
   std::string Arguments(const SubModel &model, std::size_t firstCarry) const
   {
      std::string text;
      std::vector<std::string> seen;
      for (auto i : model.inputs) {
         const auto index = static_cast<std::size_t>(i);
         for (const auto &dim : InInfo(index).shape)
            if (dim.isParam && std::find(seen.begin(), seen.end(), dim.param) == seen.end()) {
               seen.push_back(dim.param);
               text += ", " + dim.param;
            }
         const bool carry = index >= firstCarry;
         text += ", " + Pointer(carry ? Out(index - firstCarry) : In(index), InInfo(index).type, true);
      }
      return text;
   }

   std::int64_t BodyOutputCount() const
   {
      std::int64_t n = 0;
      for (auto k : fS.bodyOutputs)
         n = std::max(n, k + 1);
      return n;
   }

   std::size_t CarryOfBodyOutput(std::int64_t k) const
   {
      for (std::size_t c = 0; c < fS.bodyOutputs.size(); c++)
         if (fS.bodyOutputs[c] == k)
            return c;
      throw std::runtime_error("jax2sofie J2S_While: body output " + std::to_string(k) + " is no carry's");
   }

   /// The run-time error's text, as the contents of a C++ string literal.
   std::string TooManyTripsMessage() const
   {
      std::string text = "jax2sofie: the while loop" + (fS.where.empty() ? "" : " at " + fS.where) + " ran more than " +
                         std::to_string(fS.maxTrips) +
                         " iterations (the limit is the conversion option max_while_trips)";
      std::string escaped;
      for (char ch : text) {
         if (ch == '"' || ch == '\\')
            escaped += '\\';
         if (ch != '\n')
            escaped += ch;
      }
      return escaped;
   }

   Spec fS;
};

} // namespace jax2sofie
