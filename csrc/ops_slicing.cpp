// Factories of the project-owned slicing operators (csrc/owned/slicing.hpp).
#include "ops_slicing.hpp"

#include "owned/batch_broadcast.hpp"
#include "owned/batch_reshape.hpp"
#include "owned/slicing.hpp"

#include <climits>
#include <cstdint>

namespace jax2sofie {

#define J2S_ANY_ELEMENT float, std::int32_t, std::int64_t, bool

// J2S_Slice: input [data]; starts, steps, sizes (list[int], one per axis; sizes -1 = whole axis).
// dtype float32|int32|int64|bool.
OpPtr MakeSlice(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY_ELEMENT>(n);
   return std::make_unique<SliceOperator>("J2S_Slice", n.inputs, n.Output(), n.Ints("starts"), n.Ints("steps"),
                                          n.Ints("sizes"), std::vector<std::int64_t>{});
}

// J2S_DynamicSlice: inputs [data, index_0, ...] (scalar int32/int64 starts, clamped into
// [0, dim - size]); dynamic_axes (list[int]: the axis of each index input), starts (static start of
// the other axes), sizes (-1 = whole axis). dtype float32|int32|int64|bool.
OpPtr MakeDynamicSlice(const Node &n)
{
   n.ExpectInputs(1, SIZE_MAX);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY_ELEMENT>(n);
   const auto starts = n.Ints("starts");
   return std::make_unique<SliceOperator>("J2S_DynamicSlice", n.inputs, n.Output(), starts,
                                          std::vector<std::int64_t>(starts.size(), 1), n.Ints("sizes"),
                                          n.Ints("dynamic_axes"));
}

// J2S_DynamicUpdateSlice: inputs [operand, update, index_0, ...]; starts (list[int], the start of
// every axis without an index input), dynamic_axes (the axis of each index input). Starts are
// clamped into [0, dim - update dim]. dtype float32|int32|int64|bool.
OpPtr MakeDynamicUpdateSlice(const Node &n)
{
   n.ExpectInputs(2, SIZE_MAX);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY_ELEMENT>(n);
   return std::make_unique<DynamicUpdateSliceOperator>(n.inputs, n.Output(), n.Ints("starts"),
                                                       n.Ints("dynamic_axes", {}));
}

// J2S_BroadcastTo: input [X]; output dim a is scale[a] * param + offset[a] (param: the batch Dim's
// name, "bs"); X has the output's rank and size 1 on every broadcast axis. The dynamic-batch step
// (dynamic.py) emits it for constants and broadcasts whose shape depends on the batch.
// dtype float32|int32|int64|bool.
OpPtr MakeBroadcastTo(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY_ELEMENT>(n);
   return std::make_unique<BroadcastToOperator>(n.inputs[0], n.Output(), n.Ints("scale"), n.Ints("offset"),
                                                n.Str("param"));
}

// J2S_BatchReshape: input [X]; output dim a is scale[a] * param + offset[a] (param: the batch Dim's
// name, "bs"), with as many elements as X. The dynamic-batch step (dynamic.py) emits it for a reshape
// that merges the batch with other axes or splits it off again. dtype float32|int32|int64|bool.
OpPtr MakeBatchReshape(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY_ELEMENT>(n);
   return std::make_unique<BatchReshapeOperator>(n.inputs[0], n.Output(), n.Ints("scale"), n.Ints("offset"),
                                                 n.Str("param"));
}

} // namespace jax2sofie
