// Factories of the elementwise-math family.
#include "ops_elementwise.hpp"

#include "owned/elementwise.hpp"
#include "owned/layernorm.hpp"
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

// J2S_LayerNorm: inputs [X, scale?, bias?] (float32; X's last axis of a static size, scale and bias
// n values each, n the length of that axis), one output of X's shape: X normalised along its last
// axis (owned/layernorm.hpp).
//   variance (str, required): "moments" (max(0, E[x^2] - E[x]^2), Flax) or "centered" (E[(x - E[x])^2],
//     Keras);
//   output (str, required): "centered" ((x - m) * (r * scale) + bias) or "folded" (x * (r * scale) +
//     (-m * (r * scale) + bias)), whichever the model traced;
//   eps (float, required): added to the variance;
//   has_scale, has_bias (0/1, default 0): which of scale and bias follow X, in that order.
// dtype float32.
OpPtr MakeLayerNorm(const Node &n)
{
   const bool hasScale = n.Flag("has_scale", false), hasBias = n.Flag("has_bias", false);
   const std::size_t inputs = 1 + (hasScale ? 1 : 0) + (hasBias ? 1 : 0);
   n.ExpectInputs(inputs);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   const std::string variance = n.Str("variance"), output = n.Str("output");
   if (variance != "moments" && variance != "centered")
      throw NodeError("J2S_LayerNorm: variance '" + variance + "' is not one of 'moments', 'centered'");
   if (output != "centered" && output != "folded")
      throw NodeError("J2S_LayerNorm: output '" + output + "' is not one of 'centered', 'folded'");
   const double eps = n.Float("eps");
   if (!(eps >= 0.0 && eps < 1e30))
      throw NodeError("J2S_LayerNorm: eps " + std::to_string(eps) + " is not a finite number >= 0");
   return std::make_unique<LayerNormOperator>(n.inputs, n.Output(), variance, output, eps, hasScale, hasBias);
}

} // namespace jax2sofie
