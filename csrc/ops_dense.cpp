// J2S_Dense: inputs [A, W] or [A, W, bias]; Y = act(A W + bias) over the last axis of A.
//   dtype ("float32"), activation ("" | "relu" | "sigmoid", ""), panel (0 or 32, 0).
// W is (K, N), row-major (panel 0) or in panels of 32 columns, each K x 32 row-major (see
// owned/dense.hpp); the leading axes of A (batch Dim included) are the rows.
#include "ops_dense.hpp"

#include "owned/batched_matmul.hpp"
#include "owned/dense.hpp"

namespace jax2sofie {

OpPtr MakeDense(const Node &n)
{
   n.ExpectInputs(2, 3);
   n.ExpectOutputs(1);
   if (n.Str("dtype", "float32") != "float32")
      throw NodeError("J2S_Dense is float32 only");
   const std::string bias = n.inputs.size() == 3 ? n.inputs[2] : std::string();
   try {
      return std::make_unique<DenseOperator>(n.inputs[0], n.inputs[1], bias, n.Output(), n.Str("activation", ""),
                                         static_cast<int>(n.Int("panel", 0)));
   } catch (const std::runtime_error &e) {
      throw NodeError(e.what());
   }
}

// J2S_BatchedMatMul: inputs [A, B]; Y = the products of the matrices of A and B along their batch axes.
//   a_axes (A's axes as batch..., rows, cols; its other axes of size 1), b_axes (B's, alike), out_axes
//   (for each output axis its place in batch..., rows of A, cols of B, or -1 for a unit axis), a_fixed,
//   b_fixed (optional: (axis, index) pairs, an operand's other axes read at one index). float32
//   only; the rows and cols must be fixed sizes (owned/batched_matmul.hpp).
OpPtr MakeBatchedMatMul(const Node &n)
{
   n.ExpectInputs(2, 2);
   n.ExpectOutputs(1);
   try {
      return std::make_unique<BatchedMatMulOperator>(n.inputs[0], n.inputs[1], n.Output(), n.Ints("a_axes"),
                                                 n.Ints("b_axes"), n.Ints("out_axes"), n.Ints("a_fixed", {}),
                                                 n.Ints("b_fixed", {}));
   } catch (const std::runtime_error &e) {
      throw NodeError(e.what());
   }
}

} // namespace jax2sofie
