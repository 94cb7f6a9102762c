// Factories of the linear-algebra ops (see ops_linalg.hpp). The operators compute in double on
// float32 tensors; `dtype` (the first input's type) must be float32 (int32 for the pivots).
#include "ops_linalg.hpp"

#include "owned/linalg.hpp"

#include <cstdint>

namespace jax2sofie {

// J2S_Cholesky: input [A (..., n, n)]; output [L]. dtype float32.
OpPtr MakeCholesky(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   return std::make_unique<CholeskyOperator>(n.inputs[0], n.Output());
}

// J2S_TriangularSolve: inputs [A (..., m, m), B (..., m, r) or (..., r, m)]; output [X, B's shape];
// left_side, lower, transpose_a, unit_diagonal (0|1, 0). dtype float32.
OpPtr MakeTriangularSolve(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   return std::make_unique<TriangularSolveOperator>(n.Flag("left_side", false), n.Flag("lower", false),
                                                    n.Flag("transpose_a", false), n.Flag("unit_diagonal", false),
                                                    n.inputs[0], n.inputs[1], n.Output());
}

// J2S_Lu: input [A (..., m, n)]; outputs [lu (A's shape), pivots (int32, (..., min(m, n))),
// permutation (int32, (..., m))]. dtype float32.
OpPtr MakeLu(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(3);
   CheckDType<float>(n);
   return std::make_unique<LuOperator>(n.inputs[0], n.outputs[0], n.outputs[1], n.outputs[2]);
}

// J2S_LuPivotsToPermutation: input [pivots (int32, (..., k))]; output [permutation (int32,
// (..., permutation_size))]; permutation_size (int, required). dtype int32.
OpPtr MakeLuPivotsToPermutation(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<std::int32_t>(n);
   return std::make_unique<LuPivotsToPermutationOperator>(n.Int("permutation_size"), n.inputs[0], n.Output());
}

// J2S_Geqrf: input [A (..., m, n)]; outputs [reflectors and R (A's shape), taus (..., min(m, n))].
// dtype float32.
OpPtr MakeGeqrf(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(2);
   CheckDType<float>(n);
   return std::make_unique<GeqrfOperator>(n.inputs[0], n.outputs[0], n.outputs[1]);
}

// J2S_HouseholderProduct: inputs [A (..., m, n), taus (..., k)]; output [Q (A's shape)]. dtype float32.
OpPtr MakeHouseholderProduct(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   return std::make_unique<HouseholderProductOperator>(n.inputs[0], n.inputs[1], n.Output());
}

// J2S_Ormqr: inputs [A (..., m, k'), taus (..., k), C]; output [C's shape]; left (0|1, 1), transpose (0|1,
// 0). dtype float32.
OpPtr MakeOrmqr(const Node &n)
{
   n.ExpectInputs(3);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   return std::make_unique<OrmqrOperator>(n.Flag("left", true), n.Flag("transpose", false), n.inputs[0], n.inputs[1],
                                          n.inputs[2], n.Output());
}

// J2S_Qr: input [A (..., m, n)]; outputs [Q, R], with pivoting also [P (int32, (..., n), 0-based)];
// full_matrices (0|1, 0), pivoting (0|1, 0). dtype float32.
OpPtr MakeQr(const Node &n)
{
   n.ExpectInputs(1);
   const bool pivoting = n.Flag("pivoting", false);
   n.ExpectOutputs(pivoting ? 3 : 2);
   CheckDType<float>(n);
   return std::make_unique<QrOperator>(n.Flag("full_matrices", false), pivoting, n.inputs[0], n.outputs);
}

// J2S_Geqp3: inputs [A (..., m, n), jpvt (int32, (..., n))]; outputs [reflectors and R (A's shape),
// jpvt (int32, 1-based), taus (..., min(m, n))]. dtype float32.
OpPtr MakeGeqp3(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(3);
   CheckDType<float>(n);
   return std::make_unique<Geqp3Operator>(n.inputs[0], n.inputs[1], n.outputs[0], n.outputs[1], n.outputs[2]);
}

// J2S_Hessenberg: input [A (..., n, n), n >= 2]; outputs [H and reflectors (A's shape), taus (..., n - 1)].
// dtype float32.
OpPtr MakeHessenberg(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(2);
   CheckDType<float>(n);
   return std::make_unique<HessenbergOperator>(n.inputs[0], n.outputs[0], n.outputs[1]);
}

// J2S_Schur: input [A (..., n, n)]; outputs [T] or [T, Z] (A's shape); compute_schur_vectors (0|1, 1).
// dtype float32.
OpPtr MakeSchur(const Node &n)
{
   n.ExpectInputs(1);
   const bool vectors = n.Flag("compute_schur_vectors", true);
   n.ExpectOutputs(vectors ? 2 : 1);
   CheckDType<float>(n);
   return std::make_unique<SchurOperator>(vectors, n.inputs[0], n.outputs);
}

// J2S_Eigh: input [A (..., n, n), symmetric]; outputs [V (A's shape), w (..., n), ascending];
// lower (0|1, 1: which triangle is read). dtype float32.
OpPtr MakeEigh(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(2);
   CheckDType<float>(n);
   return std::make_unique<EighOperator>(n.Flag("lower", true), n.inputs[0], n.outputs[0], n.outputs[1]);
}

// J2S_Svd: input [A (..., m, n)]; outputs [s] or [s, U, V^T]; full_matrices (0|1, 0), compute_uv
// (0|1, 1). dtype float32.
OpPtr MakeSvd(const Node &n)
{
   n.ExpectInputs(1);
   const bool computeUV = n.Flag("compute_uv", true);
   n.ExpectOutputs(computeUV ? 3 : 1);
   CheckDType<float>(n);
   return std::make_unique<SvdOperator>(n.Flag("full_matrices", false), computeUV, n.inputs[0], n.outputs);
}

} // namespace jax2sofie
