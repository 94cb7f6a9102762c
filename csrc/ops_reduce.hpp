// Factories of the reductions, scans and sorts that are not SOFIE's element-wise or Reduce family:
// the project-owned J2S_Reduce, J2S_ArgMax/J2S_ArgMin, J2S_Cumulative, J2S_Sort (csrc/owned/reduce.hpp)
// and J2S_TopK (csrc/owned/topk.hpp). Defined in ops_reduce.cpp.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeReduce(const Node &);
OpPtr MakeArgMax(const Node &);
OpPtr MakeArgMin(const Node &);
OpPtr MakeCumulative(const Node &);
OpPtr MakeSort(const Node &);
OpPtr MakeTopK(const Node &);

} // namespace jax2sofie
