// Factories of the project-owned linear-algebra ops (csrc/owned/linalg.hpp). Defined in ops_linalg.cpp.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeCholesky(const Node &);
OpPtr MakeTriangularSolve(const Node &);
OpPtr MakeLu(const Node &);
OpPtr MakeLuPivotsToPermutation(const Node &);
OpPtr MakeGeqrf(const Node &);
OpPtr MakeHouseholderProduct(const Node &);
OpPtr MakeOrmqr(const Node &);
OpPtr MakeQr(const Node &);
OpPtr MakeGeqp3(const Node &);
OpPtr MakeHessenberg(const Node &);
OpPtr MakeSchur(const Node &);
OpPtr MakeEigh(const Node &);
OpPtr MakeSvd(const Node &);

} // namespace jax2sofie
