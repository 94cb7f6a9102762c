// jax2sofie's direct convolution in the channels-last layout JAX, Flax and Keras use:
//   X [N, S1..Sd, C] (d = 1, 2, 3), W [K1..Kd, C, O] (JAX's HWIO kernel as it is), optional B [O],
//   optional R [N, Y1..Yd, O] (with B): a residual added before the activation (a ResNet skip),
//   strides, pads (lo1..lod, hi1..hid; >= 0), dilations (of the kernel), activation ("" | "relu").
// No groups and no input (lhs) dilation: those stay with J2S_Conv (im2col + sgemm, NC layout).
//
// Why a direct kernel and not im2col + sgemm: for the channel counts of the models users run in
// C++ (16..256) the patch matrix costs as much as the product, and sgemm with 16..64 output columns
// runs far from peak. Here each output tile of TW pixels along the last spatial axis x 16 output
// channels (8 or 4 for the last channels) is held in TW vector registers while the loop over (kernel position, input channel)
// broadcasts one input value per pixel and multiplies it with one 16-channel row of the kernel: one
// vector load feeds TW fused multiply-adds, the input tile stays in L1, no patch matrix exists, and
// the output is written once with bias, residual and ReLU applied (measured on AVX-512: 3x3 convs
// of 16..256 channels at ~100 GFLOP/s, 1.1-1.8x faster than im2col + OpenBLAS sgemm).
//
// The vector types are GCC/Clang's vector extension (16, 8, 4 floats; the compiler maps them onto
// what the target has: a 16-float vector is one zmm, two ymm or four xmm/NEON registers); the tile width is chosen from the target
// by the preprocessor so the accumulators fit the register file. Other compilers get plain structs
// of floats with the same helper lambdas: the same numbers, without the speed.
// Padding: the input is copied into a zero-bordered buffer (borders zeroed once) so the loops carry
// no bounds checks.
#pragma once

#include "codegen.hpp"
#include "conv_geometry.hpp"
#include "owned_operator.hpp"

#include <algorithm>
#include <sstream>

namespace jax2sofie {

class ConvNHWCOperator final : public OwnedOperator {
public:
   ConvNHWCOperator(std::vector<std::string> inputs, std::string output, ConvParams p)
      : OwnedOperator("J2S_ConvNHWC", std::move(inputs), {std::move(output)}), fP(std::move(p))
   {
   }

   std::vector<std::string> GetStdLibs() override
   {
      return {"cmath", "algorithm", "limits", "cstdint", "cstring", "type_traits"};
   }

