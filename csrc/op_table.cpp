// THE op table: the one place that says which op names jax2sofie._native understands.
// Names follow ONNX; the attributes each op reads are documented at its factory.
#include "ops.hpp"
#include "ops_elementwise.hpp"
#include "ops_reduce.hpp"
#include "ops_dense.hpp"
#include "ops_conv.hpp"
#include "ops_indexing.hpp"
#include "ops_linalg.hpp"
#include "ops_slicing.hpp"
#include "ops_control.hpp"

namespace jax2sofie {

const std::map<std::string, Factory> &OpTable()
{
   static const std::map<std::string, Factory> table = {
      // linear algebra
      {"Gemm", MakeGemm},
      {"J2S_Dense", MakeDense},
      {"J2S_BatchedMatMul", MakeBatchedMatMul},
      // decompositions and solvers (project-owned, csrc/owned/linalg.hpp)
      {"J2S_Cholesky", MakeCholesky},
      {"J2S_TriangularSolve", MakeTriangularSolve},
      {"J2S_Lu", MakeLu},
      {"J2S_LuPivotsToPermutation", MakeLuPivotsToPermutation},
      {"J2S_Geqrf", MakeGeqrf},
      {"J2S_HouseholderProduct", MakeHouseholderProduct},
      {"J2S_Ormqr", MakeOrmqr},
      {"J2S_Qr", MakeQr},
      {"J2S_Geqp3", MakeGeqp3},
      {"J2S_Hessenberg", MakeHessenberg},
      {"J2S_Schur", MakeSchur},
      {"J2S_Eigh", MakeEigh},
      {"J2S_Svd", MakeSvd},
      // element-wise binary (broadcasting) and n-ary
      {"Add", MakeAdd},
      {"Sub", MakeSub},
      {"Mul", MakeMul},
      {"Div", MakeDiv},
      {"Pow", MakePow},
      {"Max", MakeMax},
      {"Min", MakeMin},
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
      {"Atan", MakeAtan},
      {"Asinh", MakeAsinh},
      {"Acosh", MakeAcosh},
      {"Atanh", MakeAtanh},
      {"Erf", MakeErf},
      {"Tanh", MakeTanh},
      {"Sigmoid", MakeSigmoid},
      {"Relu", MakeRelu},
      // reductions
      {"ReduceSum", MakeReduceSum},
      // project-owned reductions, scans and sorts (csrc/owned/reduce.hpp, topk.hpp)
      {"J2S_Reduce", MakeReduce},
      {"J2S_ArgMax", MakeArgMax},
      {"J2S_ArgMin", MakeArgMin},
      {"J2S_Cumulative", MakeCumulative},
      {"J2S_Sort", MakeSort},
      {"J2S_TopK", MakeTopK},
      // comparisons (bool output) and logic (bool in, bool out)
      {"Equal", MakeEqual},
      {"Less", MakeLess},
      {"LessOrEqual", MakeLessOrEqual},
      {"Greater", MakeGreater},
      {"GreaterOrEqual", MakeGreaterOrEqual},
      {"Not", MakeNot},
      // project-owned: one loop over a C++ expression of broadcast inputs (ops_elementwise.cpp)
      {"J2S_Elementwise", MakeElementwise},
      // project-owned row kernels: a softmax over the last axis in one operator (owned/softmax.hpp)
      {"J2S_Softmax", MakeSoftmax},
      // a layer norm over the last axis in one operator (owned/layernorm.hpp)
      {"J2S_LayerNorm", MakeLayerNorm},
      // data movement and types
      {"Identity", MakeIdentity},
      {"Reshape", MakeReshape},
      {"Transpose", MakeTranspose},
      {"Expand", MakeExpand},
      {"Concat", MakeConcat},
      {"Cast", MakeCast},
      {"Where", MakeWhere},
      // convolution and pooling (project-owned operators)
      {"J2S_Conv", MakeConv},
      {"J2S_ConvNHWC", MakeConvNHWC},
      {"J2S_ConvDepthwise", MakeConvDepthwise},
      {"J2S_ConvTransposeNHWC", MakeConvTransposeNHWC},
      {"J2S_Pool", MakePool},
      // indexing and data movement (project-owned, csrc/owned/gather.hpp and its neighbours)
      {"J2S_Gather", MakeGather},
      {"J2S_Scatter", MakeScatter},
      {"J2S_Pad", MakePad},
      {"J2S_Reverse", MakeReverse},
      {"J2S_Tile", MakeTile},
      {"J2S_Split", MakeSplit},
      // slicing (project-owned operators)
      {"J2S_Slice", MakeSlice},
      {"J2S_DynamicSlice", MakeDynamicSlice},
      {"J2S_DynamicUpdateSlice", MakeDynamicUpdateSlice},
      {"J2S_BroadcastTo", MakeBroadcastTo},
      {"J2S_BatchReshape", MakeBatchReshape},
      // control flow: a loop over sub-models (project-owned, csrc/owned/while_loop.hpp)
      {"J2S_While", MakeWhile},
   };
   return table;
}

} // namespace jax2sofie
