// The factories of the op table: each reads one node and returns the SOFIE operator for it.
// Defined in ops_math.cpp (arithmetic, activations, reductions, comparisons) and ops_shape.cpp
// (data movement: Reshape, Transpose, Expand, Concat, Cast, Where, Identity); the split only keeps
// the template-heavy translation units small enough to compile in parallel.
#pragma once

#include "node.hpp"

#include <map>
#include <string>

namespace jax2sofie {

using Factory = OpPtr (*)(const Node &);

/// The op table: ONNX-style op name -> factory (op_table.cpp).
const std::map<std::string, Factory> &OpTable();

// ops_math.cpp
OpPtr MakeGemm(const Node &);
OpPtr MakeAdd(const Node &);
OpPtr MakeSub(const Node &);
OpPtr MakeMul(const Node &);
OpPtr MakeDiv(const Node &);
OpPtr MakePow(const Node &);
OpPtr MakeMax(const Node &);
OpPtr MakeMin(const Node &);
OpPtr MakeNeg(const Node &);
OpPtr MakeExp(const Node &);
OpPtr MakeLog(const Node &);
OpPtr MakeSqrt(const Node &);
OpPtr MakeReciprocal(const Node &);
OpPtr MakeAbs(const Node &);
OpPtr MakeSin(const Node &);
OpPtr MakeCos(const Node &);
OpPtr MakeFloor(const Node &);
OpPtr MakeAtan(const Node &);
OpPtr MakeAsinh(const Node &);
OpPtr MakeAcosh(const Node &);
OpPtr MakeAtanh(const Node &);
OpPtr MakeTanh(const Node &);
OpPtr MakeSigmoid(const Node &);
OpPtr MakeRelu(const Node &);
OpPtr MakeReduceSum(const Node &);
OpPtr MakeEqual(const Node &);
OpPtr MakeLess(const Node &);
OpPtr MakeLessOrEqual(const Node &);
OpPtr MakeGreater(const Node &);
OpPtr MakeGreaterOrEqual(const Node &);
OpPtr MakeNot(const Node &);

// ops_shape.cpp
OpPtr MakeIdentity(const Node &);
OpPtr MakeReshape(const Node &);
OpPtr MakeTranspose(const Node &);
OpPtr MakeExpand(const Node &);
OpPtr MakeConcat(const Node &);
OpPtr MakeCast(const Node &);
OpPtr MakeWhere(const Node &);

} // namespace jax2sofie
