// J2S_ConvNHWC with method "gemm": the same channels-last convolution as conv_nhwc.hpp (same
// inputs, attributes and output), computed as im2col + one sgemm per chunk of batch elements.
//
// Why a second method: the direct kernel reads the whole kernel W [K..., C, O] once per output tile
// of at most 8 pixels of one row, per batch element, one vector of W per tile's multiply-adds. Where W
// is larger than L2 and the rows are short (ResNet's last stage: 3x3 over 512 channels at 4x4, 9.4 MB
// of kernel, tiles of 4 pixels) that ran at about a fifth of its speed on early layers, and sgemm,
// which packs W and blocks the product for the caches, is about twice as fast. In the channels-last
// layout im2col needs no transposes: a row of the patch matrix is one output pixel's K... x C window,
// copied as runs of C (or K_last x C, without dilation) contiguous floats, and the product is
// [pixels, K...*C] x [K...*C, O] with the kernel as it is and the output rows as they are in
// Y [N, Y..., O]. Which convolutions use it is the converter's choice (lowering/conv.py, nhwc_method).
//
// Generated code, per chunk of batch elements (enough for about kChunkRows output pixels, so one
// sgemm call amortises packing the kernel; the patch matrix of a chunk is a Session buffer): each
// element's input is copied into a zero-bordered buffer (with padding), its patch rows written, the
// chunk's output pre-filled with bias (+ residual; beta = 1), one sgemm, then ReLU / ReLU6 in place.
// A 1x1 kernel with unit strides and no padding has no patch matrix: the input is that matrix.
#pragma once

#include "conv_channels_last.hpp"

#include <algorithm>
#include <sstream>

namespace jax2sofie {

class ConvNHWCGemmOperator final : public ChannelsLastConvOperator {
public:
   ConvNHWCGemmOperator(std::vector<std::string> inputs, std::string output, ConvParams p)
      : ChannelsLastConvOperator("J2S_ConvNHWC", std::move(inputs), std::move(output), std::move(p))
   {
   }

   std::vector<std::string> GetBlasRoutines() override { return {"Gemm"}; }
   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint", "cstring"}; }

   /// Output pixels per sgemm call that the chunk of batch elements aims at (a whole element at least).
   static constexpr std::int64_t kChunkRows = 256;

