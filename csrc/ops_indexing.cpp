// Factories of the indexing and data-movement ops (see ops_indexing.hpp). The operators are not
// templated: the generated code takes its element types from the model's tensors, so `dtype` (the
// first input's type) is only checked.
#include "ops_indexing.hpp"

#include "owned/gather.hpp"
#include "owned/pad.hpp"
#include "owned/reverse.hpp"
#include "owned/scatter.hpp"
#include "owned/split.hpp"
#include "owned/tile.hpp"

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace jax2sofie {

#define J2S_ANY float, double, std::int32_t, std::int64_t, bool

// J2S_Gather: inputs [operand, indices (int32|int64, index vector last)]; offset_dims,
// collapsed_slice_dims, start_index_map, operand_batching_dims, start_indices_batching_dims,
// slice_sizes (list[int], required; a slice size -1 is the whole operand dim); mode (clip|fill,
// required); fill_value (str, "0": the value of out-of-bounds windows with mode fill, as Python's
// repr of a float: "nan", "-inf", "-2147483648.0" are valid); wrap_negative (0|1, 0: a negative index
// has the operand dim added first, as numpy indexing). Any dtype.
OpPtr MakeGather(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   GatherOperator::Dims d{n.Ints("offset_dims"),           n.Ints("collapsed_slice_dims"),
                          n.Ints("start_index_map"),       n.Ints("operand_batching_dims"),
                          n.Ints("start_indices_batching_dims"), n.Ints("slice_sizes")};
   const std::string mode = n.Str("mode");
   if (mode != "clip" && mode != "fill")
      throw NodeError("mode must be clip or fill, not '" + mode + "'");
   const std::string fillText = n.Str("fill_value", "0");
   double fillValue = 0;
   try {
      std::size_t used = 0;
      fillValue = std::stod(fillText, &used);
      if (used != fillText.size())
         throw std::invalid_argument(fillText);
   } catch (const std::logic_error &) {
      throw NodeError("fill_value must be a number as text, not '" + fillText + "'");
   }
   return std::make_unique<GatherOperator>(std::move(d), mode == "fill", fillValue, n.Flag("wrap_negative", false),
                                           n.inputs[0], n.inputs[1], n.Output());
}

// J2S_Scatter: inputs [operand, indices (int32|int64, index vector last), updates (operand's type)];
// update_window_dims, inserted_window_dims, scatter_dims_to_operand_dims, operand_batching_dims,
// scatter_indices_batching_dims (list[int], required); combine (set|add|sub|mul|min|max, required);
// mode (clip|drop, required). Any dtype (bool: set only).
OpPtr MakeScatter(const Node &n)
{
   n.ExpectInputs(3);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   ScatterOperator::Dims d{n.Ints("update_window_dims"), n.Ints("inserted_window_dims"),
                           n.Ints("scatter_dims_to_operand_dims"), n.Ints("operand_batching_dims"),
                           n.Ints("scatter_indices_batching_dims")};
   const std::string mode = n.Str("mode");
   if (mode != "clip" && mode != "drop")
      throw NodeError("mode must be clip or drop, not '" + mode + "'");
   return std::make_unique<ScatterOperator>(std::move(d), n.Str("combine"), mode == "clip", n.inputs[0], n.inputs[1],
                                            n.inputs[2], n.Output());
}

// J2S_Pad: inputs [X, padding value (one element of X's type)]; low, high, interior (list[int],
// required, one per dim; low/high may be negative). Any dtype.
OpPtr MakePad(const Node &n)
{
   n.ExpectInputs(2);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   return std::make_unique<PadOperator>(n.Ints("low"), n.Ints("high"), n.Ints("interior"), n.inputs[0], n.inputs[1],
                                        n.Output());
}

// J2S_Reverse: input [X]; axes (list[int], required, non-negative). Any dtype.
OpPtr MakeReverse(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   return std::make_unique<ReverseOperator>(n.Ints("axes"), n.inputs[0], n.Output());
}

// J2S_Tile: input [X]; reps (list[int] >= 1, required, one per dim). Any dtype.
OpPtr MakeTile(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<J2S_ANY>(n);
   return std::make_unique<TileOperator>(n.Ints("reps"), n.inputs[0], n.Output());
}

// J2S_Split: input [X]; one output per piece; axis (int, required; negative counts from the end),
// sizes (list[int], required, adding up to the axis length). Any dtype.
OpPtr MakeSplit(const Node &n)
{
   n.ExpectInputs(1);
   const auto sizes = n.Ints("sizes");
   n.ExpectOutputs(sizes.size());
   CheckDType<J2S_ANY>(n);
   return std::make_unique<SplitOperator>(n.Int("axis"), sizes, n.inputs[0], n.outputs);
}

} // namespace jax2sofie
