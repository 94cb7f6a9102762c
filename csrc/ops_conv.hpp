// Factories of the convolution family: jax2sofie's own Conv (im2col + sgemm) and window
// reduction (pooling), both project-owned operators (csrc/owned/conv.hpp, csrc/owned/pool.hpp).
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeOwnedConv(const Node &);
OpPtr MakeOwnedPool(const Node &);

} // namespace jax2sofie
