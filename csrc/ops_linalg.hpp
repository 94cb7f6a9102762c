// Factories of the project-owned linear-algebra ops (csrc/owned/linalg.hpp). Defined in ops_linalg.cpp.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeJ2SCholesky(const Node &);
OpPtr MakeJ2STriangularSolve(const Node &);
OpPtr MakeJ2SLu(const Node &);
OpPtr MakeJ2SLuPivotsToPermutation(const Node &);
OpPtr MakeJ2SGeqrf(const Node &);
OpPtr MakeJ2SHouseholderProduct(const Node &);
OpPtr MakeJ2SOrmqr(const Node &);
OpPtr MakeJ2SQr(const Node &);
OpPtr MakeJ2SEigh(const Node &);
OpPtr MakeJ2SSvd(const Node &);

} // namespace jax2sofie
