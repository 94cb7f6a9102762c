// Factories of the arithmetic ops: Gemm, element-wise unary/binary/n-ary, activations, ReduceSum,
// comparisons and Not. Each checks arity, reads its attributes (names and
// defaults as in ONNX unless noted) and calls the SOFIE constructor; no graph logic here.
#include "ops.hpp"

#include "SOFIE/ROperator_BasicBinary.hxx"
#include "SOFIE/ROperator_BasicNary.hxx"
#include "SOFIE/ROperator_BasicUnary.hxx"
#include "SOFIE/ROperator_Comparison.hxx"
#include "SOFIE/ROperator_Gemm.hxx"
#include "SOFIE/ROperator_Not.hxx"
#include "SOFIE/ROperator_Reduce.hxx"
#include "SOFIE/ROperator_Relu.hxx"
#include "SOFIE/ROperator_Sigmoid.hxx"
#include "SOFIE/ROperator_Tanh.hxx"

#include <climits>
#include <cstdint>

namespace jax2sofie {

using namespace SOFIE;

// Element types per family. Float-only ops are the ones whose SOFIE template (or generated code)
// is written for float (Gemm calls sgemm; the unary math functions and activations only make
// sense for floats).
#define J2S_FLOAT float
#define J2S_NUMERIC float, std::int32_t, std::int64_t

// ---------------------------------------------------------------------------------------------
// Gemm: inputs [A, B] or [A, B, C]; Y = act(alpha * A' * B' + beta * C).
//   alpha (float, 1.0), beta (float, 1.0 with C, else 0.0), transA/transB (0|1, 0),
//   activation ("" | "relu" | "leakyrelu" | "sigmoid" | "tanh", ""), leakyrelu_alpha (float, 0.01).
// For A/B of rank > 2 SOFIE does a batched MatMul (numpy.matmul broadcasting of the batch dims).
// SOFIE quirk: without C, a non-zero beta is forced to 0 with a warning at generation, hence the
// default 0.0 there.
// SOFIE quirk (0.1.0): the CPU code generator only applies the fused RELU and LEAKYRELU
// activations; SIGMOID and TANH are accepted by the constructor but silently NOT applied (only
// the alpaka GPU path knows them). They are refused here so a model cannot be silently wrong:
// emit a separate Sigmoid / Tanh node instead.
// The LEAKYRELU slope is not a constructor argument; it is set with SetActivation().
// ---------------------------------------------------------------------------------------------
OpPtr MakeGemm(const Node &n)
{
   n.ExpectInputs(2, 3);
   n.ExpectOutputs(1);
   return WithDType<J2S_FLOAT>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      const bool hasC = n.inputs.size() == 3;
      const float alpha = static_cast<float>(n.Float("alpha", 1.0));
      const float beta = static_cast<float>(n.Float("beta", hasC ? 1.0 : 0.0));
      const int_t transA = n.Flag("transA", false);
      const int_t transB = n.Flag("transB", false);
      const std::string act = n.Str("activation", "");
      const float leaky = static_cast<float>(n.Float("leakyrelu_alpha", 0.01));
      EActivationType a;
      if (act.empty())
         a = EActivationType::UNDEFINED;
      else if (act == "relu")
         a = EActivationType::RELU;
      else if (act == "leakyrelu")
         a = EActivationType::LEAKYRELU;
      else if (act == "sigmoid" || act == "tanh")
         throw NodeError("activation '" + act +
                         "' is not applied by SOFIE 0.1.0's CPU Gemm code (it is silently dropped); "
                         "use a separate " + (act == "tanh" ? std::string("Tanh") : std::string("Sigmoid")) +
                         " node");
      else
         throw NodeError("unknown activation '" + act + "' (activations: \"\", relu, leakyrelu)");
      if (n.Has("leakyrelu_alpha") && a != EActivationType::LEAKYRELU)
         throw NodeError("attribute 'leakyrelu_alpha' needs activation 'leakyrelu'");
      std::unique_ptr<ROperator_Gemm<T>> op;
      if (hasC)
         op = std::make_unique<ROperator_Gemm<T>>(alpha, beta, transA, transB, n.inputs[0], n.inputs[1], n.inputs[2],
                                                  n.Output(), a);
      else
         op = std::make_unique<ROperator_Gemm<T>>(alpha, beta, transA, transB, n.inputs[0], n.inputs[1], n.Output(), a);
      if (a == EActivationType::LEAKYRELU)
         op->SetActivation(a, leaky);
      return op;
   });
}

// ---- element-wise binary: inputs [A, B], numpy broadcasting; dtype float32|int32|int64 ------
// Integer Div truncates toward zero (C semantics, like lax.div), integer Pow goes through
// std::pow(double).
template <EBasicBinaryOperator Op>
static OpPtr MakeBinary(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   return WithDType<J2S_NUMERIC>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_BasicBinary<T, Op>>(n.inputs[0], n.inputs[1], n.Output());
   });
}
OpPtr MakeAdd(const Node &n) { return MakeBinary<Add>(n); }
OpPtr MakeSub(const Node &n) { return MakeBinary<Sub>(n); }
OpPtr MakeMul(const Node &n) { return MakeBinary<Mul>(n); }
OpPtr MakeDiv(const Node &n) { return MakeBinary<Div>(n); }
OpPtr MakePow(const Node &n) { return MakeBinary<Pow>(n); }

