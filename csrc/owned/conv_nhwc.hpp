// jax2sofie's direct convolution in the channels-last layout JAX, Flax and Keras use:
//   X [N, S1..Sd, C] (d = 1, 2, 3), W [K1..Kd, C, O] (JAX's HWIO kernel as it is), optional B [O],
//   optional R [N, Y1..Yd, O] (with B): a residual added before the activation (a ResNet skip),
//   strides, pads (lo1..lod, hi1..hid; >= 0), dilations (of the kernel), activation ("" | "relu" | "relu6").
// No groups and no input (lhs) dilation: those stay with J2S_Conv (im2col + sgemm, NC layout).
//
// Why a direct kernel and not im2col + sgemm: for the channel counts of the models users run in
// C++ (16..256) the patch matrix costs as much as the product, and sgemm with 16..64 output columns
// runs far from peak. Here each output tile of TW pixels along the last spatial axis x one vector of
// output channels (a smaller one for the last channels) is held in TW vector registers while the
// loop over (kernel position, input channel) broadcasts one input value per pixel and multiplies it
// with one vector-wide row of the kernel: one
// vector load feeds TW fused multiply-adds, the input tile stays in L1, no patch matrix exists, and
// the output is written once with bias, residual and ReLU applied (measured on AVX-512: 3x3 convs
// of 16..256 channels at ~100 GFLOP/s, 1.1-1.8x faster than im2col + OpenBLAS sgemm).
//
// The code is a kernel compiled once per instruction-set level (codegen::KernelFunctions: AVX-512,
// AVX2, the build's own) and chosen at run time; each level works in vectors of its register width
// (16, 8 or 4 channels) with tiles of 8 pixels. The vector types are GCC/Clang's vector extension;
// other compilers get structs of floats with the same operators: the same numbers, without the speed.
// Padding: the input is copied into a zero-bordered buffer (borders zeroed once) so the loops carry
// no bounds checks.
//
// Blocked kernel (kernel_block = 16, set by passes/conv_kernels.py for a constant kernel of more than
// 16 output channels): W is [ceil(O/16), K1..Kd, C, 16], the output channels in blocks of 16 (the last
// one zero-padded), so the vector of kernel row that each input channel feeds is the next 64 bytes and
// not O floats further on. In the [K..., C, O] layout every load of a run over C is on its own cache
// line O * 4 bytes from the previous one: with O = 256 those lines fall into 4 of the 64 sets of a
// 48 KiB L1 and evict each other (measured on AVX-512, 3x3 over 256 channels at 8x8: 64 GFLOP/s, and
// 2.5x faster blocked; 64 channels at 32x32 1.3-1.8x). Every level's vector block lies inside one
// block of 16 (16 is a multiple of each width, and blocks start at multiples of their width).
//
// Concatenated input (input_channels = [c0, c1, ...], set by passes/conv_concat.py): the input is the
// concatenation along channels of X and the inputs after the residual, [X, W, B, R?, X1, X2, ...]
// (X of c0 channels, X1 of c1, ...; B always present). A U-Net's skip concat then costs no pass of its
// own: the parts are copied side by side into the padded buffer, a copy a padded convolution makes
// anyway (an unpadded one gets that buffer for it).
#pragma once

#include "codegen.hpp"
#include "conv_channels_last.hpp"

#include <algorithm>
#include <sstream>

namespace jax2sofie {

class ConvNHWCOperator final : public ChannelsLastConvOperator {
public:
   /// `features` > 0: W is blocked (see above) and holds that many output channels. `inputChannels`,
   /// with two or more entries: the input is the concatenation of X and the inputs after B (and R).
   ConvNHWCOperator(std::vector<std::string> inputs, std::string output, ConvParams p, std::int64_t features = 0,
                    std::vector<std::int64_t> inputChannels = {})
      : ChannelsLastConvOperator("J2S_ConvNHWC", std::move(inputs), std::move(output), std::move(p)),
        fBlockedFeatures(features), fParts(std::move(inputChannels))
   {
      if (fParts.size() == 1)
         fParts.clear();
   }

   /// The output channels per block of a blocked kernel.
   static constexpr std::int64_t kKernelBlock = 16;

   std::vector<std::string> GetStdLibs() override
   {
      return {"cmath", "algorithm", "limits", "cstdint", "cstring", "type_traits"};
   }

   std::string GenerateSessionMembersCode(std::string opName) override
   {
      std::string kernel = OwnedOperator::GenerateSessionMembersCode(opName);
      if (!Padded())
         return kernel;
      return PaddedMember(Prod(PaddedShape()) * fC) + kernel;
   }

protected:
   bool Padded() const override { return !fParts.empty() || ChannelsLastConvOperator::Padded(); }

