// Factories of the elementwise-math family: SOFIE's Erf, the project-owned J2S_Elementwise and the
// row kernels built on its expressions (J2S_Softmax, J2S_LayerNorm).
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeErf(const Node &);
OpPtr MakeElementwise(const Node &);
OpPtr MakeSoftmax(const Node &);
OpPtr MakeLayerNorm(const Node &);

} // namespace jax2sofie
