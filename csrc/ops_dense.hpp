// Factories of the dense-layer ops (ops_dense.cpp).
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeDense(const Node &);
OpPtr MakeBatchedMatMul(const Node &);

} // namespace jax2sofie