// ---- element-wise n-ary: inputs [X1, ...] (>= 1), broadcasting; dtype float32|int32|int64 ---
template <EBasicNaryOperator Op, class... Ts>
static OpPtr MakeNary(const Node &n)
{
   n.ExpectInputs(1, SIZE_MAX);
   n.ExpectOutputs(1);
   return WithDType<Ts...>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_BasicNary<T, Op>>(n.inputs, n.Output());
   });
}
OpPtr MakeMax(const Node &n) { return MakeNary<EBasicNaryOperator::Max, J2S_NUMERIC>(n); }
OpPtr MakeMin(const Node &n) { return MakeNary<EBasicNaryOperator::Min, J2S_NUMERIC>(n); }

// ---- element-wise unary: input [X]; float32 -------------------------------------------------
template <EBasicUnaryOperator Op>
static OpPtr MakeUnary(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   return WithDType<J2S_FLOAT>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_BasicUnary<T, Op>>(n.inputs[0], n.Output());
   });
}
OpPtr MakeNeg(const Node &n) { return MakeUnary<EBasicUnaryOperator::kNeg>(n); }
OpPtr MakeExp(const Node &n) { return MakeUnary<EBasicUnaryOperator::kExp>(n); }
OpPtr MakeLog(const Node &n) { return MakeUnary<EBasicUnaryOperator::kLog>(n); }
OpPtr MakeSqrt(const Node &n) { return MakeUnary<EBasicUnaryOperator::kSqrt>(n); }
OpPtr MakeReciprocal(const Node &n) { return MakeUnary<EBasicUnaryOperator::kReciprocal>(n); }
OpPtr MakeAbs(const Node &n) { return MakeUnary<EBasicUnaryOperator::kAbs>(n); }
OpPtr MakeSin(const Node &n) { return MakeUnary<EBasicUnaryOperator::kSin>(n); }
OpPtr MakeCos(const Node &n) { return MakeUnary<EBasicUnaryOperator::kCos>(n); }
OpPtr MakeFloor(const Node &n) { return MakeUnary<EBasicUnaryOperator::kFloor>(n); }
OpPtr MakeAtan(const Node &n) { return MakeUnary<EBasicUnaryOperator::kAtan>(n); }
OpPtr MakeAsinh(const Node &n) { return MakeUnary<EBasicUnaryOperator::kAsinh>(n); }
OpPtr MakeAcosh(const Node &n) { return MakeUnary<EBasicUnaryOperator::kAcosh>(n); }
OpPtr MakeAtanh(const Node &n) { return MakeUnary<EBasicUnaryOperator::kAtanh>(n); }

// ---- activations with their own operator class: input [X]; float32 -------------------------
template <template <class> class Op>
static OpPtr MakeActivation(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   return WithDType<J2S_FLOAT>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<Op<T>>(n.inputs[0], n.Output());
   });
}
OpPtr MakeTanh(const Node &n) { return MakeActivation<ROperator_Tanh>(n); }
OpPtr MakeSigmoid(const Node &n) { return MakeActivation<ROperator_Sigmoid>(n); }
OpPtr MakeRelu(const Node &n) { return MakeActivation<ROperator_Relu>(n); }

// ---- reductions: input [X]; axes (list[int], [] = all axes), keepdims (0|1, 1). float32 ------
// SOFIE's ROperator_Reduce is not templated: it takes the type of its input tensor.
template <EReduceOpMode Op>
static OpPtr MakeSofieReduce(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_FLOAT>(n);
   const auto axes = n.Ints("axes", {});
   const bool keepdims = n.Flag("keepdims", true);
   // "" = no axes tensor: the axes come from the attribute
   return std::make_unique<ROperator_Reduce<Op>>(keepdims ? 1 : 0, axes, n.inputs[0], "", n.Output());
}
OpPtr MakeReduceSum(const Node &n) { return MakeSofieReduce<ReduceSum>(n); }

// ---- comparisons: inputs [A, B] of type dtype (float32|int32|int64), broadcasting; bool out --
template <EComparisonOperator Op>
static OpPtr MakeComparison(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   return WithDType<J2S_NUMERIC>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_Comparison<T, Op>>(n.inputs[0], n.inputs[1], n.Output());
   });
}
OpPtr MakeEqual(const Node &n) { return MakeComparison<Eq>(n); }
OpPtr MakeLess(const Node &n) { return MakeComparison<Less>(n); }
OpPtr MakeLessOrEqual(const Node &n) { return MakeComparison<LessEq>(n); }
OpPtr MakeGreater(const Node &n) { return MakeComparison<Greater>(n); }
OpPtr MakeGreaterOrEqual(const Node &n) { return MakeComparison<GreaterEq>(n); }

// ---- logic on bool tensors ------------------------------------------------------------------
// Not: input [X]; dtype bool. (SOFIE's And/Or/Xor are not in the table: they do not broadcast;
// jax2sofie lowers and/or/xor to J2S_Elementwise.)
OpPtr MakeNot(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<bool>(n);
   return std::make_unique<ROperator_Not>(n.inputs[0], n.Output());
}

} // namespace jax2sofie
