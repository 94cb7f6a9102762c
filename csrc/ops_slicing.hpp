// Factories of the slicing ops (ops_slicing.cpp): J2S_Slice, J2S_DynamicSlice, J2S_DynamicUpdateSlice,
// J2S_BroadcastTo (broadcasting to a batch-sized shape) and J2S_BatchReshape (a reshape of the batch).
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeSlice(const Node &);
OpPtr MakeDynamicSlice(const Node &);
OpPtr MakeDynamicUpdateSlice(const Node &);
OpPtr MakeBroadcastTo(const Node &);
OpPtr MakeBatchReshape(const Node &);

} // namespace jax2sofie