   /// The number of inputs that are parts of a concatenated input after X.
   std::size_t ExtraParts() const { return fParts.empty() ? 0 : fParts.size() - 1; }
   bool HasResidual() const { return fInputs.size() - ExtraParts() == 4; }
   bool HasBias() const { return fInputs.size() - ExtraParts() >= 3; }

   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      std::vector<TensorInfo> own(in.begin(), in.end() - ExtraParts()); // X (all parts), W, B, R
      if (!fParts.empty())
         own[0] = ConcatenatedInput(in);
      return {{SOFIE::ETensorType::FLOAT, InferConv(own)}};
   }

private:
   /// X, W, B, R with a blocked W read as the [K..., C, O] it holds.
   std::vector<SOFIE::Dim> InferConv(const std::vector<TensorInfo> &in)
   {
      if (fBlockedFeatures == 0)
         return InferKernelLastConv("J2S_ConvNHWC", in);
      // a blocked W [B, K..., C, 16]: checked here, then read as the [K..., C, O] it holds
      const auto &w = in.at(1).shape;
      const std::int64_t blocks = (fBlockedFeatures + kKernelBlock - 1) / kKernelBlock;
      if (w.size() < 4 || w[0].isParam || w.back().isParam || static_cast<std::int64_t>(w[0].dim) != blocks ||
          static_cast<std::int64_t>(w.back().dim) != kKernelBlock)
         throw std::runtime_error("J2S_ConvNHWC: a kernel blocked by " + std::to_string(kKernelBlock) + " for " +
                                  std::to_string(fBlockedFeatures) + " output channels must be [" +
                                  std::to_string(blocks) + ", K..., C, " + std::to_string(kKernelBlock) + "], not " +
                                  SOFIE::ConvertDimShapeToString(w));
      std::vector<TensorInfo> unblocked = in;
      unblocked[1].shape.assign(w.begin() + 1, w.end() - 1);
      unblocked[1].shape.emplace_back(static_cast<std::size_t>(fBlockedFeatures));
      return InferKernelLastConv("J2S_ConvNHWC", unblocked);
   }

   /// The input of a concatenated input: the parts' shape with their channels summed, once each part
   /// is checked to be float32 [N, S..., c_i] like X.
   TensorInfo ConcatenatedInput(const std::vector<TensorInfo> &in) const
   {
      TensorInfo x = in.at(0);
      std::int64_t channels = 0;
      for (std::size_t i = 0; i < fParts.size(); i++) {
         const TensorInfo &part = i == 0 ? in.at(0) : in.at(in.size() - ExtraParts() + i - 1);
         const auto &s = part.shape;
         const bool fits = part.type == SOFIE::ETensorType::FLOAT && s.size() == x.shape.size() && !s.back().isParam &&
                           static_cast<std::int64_t>(s.back().dim) == fParts[i] && fParts[i] > 0 &&
                           std::equal(s.begin(), s.end() - 1, x.shape.begin(),
                                      [](const SOFIE::Dim &a, const SOFIE::Dim &b) { return a.GetVal() == b.GetVal(); });
         if (!fits)
            throw std::runtime_error("J2S_ConvNHWC: part " + std::to_string(i) + " of the concatenated input is " +
                                     SOFIE::ConvertDimShapeToString(s) + "; every part must be float32 [N, S..., c_i] "
                                     "with the first part's N and S and c_i = input_channels[i] = " +
                                     std::to_string(fParts[i]));
         channels += fParts[i];
      }
      x.shape.back() = SOFIE::Dim{static_cast<std::size_t>(channels)};
      return x;
   }

protected:
   bool UsesKernel() const override { return true; }

   std::vector<std::pair<std::string, std::string>> KernelExtraParameters() const override
   {
      if (!Padded())
         return {};
      return {{"float *j2s_pad", "session." + PaddedName() + ".data()"}};
   }

   /// Output tiles of kTile pixels along the last spatial axis (8 accumulators per block of channels,
   /// which leaves registers for the kernel row and the broadcast input at every level).
   static constexpr std::int64_t kTile = 8;

   /// Summation order of each output's dot product (over kernel positions x input channels): in runs,
   /// each accumulated from zero and then added to the total, so a rounding error is relative to the
   /// run's partial sum and not to the running total of every term before it. A run is one kernel
   /// position's channels, at most kMaxRun of them (3x3 over 32 channels: 9 runs of 32 instead of one
   /// chain of 288, about 2.5x less rounding error); with fewer than kMinRun channels (a first layer
   /// over RGB) it is a whole row of the innermost kernel axis, so that a run stays long enough for its
   /// T additions into the total to cost little next to its multiply-adds.
   static constexpr std::int64_t kMinRun = 16, kMaxRun = 64;

