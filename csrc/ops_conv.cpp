// Factories of the convolution family (see ops_conv.hpp).
#include "ops_conv.hpp"

#include "owned/conv.hpp"
#include "owned/conv_depthwise.hpp"
#include "owned/conv_nhwc.hpp"
#include "owned/conv_nhwc_gemm.hpp"
#include "owned/conv_transpose_nhwc.hpp"
#include "owned/pool.hpp"

namespace jax2sofie {

namespace {

// The attributes the convolutions take: strides, dilations, lhs_dilations (list[int], one per
// spatial axis, required), pads (list[int], lo... then hi..., required), group (int, 1),
// activation ("" | "relu", ""; also "relu6" where `relu6`: the direct kernels).
ConvParams ConvParamsOf(const Node &n, bool relu6 = false, std::size_t maxInputs = 4)
{
   n.ExpectInputs(2, maxInputs);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   ConvParams p;
   p.strides = n.Ints("strides");
   p.pads = n.Ints("pads");
   p.dilations = n.Ints("dilations");
   p.lhs_dilations = n.Ints("lhs_dilations");
   p.group = n.Int("group", 1);
   p.activation = n.Str("activation", "");
   if (!p.activation.empty() && p.activation != "relu" && !(relu6 && p.activation == "relu6"))
      throw NodeError("unknown activation '" + p.activation + "' (activations: \"\", relu" +
                      (relu6 ? ", relu6)" : ")"));
   return p;
}

} // namespace

// J2S_Conv: inputs [X, W], [X, W, B] or [X, W, B, R] in NC<spatial> / O I<spatial> layout; float32
//   (R: a residual of the output's shape, added before the activation).
OpPtr MakeConv(const Node &n)
{
   return std::make_unique<ConvOperator>(n.inputs, n.Output(), ConvParamsOf(n));
}

// J2S_ConvNHWC: the same inputs in N<spatial>C / <spatial> I O layout; group 1, lhs_dilations 1, pads >= 0.
//   method ("direct" | "gemm", "direct"): the direct kernel (conv_nhwc.hpp) or im2col + sgemm
//   (conv_nhwc_gemm.hpp); the same numbers up to the order of the sums.
//   kernel_block (0 | 16, 0) and features (O): with 16, W is [ceil(O/16), K..., C, 16] (direct only).
//   input_channels ([c0, c1, ...], none): the input is the concatenation along channels of X and the
//   inputs after B (and R): [X, W, B, R?, X1, ...] (direct only).
OpPtr MakeConvNHWC(const Node &n)
{
   const std::string method = n.Str("method", "direct");
   const std::int64_t block = n.Int("kernel_block", 0);
   if (block != 0 && block != ConvNHWCOperator::kKernelBlock)
      throw NodeError("kernel_block must be 0 or " + std::to_string(ConvNHWCOperator::kKernelBlock) + ", not " +
                      std::to_string(block));
   if (block != 0 && method != "direct")
      throw NodeError("a blocked kernel (kernel_block " + std::to_string(block) + ") is read by the direct method only");
   const std::int64_t features = block ? n.Int("features") : 0;
   const std::vector<std::int64_t> parts = n.Ints("input_channels", {});
   if (!parts.empty() && method != "direct")
      throw NodeError("a concatenated input (input_channels) is read by the direct method only");
   if (block && features <= 0)
      throw NodeError("features must be positive with a blocked kernel, not " + std::to_string(features));
   if (method == "gemm")
      return std::make_unique<ConvNHWCGemmOperator>(n.inputs, n.Output(), ConvParamsOf(n, true));
   if (method != "direct")
      throw NodeError("unknown method '" + method + "' (methods: direct, gemm)");
   const std::size_t extraParts = parts.empty() ? 0 : parts.size() - 1;
   if (extraParts > 0 && n.inputs.size() < 3 + extraParts)
      throw NodeError("a concatenated input of " + std::to_string(parts.size()) +
                      " parts takes X, W, B (and R) and then the other " + std::to_string(extraParts) +
                      " parts, not " + std::to_string(n.inputs.size()) + " inputs");
   return std::make_unique<ConvNHWCOperator>(n.inputs, n.Output(), ConvParamsOf(n, true, 4 + extraParts), features,
                                             parts);
}

// J2S_ConvDepthwise: inputs [X, W] or [X, W, B] in N<spatial>C / <spatial> M C layout (output channel
//   c*M + j from input channel c and W[..., j, c]); group (C or 1), lhs_dilations 1, pads >= 0.
OpPtr MakeConvDepthwise(const Node &n)
{
   n.ExpectInputs(2, 3);
   return std::make_unique<ConvDepthwiseOperator>(n.inputs, n.Output(), ConvParamsOf(n, true));
}

// J2S_ConvTransposeNHWC: the same inputs in N<spatial>C / <spatial> I O layout; group 1, strides and
//   dilations 1, lhs_dilations >= 1 (a transposed convolution), pads of any sign.
OpPtr MakeConvTransposeNHWC(const Node &n)
{
   return std::make_unique<ConvTransposeNHWCOperator>(n.inputs, n.Output(), ConvParamsOf(n));
}

// J2S_Pool: input [X] of any rank; float32.
//   window, strides, dilations (list[int], one per axis, required), pads (lo... then hi...,
//   required), mode ("max" | "min" | "sum", required), init (float, required).
OpPtr MakePool(const Node &n)
{
   n.ExpectInputs(1);
   n.ExpectOutputs(1);
   CheckDType<float>(n);
   PoolOperator::Params p;
   p.window = n.Ints("window");
   p.strides = n.Ints("strides");
   p.pads = n.Ints("pads");
   p.dilations = n.Ints("dilations");
   p.mode = n.Str("mode");
   p.init = n.Float("init");
   if (p.mode != "max" && p.mode != "min" && p.mode != "sum")
      throw NodeError("mode must be max, min or sum, not '" + p.mode + "'");
   return std::make_unique<PoolOperator>(n.inputs[0], n.Output(), p);
}

} // namespace jax2sofie
