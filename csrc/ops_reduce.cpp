// Factories of the reduction, scan and sort ops (see ops_reduce.hpp).
#include "ops_reduce.hpp"

#include "owned/reduce.hpp"

#include "SOFIE/ROperator_TopK.hxx"

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

// TopK (SOFIE's, not bound by PySofie): inputs [X, K], K an INT64 initialized tensor of one value;
// outputs [values, indices (INT64)]; axis (int, -1), largest (0|1, 1), sorted (0|1, 1).
// dtype float32|int32|int64. Ties: the lower index first; float NaN sorts above +inf.
OpPtr MakeTopK(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(2);
   const int axis = static_cast<int>(n.Int("axis", -1));
   const int largest = n.Flag("largest", true) ? 1 : 0;
   const int sorted = n.Flag("sorted", true) ? 1 : 0;
   return WithDType<float, std::int32_t, std::int64_t>(n, [&](auto t) -> OpPtr {
      using T = typename decltype(t)::type;
      return std::make_unique<ROperator_TopK<T>>(axis, largest, sorted, n.inputs[1], n.inputs[0], n.outputs[0],
                                                 n.outputs[1]);
   });
}

} // namespace jax2sofie