   std::string GenerateSessionMembersCode(std::string) override
   {
      // doInfer reads the session as const: the scratch buffers are mutable. The padded input's
      // borders are zeroed here once and never written, so each element only copies the interior.
      std::string members;
      if (NeedsCol())
         members += "   mutable std::vector<float> " + ColName() + " = std::vector<float>(" +
                    std::to_string(Chunk() * Prod(fY) * Prod(fK) * fC) + ");\n";
      if (Padded())
         members += PaddedMember(Prod(PaddedSizes(fS, fP.pads)) * fC);
      return members;
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto y = InferKernelLastConv("J2S_ConvNHWC (method gemm)", in);
      // a static batch smaller than a chunk needs no more patch rows than it has
      const auto &n = y[0];
      fStaticBatch = n.isParam ? 0 : static_cast<std::int64_t>(n.dim);
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   std::string GenerateCode() override
   {
      const std::int64_t yprod = Prod(fY), sprod = Prod(fS), kc = Prod(fK) * fC;
      const bool hasBias = fInputs.size() >= 3, hasResidual = fInputs.size() == 4;
      std::ostringstream out;
      out << "   {\n";
      out << "   const std::size_t j2s_batch = static_cast<std::size_t>(" << InInfo(0).shape[0].GetVal() << ");\n";
      out << "   const int j2s_o = " << fO << ", j2s_kc = " << kc << ";\n";
      out << "   const float j2s_alpha = 1.0f, j2s_beta = " << (hasBias ? "1.0f" : "0.0f") << ";\n";
      out << "   const char j2s_notrans = 'n';\n";
      out << "   for (std::size_t n0 = 0; n0 < j2s_batch; n0 += " << Chunk() << ") {\n";
      out << "      const std::size_t nc = std::min<std::size_t>(" << Chunk() << ", j2s_batch - n0);\n";
      out << "      const int j2s_m = static_cast<int>(nc * " << yprod << ");\n";
      out << "      const std::size_t j2s_outputs = nc * " << yprod * fO << ";\n";
      out << "      (void)j2s_outputs;\n";
      out << "      float *y = " << Out(0) << " + n0 * " << yprod * fO << ";\n";
      if (NeedsCol()) {
         out << "      float *col = session." << ColName() << ".data();\n";
         out << "      for (std::size_t i = 0; i < nc; i++) {\n";
         out << "      const float *x = " << In(0) << " + (n0 + i) * " << sprod * fC << ";\n";
         out << "      const float *xp = x;\n";
         std::vector<std::int64_t> pstride = RowMajorStrides(Padded() ? PaddedSizes(fS, fP.pads) : fS);
         for (auto &s : pstride)
            s *= fC;
         if (Padded()) {
            out << "      float *j2s_pad = session." << PaddedName() << ".data();\n";
            out << PaddedCopyCode(fS, fC, fP.pads, pstride, "      ");
         }
         out << "      float *dst = col + i * " << yprod * kc << ";\n";
         out << Im2Col(pstride, "      ");
         out << "      }\n";
         out << "      const float *patches = col;\n";
      } else {
         out << "      const float *patches = " << In(0) << " + n0 * " << sprod * fC << ";\n";
      }
      // column-major view: Y^T [O, m] = W^T [O, kc] * patches^T [kc, m] (W [kc, O] and patches [m, kc] row-major)
      if (hasResidual) {
         out << "      const float *r = " << In(3) << " + n0 * " << yprod * fO << ";\n";
         out << "      for (std::size_t p = 0; p < j2s_outputs; p += " << fO << ")\n";
         out << "         for (std::size_t o = 0; o < " << fO << "; o++) y[p + o] = r[p + o] + " << In(2) << "[o];\n";
      } else if (hasBias) {
         out << "      for (std::size_t p = 0; p < j2s_outputs; p += " << fO << ") std::memcpy(y + p, " << In(2) << ", "
             << fO << " * sizeof(float));\n";
      }
      out << "      BLAS::sgemm_(&j2s_notrans, &j2s_notrans, &j2s_o, &j2s_m, &j2s_kc, &j2s_alpha, " << In(1)
          << ", &j2s_o, patches, &j2s_kc, &j2s_beta, y, &j2s_o);\n";
      if (fP.activation == "relu")
         out << "      for (std::size_t i = 0; i < j2s_outputs; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;\n";
      else if (fP.activation == "relu6")
         out << "      for (std::size_t i = 0; i < j2s_outputs; i++) y[i] = y[i] > 0.0f ? (y[i] < 6.0f ? y[i] : 6.0f) : 0.0f;\n";
      out << "   }\n   }\n";
      return out.str();
   }

private:
   /// The patch rows of one batch element from xp (strides `pstride`, in floats): for each output
   /// pixel, for each kernel position, the C channels there; without dilation along the last axis a
   /// kernel row's K_last x C floats are one contiguous run.
   std::string Im2Col(const std::vector<std::int64_t> &pstride, const std::string &ind) const
   {
      const std::size_t d = fD;
      std::ostringstream out;
      std::string off = "0";
      for (std::size_t i = 0; i < d; i++) {
         const std::string v = "y" + std::to_string(i);
         out << ind << "for (std::int64_t " << v << " = 0; " << v << " < " << fY[i] << "; " << v << "++)\n";
         off += " + " + v + " * " + std::to_string(fP.strides[i] * pstride[i]);
      }
      out << ind << "{\n";
      const bool rowRun = fP.dilations[d - 1] == 1;
      for (std::size_t i = 0; i + (rowRun ? 1 : 0) < d; i++) {
         const std::string k = "k" + std::to_string(i);
         out << ind << "for (std::int64_t " << k << " = 0; " << k << " < " << fK[i] << "; " << k << "++)\n";
         off += " + " + k + " * " + std::to_string(fP.dilations[i] * pstride[i]);
      }
      const std::int64_t run = rowRun ? fK[d - 1] * fC : fC;
      out << ind << "{ std::memcpy(dst, xp + " << off << ", " << run << " * sizeof(float)); dst += " << run << "; }\n";
      out << ind << "}\n";
      return out.str();
   }

   /// Batch elements per sgemm call: about kChunkRows output pixels, no more than a static batch has.
   std::int64_t Chunk() const
   {
      std::int64_t chunk = std::max<std::int64_t>(1, (kChunkRows + Prod(fY) - 1) / Prod(fY));
      return fStaticBatch > 0 ? std::min(chunk, fStaticBatch) : chunk;
   }
   bool NeedsCol() const
   {
      for (std::size_t i = 0; i < fD; i++)
         if (fK[i] != 1 || fP.strides[i] != 1)
            return true;
      return Padded();
   }
   std::string ColName() const { return "fJ2S_col_" + fOutputs.at(0); }

   std::int64_t fStaticBatch = 0;
};

} // namespace jax2sofie
