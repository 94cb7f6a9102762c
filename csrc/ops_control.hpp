// Factories of the control-flow ops (ops_control.cpp): J2S_While.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeWhile(const Node &);

} // namespace jax2sofie
