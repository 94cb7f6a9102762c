// Factories of the reduction, scan and sort ops (see ops_reduce.hpp).
#include "ops_reduce.hpp"

#include "owned/reduce.hpp"
#include "owned/topk.hpp"

#include <climits>
#include <cstdint>

namespace jax2sofie {

using namespace SOFIE;

#define J2S_ANY float, double, std::int32_t, std::int64_t, bool
#define J2S_NUMERIC float, double, std::int32_t, std::int64_t

// J2S_Reduce: input [X]; mode (sum|prod|max|min|and|or|xor, required), axes (list[int], required),
// keepdims (0|1, 0). dtype: any (and/or/xor need bool, the others a number).
OpPtr MakeReduce(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   return std::make_unique<ReduceOperator>(n.Str("mode"), n.Ints("axes"), n.Flag("keepdims", false), n.inputs[0],
                                           n.Output());
}

static OpPtr MakeArgReduce(const Node &n, bool isMax)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_NUMERIC>(n);
   const std::string index = n.Str("index_dtype", "int32");
   ETensorType indexType;
   if (index == "int32")
      indexType = ETensorType::INT32;
   else if (index == "int64")
      indexType = ETensorType::INT64;
   else
      throw NodeError("index_dtype must be int32 or int64, not '" + index + "'");
   return std::make_unique<ArgReduceOperator>(isMax, n.Int("axis"), indexType, n.Flag("keepdims", false), n.inputs[0],
                                              n.Output());
}

// J2S_ArgMax / J2S_ArgMin: input [X]; axis (int, required), index_dtype (int32|int64, int32),
// keepdims (0|1, 0). dtype float32|float64|int32|int64.
OpPtr MakeArgMax(const Node &n) { return MakeArgReduce(n, true); }
OpPtr MakeArgMin(const Node &n) { return MakeArgReduce(n, false); }

// J2S_Cumulative: input [X]; mode (sum|prod|max|min|logsumexp, required), axis (int, required),
// reverse (0|1, 0). dtype float32|float64|int32|int64 (logsumexp: floats).
OpPtr MakeCumulative(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_NUMERIC>(n);
   return std::make_unique<CumulativeOperator>(n.Str("mode"), n.Int("axis"), n.Flag("reverse", false), n.inputs[0],
                                               n.Output());
}

// J2S_Sort: inputs [X1, ...] (>= 1, one shape); outputs: one per input plus one per entry of
// iota_outputs, at those positions (int32 sorted positions, argsort's indices); axis (int, required),
// num_keys (int, 1), iota_outputs (list[int], []). dtype names X1's type (any); the operands may have
// different types.
OpPtr MakeSort(const Node &n)
{
   const auto iota = n.Ints("iota_outputs", {});
   n.ExpectInputs(1, SIZE_MAX);
   n.ExpectOutputs(n.inputs.size() + iota.size());
   CheckDType<J2S_ANY>(n);
   return std::make_unique<SortOperator>(n.Int("axis"), n.Int("num_keys", 1), iota, n.inputs, n.outputs);
}

// J2S_TopK: input [X]; outputs [values (X's type), indices (int32)]; k (int >= 1, required), axis (int,
// -1), largest (0|1, 1: the k largest; 0: the k smallest). dtype float32|float64|int32|int64. Sorted,
// ties: the lower index first; floats in lax's total order (NaN above inf, -0.0 below 0.0).
OpPtr MakeTopK(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(2);
   CheckDType<J2S_NUMERIC>(n);
   return std::make_unique<TopKOperator>(n.Int("k"), n.Int("axis", -1), n.Flag("largest", true), n.inputs[0],
                                         n.outputs[0], n.outputs[1]);
}

} // namespace jax2sofie