   std::string KernelCode(const codegen::Isa &isa) override
   {
      const std::size_t d = fD;
      const std::int64_t sprod = Prod(fS), yprod = Prod(fY), ylast = fY[d - 1];
      const std::vector<std::int64_t> ps = PaddedShape();
      std::vector<std::int64_t> pstride = RowMajorStrides(ps); // in elements of [PS..., C]
      for (auto &s : pstride)
         s *= fC;
      const std::string ind = "   ";
      std::ostringstream out;
      out << ind << "const float *j2s_w = " << In(1) << ";\n";
      out << ind << "for (std::size_t n = 0; n < static_cast<std::size_t>(" << InInfo(0).shape[0].GetVal() << "); n++) {\n";
      if (fParts.empty())
         out << ind << "const float *x = " << In(0) << " + n * " << sprod * fC << ";\n";
      for (std::size_t i = 0; i < fParts.size(); i++) {
         const std::size_t input = i == 0 ? 0 : fInputs.size() - ExtraParts() + i - 1;
         out << ind << "const float *x" << i << " = " << In(input) << " + n * " << sprod * fParts[i] << ";\n";
      }
      out << ind << "float *y = " << Out(0) << " + n * " << yprod * fO << ";\n";
      if (HasResidual())
         out << ind << "const float *r = " << In(3) << " + n * " << yprod * fO << ";\n";
      if (fParts.empty()) {
         out << ind << "const float *xp = x;\n";
         if (Padded())
            out << PaddedCopyCode(fS, fC, fP.pads, pstride, ind);
      } else {
         std::vector<CopiedPart> parts;
         for (std::size_t i = 0; i < fParts.size(); i++)
            parts.push_back({"x" + std::to_string(i), fParts[i]});
         out << ind << "const float *xp = nullptr;\n";
         out << PaddedCopyCode(fS, parts, fP.pads, pstride, ind);
      }
      // the outer output axes (all but the last spatial one), then the tiles of the last one
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
      const std::string xstep = std::to_string(fP.strides[d - 1] * fC);
      auto tile = [&](std::int64_t width) {
         std::ostringstream t;
         t << ind << "   {\n";
         t << ind << "      const float *xrow = xrow0 + ow * " << xstep << ";\n";
         t << ind << "      float *yrow = y + (pix + ow) * " << fO << ";\n";
         if (HasResidual())
            t << ind << "      const float *rrow = r + (pix + ow) * " << fO << ";\n";
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
   /// One output tile: `width` pixels along the last spatial axis, every output channel, in vector
   /// blocks of channels (codegen::VectorBlocks): the full ones of isa.width channels in a loop.
   std::string Tile(std::int64_t width, const codegen::Isa &isa, const std::vector<std::int64_t> &pstride,
                    const std::string &ind) const
   {
      const std::vector<std::int64_t> kstride = RowMajorStrides(fK);
      const std::vector<codegen::VectorBlock> blocks = codegen::VectorBlocks(fO, isa.width);
      const std::int64_t full = fO / isa.width;
      std::ostringstream out;
      out << ind << "constexpr int T = " << width << ";\n";
      if (full > 0) {
         out << ind << "for (std::int64_t ob = 0; ob < " << full * isa.width << "; ob += " << isa.width << ") {\n";
         out << Block({0, isa.width, isa.width}, "ob", pstride, kstride, ind + "   ");
         out << ind << "}\n";
      }
      for (const auto &b : blocks) {
         if (b.first < full * isa.width)
            continue;
         out << ind << "{\n" << Block(b, std::to_string(b.first), pstride, kstride, ind + "   ") << ind << "}\n";
      }
      return out.str();
   }

   /// The accumulate-and-store code of one vector block of output channels of a tile, starting at
   /// channel `first` (a C++ expression: the loop index of the full blocks, or a number).
   std::string Block(const codegen::VectorBlock &block, const std::string &first,
                     const std::vector<std::int64_t> &pstride, const std::vector<std::int64_t> &kstride,
                     const std::string &ind) const
   {
      const std::size_t d = fD;
      const std::string vf = codegen::VectorType(block.width);
      const std::string o = std::to_string(fO);
      std::ostringstream out;
      if (HasBias())
         out << ind << codegen::VectorLoad(block, "j2s_b", In(2) + " + " + first) << "\n";
      else
         out << ind << "const " << vf << " j2s_b{};\n";
      // Each pixel's dot product is summed in runs (see kMinRun): a run accumulates in acc from zero,
      // and each finished run is added to sum, which starts as the bias. The loops over the tile are
      // unrolled so that sum and acc live in registers (else GCC keeps them in memory and zeroes acc
      // with a rep stos at every run).
      const std::string unroll = "#pragma GCC unroll 16\n";
      out << ind << vf << " sum[T];\n";
      out << unroll << ind << "for (int t = 0; t < T; t++) sum[t] = j2s_b;\n";
      // the kernel rows of this block's channels: W + c * rowStride at kernel position 0
      const std::int64_t rowStride = fBlockedFeatures ? kKernelBlock : fO;
      if (fBlockedFeatures)
         out << ind << "const float *wb = j2s_w + (" << first << ") / " << kKernelBlock << " * "
             << Prod(fK) * fC * kKernelBlock << " + (" << first << ") % " << kKernelBlock << ";\n";
      else
         out << ind << "const float *wb = j2s_w + " << first << ";\n";
      std::string xoff = "0", koff = "0";
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string k = "k" + std::to_string(i);
         out << ind << "for (std::int64_t " << k << " = 0; " << k << " < " << fK[i] << "; " << k << "++)\n";
         xoff += " + " + k + " * " + std::to_string(fP.dilations[i] * pstride[i]);
         koff += " + " + k + " * " + std::to_string(kstride[i]);
      }
      auto startRun = [&](const std::string &in) {
         return in + vf + " acc[T];\n" + unroll + in + "for (int t = 0; t < T; t++) acc[t] = " + vf + "{};\n";
      };
      auto finishRun = [&](const std::string &in) {
         return unroll + in + "for (int t = 0; t < T; t++) sum[t] += acc[t];\n";
      };
      const bool runPerRow = fC < kMinRun;  // a run: the whole innermost kernel row
      const bool chunked = fC > kMaxRun;    // a run: at most kMaxRun channels of one kernel position
      std::string in = ind;                 // the indentation of the kernel row's loop
      if (runPerRow) {
         out << ind << "{\n" << startRun(ind + "   ");
         in += "   ";
      }
      out << in << "for (std::int64_t kl = 0; kl < " << fK[d - 1] << "; kl++) {\n";
      out << in << "   const float *xs = xrow + " << xoff << " + kl * " << fP.dilations[d - 1] * fC << ";\n";
      out << in << "   const float *ws = wb + (" << koff << " + kl) * " << fC * rowStride << ";\n";
      std::string cIn = in + "   ", cFrom = "0", cTo = std::to_string(fC); // the channel loop's
      if (chunked) {
         out << cIn << "for (std::int64_t c0 = 0; c0 < " << fC << "; c0 += " << kMaxRun << ") {\n";
         cIn += "   ";
         cFrom = "c0";
         cTo = "std::min<std::int64_t>(c0 + " + std::to_string(kMaxRun) + ", " + std::to_string(fC) + ")";
      }
      if (!runPerRow)
         out << startRun(cIn);
      out << cIn << "for (std::int64_t c = " << cFrom << "; c < " << cTo << "; c++) {\n";
      out << cIn << "   " << codegen::VectorLoad(block, "wv", "ws + c * " + std::to_string(rowStride)) << "\n";
      out << unroll << cIn << "   for (int t = 0; t < T; t++) "
          << codegen::VectorFma("acc[t]", "wv", "xs[t * " + std::to_string(fP.strides[d - 1] * fC) + " + c]") << "\n";
      out << cIn << "}\n";
      if (!runPerRow)
         out << finishRun(cIn);
      if (chunked)
         out << in << "   }\n";
      out << in << "}\n";
      if (runPerRow)
         out << finishRun(in) << ind << "}\n";
      out << unroll << ind << "for (int t = 0; t < T; t++) {\n";
      out << ind << "   " << vf << " a = sum[t];\n";
      if (HasResidual()) {
         out << ind << "   { " << codegen::VectorLoad(block, "res", "rrow + t * " + o + " + " + first) << " a += res; }\n";
      }
      if (fP.activation == "relu" || fP.activation == "relu6")
         out << ind << "   " << codegen::VectorRelu("a", block.width) << "\n";
      if (fP.activation == "relu6")
         out << ind << "   " << VectorMinSix("a", block.width) << "\n";
      const std::string dst = "yrow + t * " + o + " + " + first;
      out << ind << "   " << codegen::VectorStore(block, dst, "a") << "\n";
      out << ind << "}\n";
      return out.str();
   }

   std::vector<std::int64_t> PaddedShape() const { return PaddedSizes(fS, fP.pads); }

   std::int64_t fBlockedFeatures = 0; // > 0: W is blocked by kKernelBlock output channels
   std::vector<std::int64_t> fParts;  // the channels of each part of a concatenated input (none: one input)
};

} // namespace jax2sofie