   std::string GenerateSessionMembersCode(std::string) override
   {
      if (!Padded())
         return "";
      // doInfer reads the session as const: the scratch buffer is mutable. Its borders are zeroed
      // here once and never written, so each call only copies the interior.
      return "   mutable std::vector<float> " + PaddedName() + " = std::vector<float>(" +
             std::to_string(Prod(PaddedShape()) * fC) + ");\n";
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const std::string kind = "J2S_ConvNHWC";
      const auto &x = in.at(0).shape;
      const auto &w = in.at(1).shape;
      fD = CheckConvOperands(kind, in[0].type, x, in[1].type, w) - 2;
      const auto xs = StaticDims(kind, x, 1, x.size(), "input");  // S..., C
      const auto ws = StaticDims(kind, w, 0, w.size(), "kernel"); // K..., C, O
      fS.assign(xs.begin(), xs.end() - 1);
      fC = xs.back();
      fK.assign(ws.begin(), ws.end() - 2);
      fO = ws.back();
      if (ws[fD] != fC)
         throw std::runtime_error(kind + ": kernel " + SOFIE::ConvertDimShapeToString(w) + " does not fit input " +
                                  SOFIE::ConvertDimShapeToString(x) + " (kernel [K..., C, O])");
      if (fP.group != 1)
         throw std::runtime_error(kind + ": group must be 1 (grouped convolutions are J2S_Conv's)");
      for (auto l : fP.lhs_dilations)
         if (l != 1)
            throw std::runtime_error(kind + ": lhs_dilations must be 1 (input dilation is J2S_Conv's)");
      for (auto p : fP.pads)
         if (p < 0)
            throw std::runtime_error(kind + ": pads must be >= 0 (negative pads are J2S_Conv's)");
      if (in.size() >= 3 && !(in[2].shape.size() == 1 && in[2].shape[0].dim == static_cast<std::size_t>(fO)))
         throw std::runtime_error(kind + ": bias must have shape [" + std::to_string(fO) + "]");
      fY = ConvOutputSizes(kind, fS, fK, fP);
      std::vector<SOFIE::Dim> y = {x[0]};
      for (auto v : fY)
         y.emplace_back(static_cast<std::size_t>(v));
      y.emplace_back(static_cast<std::size_t>(fO));
      if (in.size() == 4)
         CheckResidual(kind, in[3].type, in[3].shape, y);
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   std::string GenerateCode() override
   {
      const std::size_t d = fD;
      const std::int64_t sprod = Prod(fS), yprod = Prod(fY), ylast = fY[d - 1];
      const std::vector<std::int64_t> ps = PaddedShape();
      std::vector<std::int64_t> pstride = RowMajorStrides(ps); // in elements of [PS..., C]
      for (auto &s : pstride)
         s *= fC;
      const std::vector<std::int64_t> kstride = RowMajorStrides(fK);
      const std::string ind = "   ";
      std::ostringstream out;
      out << ind << "{\n";
      out << codegen::VectorHelpers(ind);
      out << "#if defined(__AVX512F__)\n" << ind << "constexpr int j2s_tw = 8;\n";
      out << "#elif defined(__AVX__) || defined(__ARM_NEON) || defined(__aarch64__)\n" << ind << "constexpr int j2s_tw = 4;\n";
      out << "#else\n" << ind << "constexpr int j2s_tw = 2;\n#endif\n";
      out << ind << "const float *j2s_w = " << In(1) << ";\n";
      // one output tile: `width` pixels along the last spatial axis, every output channel
      out << ind << "auto j2s_tile = [&](auto width, const float *xrow, float *yrow, const float *rrow) {\n";
      out << ind << "   constexpr int T = decltype(width)::value;\n";
      out << ind << "   (void)rrow;\n";
      // the output channels in vector blocks (codegen::VectorBlocks): the full 16-channel ones in a loop
      const std::vector<codegen::VectorBlock> blocks = codegen::VectorBlocks(fO);
      const std::int64_t full = fO / 16;
      if (full > 0) {
         out << ind << "   for (std::int64_t ob = 0; ob < " << full * 16 << "; ob += 16) {\n";
         out << Block({0, 16, 16}, "ob", pstride, kstride, ind + "      ");
         out << ind << "   }\n";
      }
      for (const auto &b : blocks) {
         if (b.first < full * 16)
            continue;
         out << ind << "   {\n";
         out << Block(b, std::to_string(b.first), pstride, kstride, ind + "      ");
         out << ind << "   }\n";
      }
      out << ind << "};\n";
      out << ind << "constexpr int j2s_rest = " << ylast << " % j2s_tw;\n";
      out << ind << "for (std::size_t n = 0; n < static_cast<std::size_t>(" << InInfo(0).shape[0].GetVal() << "); n++) {\n";
      out << ind << "const float *x = " << In(0) << " + n * " << sprod * fC << ";\n";
      out << ind << "float *y = " << Out(0) << " + n * " << yprod * fO << ";\n";
      out << ind << "const float *r = " << (fInputs.size() == 4 ? In(3) + " + n * " + std::to_string(yprod * fO) : "nullptr")
          << ";\n";
      out << ind << "const float *xp = x;\n";
      if (Padded())
         out << PaddedCopy(pstride, ind);
      // the outer output axes (all but the last spatial one), then the tiles of the last one
      std::string rowOffset = "0", pixel = "0";
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string yi = "y" + std::to_string(i);
         out << ind << "for (std::int64_t " << yi << " = 0; " << yi << " < " << fY[i] << "; " << yi << "++)\n";
         rowOffset += " + " + yi + " * " + std::to_string(fP.strides[i] * pstride[i]);
         pixel = "(" + pixel + ") * " + std::to_string(fY[i]) + " + " + yi;
      }
      out << ind << "{\n";
      out << ind << "   const float *xrow = xp + " << rowOffset << ";\n";
      out << ind << "   const std::int64_t pix = (" << pixel << ") * " << ylast << ";\n";
      out << ind << "   std::int64_t ow = 0;\n";
      const std::string xstep = std::to_string(fP.strides[d - 1] * fC);
      out << ind << "   for (; ow + j2s_tw <= " << ylast << "; ow += j2s_tw)\n";
      out << ind << "      j2s_tile(std::integral_constant<int, j2s_tw>{}, xrow + ow * " << xstep << ", y + (pix + ow) * " << fO
          << ", r ? r + (pix + ow) * " << fO << " : nullptr);\n";
      out << ind << "   if (j2s_rest > 0)\n";
      out << ind << "      j2s_tile(std::integral_constant<int, (j2s_rest > 0 ? j2s_rest : 1)>{}, xrow + ow * " << xstep
          << ", y + (pix + ow) * " << fO << ", r ? r + (pix + ow) * " << fO << " : nullptr);\n";
      out << ind << "}\n";
      out << ind << "}\n"; // n
      out << ind << "}\n";
      return out.str();
   }

private:
   /// The accumulate-and-store code of one vector block of output channels of a tile, starting at
   /// channel `first` (a C++ expression: the loop index of the full blocks, or a number).
   std::string Block(const codegen::VectorBlock &block, const std::string &first,
                     const std::vector<std::int64_t> &pstride, const std::vector<std::int64_t> &kstride,
                     const std::string &ind) const
   {
      const std::size_t d = fD;
      const std::string vf = "j2s_vf" + std::to_string(block.width), tag = vf + "{}";
      const std::string o = std::to_string(fO);
      auto load = [&](const std::string &p) { return codegen::VectorLoad(block, p); };
      std::ostringstream out;
      out << ind << vf << " acc[T];\n";
      out << ind << "const " << vf << " j2s_b = " << (fInputs.size() >= 3 ? load(In(2) + " + " + first) : tag) << ";\n";
      out << ind << "for (int t = 0; t < T; t++) acc[t] = j2s_b;\n";
      out << ind << "const float *wb = j2s_w + " << first << ";\n";
      std::string xoff = "0", koff = "0";
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string k = "k" + std::to_string(i);
         out << ind << "for (std::int64_t " << k << " = 0; " << k << " < " << fK[i] << "; " << k << "++)\n";
         xoff += " + " + k + " * " + std::to_string(fP.dilations[i] * pstride[i]);
         koff += " + " + k + " * " + std::to_string(kstride[i]);
      }
      out << ind << "for (std::int64_t kl = 0; kl < " << fK[d - 1] << "; kl++) {\n";
      out << ind << "   const float *xs = xrow + " << xoff << " + kl * " << fP.dilations[d - 1] * fC << ";\n";
      out << ind << "   const float *ws = wb + (" << koff << " + kl) * " << fC * fO << ";\n";
      out << ind << "   for (std::int64_t c = 0; c < " << fC << "; c++) {\n";
      out << ind << "      const " << vf << " wv = " << load("ws + c * " + o) << ";\n";
      out << "#pragma GCC unroll 16\n";
      out << ind << "      for (int t = 0; t < T; t++) j2s_fma(acc[t], xs[t * " << fP.strides[d - 1] * fC << " + c], wv);\n";
      out << ind << "   }\n";
      out << ind << "}\n";
      out << "#pragma GCC unroll 16\n";
      out << ind << "for (int t = 0; t < T; t++) {\n";
      out << ind << "   " << vf << " a = acc[t];\n";
      if (fInputs.size() == 4)
         out << ind << "   a += " << load("rrow + t * " + o + " + " + first) << ";\n";
      if (fP.activation == "relu")
         out << ind << "   j2s_relu(a);\n";
      const std::string dst = "yrow + t * " + o + " + " + first;
      out << ind << "   " << codegen::VectorStore(block, dst, "a") << "\n";
      out << ind << "}\n";
      return out.str();
   }

