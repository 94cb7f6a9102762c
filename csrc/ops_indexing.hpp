// Factories of the project-owned indexing and data-movement ops (csrc/owned/indexing.hpp):
// J2S_Gather, J2S_Scatter, J2S_Pad, J2S_Reverse, J2S_Tile, J2S_Split. Defined in ops_indexing.cpp.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeJ2SGather(const Node &);
OpPtr MakeJ2SScatter(const Node &);
OpPtr MakeJ2SPad(const Node &);
OpPtr MakeJ2SReverse(const Node &);
OpPtr MakeJ2STile(const Node &);
OpPtr MakeJ2SSplit(const Node &);

} // namespace jax2sofie
