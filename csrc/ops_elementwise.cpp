// Factories of the elementwise-math family.
#include "ops_elementwise.hpp"

#include "owned/elementwise.hpp"
#include "owned/softmax.hpp"

#include "SOFIE/ROperator_Erf.hxx"

#include <climits>
#include <map>

namespace jax2sofie {

using namespace SOFIE;

// Erf: input [X]. dtype float32.
OpPtr MakeErf(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   return std::make_unique<ROperator_Erf<float>>(n.inputs[0], n.Output());
}

// J2S_Elementwise: inputs [x0, x1, ...] (>= 1, any types, numpy broadcasting), one output.
//   expression (str, required): C++ over x0, x1, ...; optional leading "t = ...;" temporaries
//     (see owned/elementwise.hpp);
//   to (float32|int32|int64|bool, required): the output's element type.
OpPtr MakeElementwise(const Node &n)
{
   n.ExpectInputs(1, SIZE_MAX);
   n.ExpectOutputs(1);
   static const std::map<std::string, ETensorType> types = {
      {"float32", ETensorType::FLOAT}, {"int32", ETensorType::INT32},
      {"int64", ETensorType::INT64}, {"bool", ETensorType::BOOL}};
   const std::string outDtype = n.Str("to");
   const auto type = types.find(outDtype);
   if (type == types.end())
      throw NodeError("unsupported output dtype '" + outDtype + "' (float32, int32, int64, bool)");
   const std::string expression = n.Str("expression");
   if (expression.empty())
      throw NodeError("empty expression");
   return std::make_unique<ElementwiseOperator>(n.inputs, n.Output(), expression, type->second);
}

// J2S_Softmax: input [X] (float32, the last axis of a static size), one output of X's shape: the
// softmax of each row along the last axis (owned/softmax.hpp).
//   exp (str, required): exp(x0) as a J2S_Elementwise expression (ops/expressions.py).
// dtype float32.
OpPtr MakeSoftmax(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   const std::string exp = n.Str("exp");
   if (exp.empty())
      throw NodeError("empty exp expression");
   return std::make_unique<SoftmaxOperator>(exp, n.inputs[0], n.Output());
}

} // namespace jax2sofie