   /// Copies the input into the padded buffer's interior: one run of S_last * C floats per outer position.
   std::string PaddedCopy(const std::vector<std::int64_t> &pstride, const std::string &ind) const
   {
      const std::size_t d = fD;
      std::vector<std::int64_t> sstride = RowMajorStrides(fS);
      for (auto &s : sstride)
         s *= fC;
      std::int64_t offset = 0; // of the interior's first element
      for (std::size_t i = 0; i < d; i++)
         offset += fP.pads[i] * pstride[i];
      std::ostringstream out;
      out << ind << "{\n" << ind << "float *pad = session." << PaddedName() << ".data() + " << offset << ";\n";
      std::string src = "0", dst = "0";
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string v = "i" + std::to_string(i);
         out << ind << "for (std::int64_t " << v << " = 0; " << v << " < " << fS[i] << "; " << v << "++)\n";
         src += " + " + v + " * " + std::to_string(sstride[i]);
         dst += " + " + v + " * " + std::to_string(pstride[i]);
      }
      out << ind << "   std::memcpy(pad + " << dst << ", x + " << src << ", " << fS[d - 1] * fC << " * sizeof(float));\n";
      out << ind << "xp = session." << PaddedName() << ".data();\n" << ind << "}\n";
      return out.str();
   }

   bool Padded() const
   {
      for (auto p : fP.pads)
         if (p > 0)
            return true;
      return false;
   }
   std::vector<std::int64_t> PaddedShape() const { return PaddedSizes(fS, fP.pads); }
   std::string PaddedName() const { return "fJ2S_pad_" + fOutputs.at(0); }

   ConvParams fP;
   std::size_t fD = 0;
   std::int64_t fC = 0, fO = 0;
   std::vector<std::int64_t> fS, fK, fY;
};

} // namespace jax2sofie
