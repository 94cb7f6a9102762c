// Factories of the reductions, scans and sorts that are not SOFIE's element-wise or Reduce family:
// the project-owned J2S_Reduce, J2S_ArgMax/J2S_ArgMin, J2S_Cumulative, J2S_Sort (csrc/owned/reduce.hpp)
// and SOFIE's TopK (which PySofie does not bind). Defined in ops_reduce.cpp.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeJ2SReduce(const Node &);
OpPtr MakeJ2SArgMax(const Node &);
OpPtr MakeJ2SArgMin(const Node &);
OpPtr MakeJ2SCumulative(const Node &);
OpPtr MakeJ2SSort(const Node &);
OpPtr MakeTopK(const Node &);

} // namespace jax2sofie
