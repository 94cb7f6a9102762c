// Factories of the data-movement ops: Identity, Reshape, Transpose, Expand, Concat, Cast, Where.
// Reshape, Transpose, Concat and Cast are not templated in SOFIE (they copy or convert whatever
// the input tensor holds), so for them `dtype` is only checked.
#include "ops.hpp"

#include "SOFIE/ROperator_Cast.hxx"
#include "SOFIE/ROperator_Concat.hxx"
#include "SOFIE/ROperator_Expand.hxx"
#include "SOFIE/ROperator_Identity.hxx"
#include "SOFIE/ROperator_Reshape.hxx"
#include "SOFIE/ROperator_Transpose.hxx"
#include "SOFIE/ROperator_Where.hxx"

#include <climits>
#include <cstdint>

namespace jax2sofie {

using namespace SOFIE;

#define J2S_NUMERIC float, std::int32_t, std::int64_t
#define J2S_ANY float, double, std::int32_t, std::int64_t, bool

// Identity: input [X]. dtype float32|int32|int64|bool.
OpPtr MakeIdentity(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   return WithDType<float, std::int32_t, std::int64_t, bool>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_Identity<T>>(n.inputs[0], n.Output());
   });
}

// Reshape: inputs [data, shape]; `shape` must name an INT64 initialized tensor (SOFIE reads its
// values at generation time; 0 copies the input dim unless allowzero, -1 is inferred).
// allowzero (0|1, 0). Any dtype.
OpPtr MakeReshape(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   const int allowzero = n.Flag("allowzero", false) ? 1 : 0;
   return std::make_unique<ROperator_Reshape>(SOFIE::Reshape, allowzero, n.inputs[0], n.inputs[1], n.Output());
}

// Transpose: input [X]; perm (list[int], [] = reverse the axes, as numpy). Any dtype.
OpPtr MakeTranspose(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   return std::make_unique<ROperator_Transpose>(n.Ints("perm", {}), n.inputs[0], n.Output());
}

// Expand: inputs [X, shape]; `shape` names an INT64 initialized 1-d tensor (numpy broadcasting of
// X against it). dtype float32|int32|int64.
OpPtr MakeExpand(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   return WithDType<J2S_NUMERIC>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_Expand<T>>(n.inputs[0], n.inputs[1], n.Output());
   });
}

// Concat: inputs [X1, ...] (>= 1); axis (int, required; negative counts from the end). Any dtype.
OpPtr MakeConcat(const Node &n)
{
   n.ExpectInputs(1, SIZE_MAX);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   const std::int64_t axis = n.Int("axis");
   // newAxis = 0: ONNX Concat (1 would be ConcatFromSequence with new_axis)
   return std::make_unique<ROperator_Concat>(n.inputs, static_cast<int>(axis), 0, n.Output());
}

static ETensorType ToTensorType(const std::string &name)
{
   if (name == "float32") return ETensorType::FLOAT;
   if (name == "float64") return ETensorType::DOUBLE;
   if (name == "int32") return ETensorType::INT32;
   if (name == "int64") return ETensorType::INT64;
   if (name == "bool") return ETensorType::BOOL;
   throw NodeError("attribute 'to' must be one of float32, float64, int32, int64, bool, not '" + name + "'");
}

// Cast: input [X] of type dtype (any); to (str, required: float32|float64|int32|int64|bool).
// Casting to bool gives (x != 0).
OpPtr MakeCast(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   const ETensorType to = ToTensorType(n.Str("to"));
   return std::make_unique<ROperator_Cast>(to, n.inputs[0], n.Output());
}

// Where: inputs [cond (bool), X, Y], broadcasting; dtype is X's (and Y's) type:
// float32|int32|int64. Note the SOFIE constructor takes (cond, X, Y, out) in this order too.
OpPtr MakeWhere(const Node &n)
{
   n.ExpectInputs(3);
   n.ExpectOutputs(1);
   return WithDType<J2S_NUMERIC>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_Where<T>>(n.inputs[0], n.inputs[1], n.inputs[2], n.Output());
   });
}

} // namespace jax2sofie
