// jax2sofie's depthwise convolution in the channels-last layout JAX, Flax and Keras use:
//   X [N, S1..Sd, C] (d = 1, 2, 3), W [K1..Kd, M, C], optional B [C*M],
//   strides, pads (lo1..lod, hi1..hid; >= 0), dilations (of the kernel),
//   activation ("" | "relu" | "relu6").
// Output Y [N, Y1..Yd, C*M]: output channel c*M + j is input channel c convolved with W[..., j, c]
// (a convolution with feature_group_count = C and a channel multiplier M >= 1, as Keras'
// DepthwiseConv and Flax's Conv(feature_group_count=C) trace). The lowering re-packs JAX's kernel
// [K..., 1, C*M] to [K..., M, C] (a constant folds at conversion time), so that a kernel tap is one
// contiguous vector over the input channels.
//
// Why a kernel of its own: a depthwise convolution has no reduction over channels, so ConvNHWC's
// broadcast-one-input-times-a-kernel-row scheme and im2col + sgemm (J2S_Conv, one tiny product per
// group between two layout transposes) both waste most of their work. Here the channels are the
// vector lanes: each output pixel's channel vector is the sum over kernel taps of the input pixel's
// channel vector times the tap's kernel vector. A tile of kTile output pixels along the last spatial
// axis keeps kTile vector accumulators in registers; each tap loads one kernel vector that feeds
// kTile fused multiply-adds. With M > 1 each j of the multiplier is its own pass over the taps, and
// the output (channels c*M + j, a stride-M scatter) and bias are written and read lane by lane.
//
// Like ConvNHWC, the code is a kernel compiled once per instruction-set level (codegen::KernelFunctions)
// and the input is copied into a zero-bordered scratch buffer (borders zeroed once) when padded.
#pragma once

#include "codegen.hpp"
#include "conv_channels_last.hpp"

#include <sstream>

namespace jax2sofie {

class ConvDepthwiseOperator final : public ChannelsLastConvOperator {
public:
   ConvDepthwiseOperator(std::vector<std::string> inputs, std::string output, ConvParams p)
      : ChannelsLastConvOperator("J2S_ConvDepthwise", std::move(inputs), std::move(output), std::move(p))
   {
   }

   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint", "cstring"}; }

