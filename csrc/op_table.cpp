// THE op table: the one place that says which op names jax2sofie._native understands.
// Names follow ONNX; the attributes each op reads are documented at its factory.
#include "ops.hpp"
#include "ops_slicing.hpp"

namespace jax2sofie {

const std::map<std::string, Factory> &OpTable()
{
   static const std::map<std::string, Factory> table = {
      // linear algebra
      {"Gemm", MakeGemm},
      {"Einsum", MakeEinsum},
      // element-wise binary (broadcasting) and n-ary
      {"Add", MakeAdd},
      {"Sub", MakeSub},
      {"Mul", MakeMul},
      {"Div", MakeDiv},
      {"Pow", MakePow},
      {"Max", MakeMax},
      {"Min", MakeMin},
      {"Sum", MakeSum},
      {"Mean", MakeMean},
      // element-wise unary
      {"Neg", MakeNeg},
      {"Exp", MakeExp},
      {"Log", MakeLog},
      {"Sqrt", MakeSqrt},
      {"Reciprocal", MakeReciprocal},
      {"Abs", MakeAbs},
      {"Sin", MakeSin},
      {"Cos", MakeCos},
      {"Floor", MakeFloor},
      {"Softplus", MakeSoftplus},
      {"Atan", MakeAtan},
      {"Asinh", MakeAsinh},
      {"Acosh", MakeAcosh},
      {"Atanh", MakeAtanh},
      {"Tanh", MakeTanh},
      {"Sigmoid", MakeSigmoid},
      {"Relu", MakeRelu},
      {"Softmax", MakeSoftmax},
      // reductions
      {"ReduceSum", MakeReduceSum},
      {"ReduceMax", MakeReduceMax},
      {"ReduceMin", MakeReduceMin},
      {"ReduceMean", MakeReduceMean},
      {"ReduceProd", MakeReduceProd},
      {"ReduceSumSquare", MakeReduceSumSquare},
      // comparisons (bool output) and logic (bool in, bool out)
      {"Equal", MakeEqual},
      {"Less", MakeLess},
      {"LessOrEqual", MakeLessOrEqual},
      {"Greater", MakeGreater},
      {"GreaterOrEqual", MakeGreaterOrEqual},
      {"Not", MakeNot},
      {"And", MakeAnd},
      {"Or", MakeOr},
      {"Xor", MakeXor},
      // data movement and types
      {"Identity", MakeIdentity},
      {"Reshape", MakeReshape},
      {"Transpose", MakeTranspose},
      {"Expand", MakeExpand},
      {"Concat", MakeConcat},
      {"Cast", MakeCast},
      {"Where", MakeWhere},
      // slicing (project-owned operators)
      {"J2S_Slice", MakeSlice},
      {"J2S_DynamicSlice", MakeDynamicSlice},
      {"J2S_DynamicUpdateSlice", MakeDynamicUpdateSlice},
      {"J2S_BroadcastTo", MakeBroadcastTo},
   };
   return table;
}

} // namespace jax2sofie
