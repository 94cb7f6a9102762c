// Factories of the project-owned indexing and data-movement ops J2S_Gather, J2S_Scatter, J2S_Pad,
// J2S_Reverse, J2S_Tile, J2S_Split (one operator per file: csrc/owned/gather.hpp, scatter.hpp, pad.hpp,
// reverse.hpp, tile.hpp, split.hpp). Defined in ops_indexing.cpp.
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeGather(const Node &);
OpPtr MakeScatter(const Node &);
OpPtr MakePad(const Node &);
OpPtr MakeReverse(const Node &);
OpPtr MakeTile(const Node &);
OpPtr MakeSplit(const Node &);

} // namespace jax2sofie
