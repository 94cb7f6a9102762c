// Factories of the control-flow ops (csrc/owned/while_loop.hpp).
#include "ops_control.hpp"

#include "owned/while_loop.hpp"

#include <cstdint>

namespace jax2sofie {

// J2S_While: inputs [the sub-models' other inputs..., the initial carries (last, one per output)];
// cond_model, body_model (str: the sub-models' names, their code in namespace SOFIE_<name>);
// cond_inputs, body_inputs (list[int]: per input of the sub-model, the index of the op's input; a
// sub-model input of a symbolic shape has that shape here too, which gives its shape parameters);
// body_outputs (list[int]: per carry, the body output holding its next value, -1 when the
// body returns it unchanged); max_trips (int: the most steps before the code throws); where (str:
// the user's line, for that error). Any dtype.
OpPtr MakeWhile(const Node &n)
{
   n.ExpectInputs(1, SIZE_MAX);
   WhileOperator::Spec spec;
   spec.cond = {n.Str("cond_model"), n.Ints("cond_inputs")};
   spec.body = {n.Str("body_model"), n.Ints("body_inputs")};
   spec.bodyOutputs = n.Ints("body_outputs");
   spec.maxTrips = n.Int("max_trips");
   spec.where = n.Str("where", "");
   if (spec.bodyOutputs.size() != n.outputs.size())
      throw NodeError("body_outputs needs one entry per output (carry)");
   return std::make_unique<WhileOperator>(std::move(spec), n.inputs, n.outputs);
}

} // namespace jax2sofie
