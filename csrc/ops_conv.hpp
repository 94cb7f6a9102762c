// Factories of the convolution family: jax2sofie's own convolutions (im2col + sgemm in NC layout,
// a direct kernel in channels-last layout, a depthwise one) and window reduction (pooling), all project-owned
// operators (csrc/owned/conv.hpp, conv_nhwc.hpp, conv_depthwise.hpp, pool.hpp).
#pragma once

#include "node.hpp"

namespace jax2sofie {

OpPtr MakeConv(const Node &);
OpPtr MakeConvNHWC(const Node &);
OpPtr MakeConvDepthwise(const Node &);
OpPtr MakeConvTransposeNHWC(const Node &);
OpPtr MakePool(const Node &);

} // namespace jax2sofie
