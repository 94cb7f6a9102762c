// Factories of the elementwise-math family: SOFIE's Erf and the project-owned J2S_Elementwise.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeErf(const Node &);
OpPtr MakeElementwise(const Node &);

} // namespace jax2sofie