   std::string GenerateSessionMembersCode(std::string opName) override
   {
      std::string kernel = OwnedOperator::GenerateSessionMembersCode(opName);
      if (!Padded())
         return kernel;
      return PaddedMember(Prod(PaddedSizes(fS, fP.pads)) * fC) + kernel;
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const std::string kind = "J2S_ConvDepthwise";
      const auto &x = in.at(0).shape;
      const auto &w = in.at(1).shape;
      const auto ws = ReadInputAndKernelSizes(kind, in); // K..., M, C
      fM = ws[fD];
      if (ws.back() != fC || fM < 1)
         throw std::runtime_error(kind + ": kernel " + SOFIE::ConvertDimShapeToString(w) + " does not fit input " +
                                  SOFIE::ConvertDimShapeToString(x) + " (kernel [K..., M, C])");
      if (fP.group != 1 && fP.group != fC)
         throw std::runtime_error(kind + ": group must be the number of input channels " + std::to_string(fC));
      CheckDirectGeometry(kind);
      if (in.size() == 4)
         throw std::runtime_error(kind + ": no residual input (inputs X, W and an optional bias)");
      if (in.size() == 3 && !(in[2].shape.size() == 1 && in[2].shape[0].dim == static_cast<std::size_t>(fC * fM)))
         throw std::runtime_error(kind + ": bias must have shape [" + std::to_string(fC * fM) + "]");
      fY = ConvOutputSizes(kind, fS, fK, fP);
      std::vector<SOFIE::Dim> y = {x[0]};
      for (auto v : fY)
         y.emplace_back(static_cast<std::size_t>(v));
      y.emplace_back(static_cast<std::size_t>(fC * fM));
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   bool UsesKernel() const override { return true; }

   std::vector<std::pair<std::string, std::string>> KernelExtraParameters() const override
   {
      if (!Padded())
         return {};
      return {{"float *j2s_pad", "session." + PaddedName() + ".data()"}};
   }

   /// Output pixels per tile: 8 accumulators, leaving registers for the kernel vector at every level.
   static constexpr std::int64_t kTile = 8;

   std::string KernelCode(const codegen::Isa &isa) override
   {
      const std::size_t d = fD;
      const std::int64_t o = fC * fM, ylast = fY[d - 1];
      std::vector<std::int64_t> pstride = RowMajorStrides(PaddedSizes(fS, fP.pads)); // of [PS..., C]
      for (auto &s : pstride)
         s *= fC;
      const std::string ind = "   ";
      std::ostringstream out;
      out << ind << "const float *j2s_w = " << In(1) << ";\n";
      out << ind << "for (std::size_t n = 0; n < static_cast<std::size_t>(" << InInfo(0).shape[0].GetVal() << "); n++) {\n";
      out << ind << "const float *x = " << In(0) << " + n * " << Prod(fS) * fC << ";\n";
      out << ind << "float *y = " << Out(0) << " + n * " << Prod(fY) * o << ";\n";
      out << ind << "const float *xp = x;\n";
      if (Padded())
         out << PaddedCopyCode(fS, fC, fP.pads, pstride, ind);
      std::string rowOffset = "0", pixel = "0";
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string yi = "y" + std::to_string(i);
         out << ind << "for (std::int64_t " << yi << " = 0; " << yi << " < " << fY[i] << "; " << yi << "++)\n";
         rowOffset += " + " + yi + " * " + std::to_string(fP.strides[i] * pstride[i]);
         pixel = "(" + pixel + ") * " + std::to_string(fY[i]) + " + " + yi;
      }
      out << ind << "{\n";
      out << ind << "   const float *xrow0 = xp + " << rowOffset << ";\n";
      out << ind << "   const std::int64_t pix = (" << pixel << ") * " << ylast << ";\n";
      auto tile = [&](std::int64_t width) {
         std::ostringstream t;
         t << ind << "   {\n";
         t << ind << "      const float *xrow = xrow0 + ow * " << fP.strides[d - 1] * fC << ";\n";
         t << ind << "      float *yrow = y + (pix + ow) * " << o << ";\n";
         t << Tile(width, isa, pstride, ind + "      ");
         t << ind << "   }\n";
         return t.str();
      };
      out << ind << "   std::int64_t ow = 0;\n";
      if (ylast >= kTile)
         out << ind << "   for (; ow + " << kTile << " <= " << ylast << "; ow += " << kTile << ")\n" << tile(kTile);
      if (ylast % kTile)
         out << tile(ylast % kTile);
      out << ind << "}\n";
      out << ind << "}\n"; // n
      return out.str();
   }

private:
   /// One tile of `width` output pixels: every vector block of input channels, every multiplier index.
   std::string Tile(std::int64_t width, const codegen::Isa &isa, const std::vector<std::int64_t> &pstride,
                    const std::string &ind) const
   {
      const std::int64_t full = fC / isa.width;
      std::ostringstream out;
      out << ind << "constexpr int T = " << width << ";\n";
      if (full > 0) {
         out << ind << "for (std::int64_t cb = 0; cb < " << full * isa.width << "; cb += " << isa.width << ") {\n";
         out << Block({0, isa.width, isa.width}, "cb", pstride, ind + "   ");
         out << ind << "}\n";
      }
      for (const auto &b : codegen::VectorBlocks(fC, isa.width)) {
         if (b.first < full * isa.width)
            continue;
         out << ind << "{\n" << Block(b, std::to_string(b.first), pstride, ind + "   ") << ind << "}\n";
      }
      return out.str();
   }

   /// The code of one vector block of input channels starting at channel `first` (a C++ expression).
   std::string Block(const codegen::VectorBlock &block, const std::string &first, const std::vector<std::int64_t> &pstride,
                     const std::string &ind) const
   {
      const std::size_t d = fD;
      const std::string vf = codegen::VectorType(block.width), o = std::to_string(fC * fM);
      const std::string unroll = "#pragma GCC unroll 16\n";
      const std::vector<std::int64_t> kstride = RowMajorStrides(fK);
      const bool scatter = fM > 1; // output channels c*M + j: a stride-M scatter of the lanes
      std::ostringstream out;
      std::string in = ind;
      if (fM > 1) {
         out << ind << "for (std::int64_t j = 0; j < " << fM << "; j++) {\n";
         in += "   ";
      }
      const std::string j = fM > 1 ? "j" : "0";
      out << in << vf << " acc[T];\n";
      out << unroll << in << "for (int t = 0; t < T; t++) acc[t] = " << vf << "{};\n";
      std::string xoff = "0", koff = "0";
      std::string kin = in;
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string k = "k" + std::to_string(i);
         out << kin << "for (std::int64_t " << k << " = 0; " << k << " < " << fK[i] << "; " << k << "++)\n";
         xoff += " + " + k + " * " + std::to_string(fP.dilations[i] * pstride[i]);
         koff += " + " + k + " * " + std::to_string(kstride[i]);
      }
      out << kin << "for (std::int64_t kl = 0; kl < " << fK[d - 1] << "; kl++) {\n";
      out << kin << "   const float *xs = xrow + " << xoff << " + kl * " << fP.dilations[d - 1] * fC << " + " << first
          << ";\n";
      out << kin << "   " << codegen::VectorLoad(block, "wv", "j2s_w + ((" + koff + " + kl) * " + std::to_string(fM) + " + " + j +
                                                    ") * " + std::to_string(fC) + " + " + first)
          << "\n";
      out << unroll << kin << "   for (int t = 0; t < T; t++) {\n";
      out << kin << "      " << codegen::VectorLoad(block, "xv", "xs + t * " + std::to_string(fP.strides[d - 1] * fC))
          << "\n";
      // (the structs other compilers get have no vector product: lane by lane there)
      out << "#if defined(__GNUC__) || defined(__clang__)\n";
      out << kin << "      acc[t] += wv * xv;\n";
      out << "#else\n";
      out << kin << "      for (int l = 0; l < " << block.width << "; l++) acc[t].v[l] += wv.v[l] * xv.v[l];\n";
      out << "#endif\n";
      out << kin << "   }\n";
      out << kin << "}\n";
      // bias, activation, store
      if (fInputs.size() >= 3) {
         if (scatter) {
            out << in << vf << " bv{};\n";
            out << in << "for (int l = 0; l < " << block.lanes << "; l++) bv[l] = " << In(2) << "[(" << first
                << " + l) * " << fM << " + j];\n";
         } else {
            out << in << codegen::VectorLoad(block, "bv", In(2) + " + " + first) << "\n";
         }
      }
      out << unroll << in << "for (int t = 0; t < T; t++) {\n";
      out << in << "   " << vf << " a = acc[t];\n";
      if (fInputs.size() >= 3)
         out << in << "   a += bv;\n";
      if (fP.activation == "relu" || fP.activation == "relu6")
         out << in << "   " << codegen::VectorRelu("a", block.width) << "\n";
      if (fP.activation == "relu6")
         out << in << "   " << VectorMinSix("a", block.width) << "\n";
      if (scatter)
         out << in << "   for (int l = 0; l < " << block.lanes << "; l++) yrow[t * " << o << " + (" << first << " + l) * "
             << fM << " + j] = a[l];\n";
      else
         out << in << "   " << codegen::VectorStore(block, "yrow + t * " + o + " + " + first, "a") << "\n";
      out << in << "}\n";
      if (fM > 1)
         out << ind << "}\n";
      return out.str();
   }

   std::int64_t fM = 1; // channel multiplier: output channels C * M
};

} // namespace jax2sofie
