// jax2sofie's convolution: im2col + one sgemm per (batch element, group), in NC<spatial> layout.
//
// Why not SOFIE's Conv/ConvTranspose: SOFIE's Conv gets its output size wrong without explicit
// pads, its grouped ConvTranspose gives wrong numbers, neither knows lhs (input) dilation in
// general, and its generated code is slower than ONNX Runtime. This one covers everything
// lax.conv_general_dilated does with batch_group_count = 1:
//   X [N, C, S1..Sd] (d = 1, 2, 3), W [O, C/group, K1..Kd], optional B [O], optional R (with B):
//   a residual of the output's shape added before the activation (a ResNet skip connection costs
//   no extra pass over memory: the output is pre-filled with R + B before the sgemm accumulates)
//   strides, pads (lo1..lod, hi1..hid; may be negative), dilations (of the kernel),
//   lhs_dilations (of the input: a transposed convolution), group, activation ("" | "relu").
// Output [N, O, Y1..Yd] with Yi = floor((Si' + lo + hi - ((Ki-1)*di + 1)) / si) + 1, Si' = (Si-1)*li + 1.
//
// Generated code: for each batch element and group the input patch matrix col[Cg*Kprod, Yprod] is
// built (skipped for a 1x1 kernel with unit stride and no padding, where the input IS that
// matrix), then out_g[Og, Yprod] = W_g[Og, Cg*Kprod] * col, bias pre-filled (beta = 1), ReLU after.
// The innermost spatial axis of col is filled as one contiguous run between two bounds computed
// per row, so the loops carry no per-element bounds checks where lhs dilation is 1.
#pragma once

#include "conv_geometry.hpp"
#include "owned_operator.hpp"

#include <sstream>

namespace jax2sofie {

class ConvOperator final : public OwnedOperator {
public:
   using Params = ConvParams;

   ConvOperator(std::vector<std::string> inputs, std::string output, Params p)
      : OwnedOperator("J2S_Conv", std::move(inputs), {std::move(output)}), fP(std::move(p))
   {
   }

   std::vector<std::string> GetBlasRoutines() override { return {"Gemm"}; }

   std::string GenerateSessionMembersCode(std::string) override
   {
      if (!NeedsCol())
         return "";
      // doInfer reads the session as const: the scratch buffers are mutable. The padded input's
      // borders are zeroed once here and never written, so each call only copies the interior.
      std::string members =
         "   mutable std::vector<float> " + ColName() + " = std::vector<float>(" + std::to_string(ColSize()) + ");\n";
      if (UsesPaddedInput())
         members += "   mutable std::vector<float> " + PaddedName() + " = std::vector<float>(" +
                    std::to_string((fC / fP.group) * Prod(PaddedShape())) + ");\n";
      return members;
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0).shape;
      const auto &w = in.at(1).shape;
      fD = CheckConvOperands("J2S_Conv", in[0].type, x, in[1].type, w) - 2;
      const auto xs = StaticDims("J2S_Conv", x, 1, x.size(), "input");  // C, S...
      const auto ws = StaticDims("J2S_Conv", w, 0, w.size(), "kernel"); // O, C/group, K...
      fC = xs[0];
      fO = ws[0];
      if (fP.group < 1 || fC % fP.group || fO % fP.group || ws[1] * fP.group != fC)
         throw std::runtime_error("J2S_Conv: kernel " + SOFIE::ConvertDimShapeToString(w) + " does not fit input " +
                                  SOFIE::ConvertDimShapeToString(x) + " with group " + std::to_string(fP.group));
      if (in.size() >= 3 && !(in[2].shape.size() == 1 && in[2].shape[0].dim == fO))
         throw std::runtime_error("J2S_Conv: bias must have shape [" + std::to_string(fO) + "]");
      fS.assign(xs.begin() + 1, xs.end());
      fK.assign(ws.begin() + 2, ws.end());
      fY = ConvOutputSizes("J2S_Conv", fS, fK, fP);
      std::vector<SOFIE::Dim> y = {x[0], SOFIE::Dim(static_cast<std::size_t>(fO))};
      for (auto v : fY)
         y.emplace_back(static_cast<std::size_t>(v));
      if (in.size() == 4)
         CheckResidual("J2S_Conv", in[3].type, in[3].shape, y);
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   std::string GenerateCode() override
   {
      const std::int64_t g = fP.group, cg = fC / g, og = fO / g;
      const std::int64_t kprod = Prod(fK), yprod = Prod(fY), sprod = Prod(fS);
      const std::int64_t kc = cg * kprod;
      const bool hasBias = fInputs.size() >= 3;
      const bool hasResidual = fInputs.size() == 4;
      const std::string batch = InInfo(0).shape[0].GetVal();
      std::ostringstream out;
      out << "   {\n";
      out << "   const int j2s_m = " << yprod << ", j2s_n = " << og << ", j2s_k = " << kc << ";\n";
      out << "   const float j2s_alpha = 1.0f, j2s_beta = " << (hasBias ? "1.0f" : "0.0f") << ";\n";
      out << "   const char j2s_notrans = 'n';\n";
      out << "   for (std::size_t n = 0; n < static_cast<std::size_t>(" << batch << "); n++) {\n";
      out << "   for (std::size_t g = 0; g < " << g << "; g++) {\n";
      out << "      const float *x = " << In(0) << " + (n * " << fC << " + g * " << cg << ") * " << sprod << ";\n";
      out << "      float *y = " << Out(0) << " + (n * " << fO << " + g * " << og << ") * " << yprod << ";\n";
      if (NeedsCol()) {
         out << "      float *col = session." << ColName() << ".data();\n";
         out << (UsesPaddedInput() ? PaddedIm2Col(cg) : Im2Col(cg));
         out << "      const float *patches = col;\n";
      } else {
         out << "      const float *patches = x;\n";
      }
      if (hasResidual) {
         out << "      const float *r = " << In(3) << " + (n * " << fO << " + g * " << og << ") * " << yprod << ";\n";
         out << "      for (std::size_t o = 0; o < " << og << "; o++) {\n";
         out << "         const float b = " << In(2) << "[g * " << og << " + o];\n";
         out << "         for (std::size_t i = 0; i < " << yprod << "; i++) y[o * " << yprod << " + i] = r[o * " << yprod
             << " + i] + b;\n      }\n";
      } else if (hasBias) {
         out << "      for (std::size_t o = 0; o < " << og << "; o++)\n";
         out << "         std::fill(y + o * " << yprod << ", y + (o + 1) * " << yprod << ", " << In(2)
             << "[g * " << og << " + o]);\n";
      }
      // row-major y[og, yprod] = W_g[og, kc] * patches[kc, yprod], as column-major y^T = patches^T * W_g^T
      out << "      BLAS::sgemm_(&j2s_notrans, &j2s_notrans, &j2s_m, &j2s_n, &j2s_k, &j2s_alpha, patches, &j2s_m, "
          << In(1) << " + g * " << og * kc << ", &j2s_k, &j2s_beta, y, &j2s_m);\n";
      out << "   }\n";
      if (fP.activation == "relu") {
         out << "   {\n      float *y = " << Out(0) << " + n * " << fO * yprod << ";\n";
         out << "      for (std::size_t i = 0; i < " << fO * yprod << "; i++) y[i] = y[i] > 0.0f ? y[i] : 0.0f;\n   }\n";
      }
      out << "   }\n   }\n";
      return out.str();
   }

private:
   bool NeedsCol() const
   {
      for (std::size_t i = 0; i < fD; i++)
         if (fK[i] != 1 || fP.strides[i] != 1 || fP.pads[i] != 0 || fP.pads[fD + i] != 0 || fP.lhs_dilations[i] != 1)
            return true;
      return false;
   }
   std::int64_t ColSize() const { return (fC / fP.group) * Prod(fK) * Prod(fY); }
   std::string ColName() const { return "fJ2S_col_" + fOutputs.at(0); }

   /// Whether im2col reads a zero-padded copy of the input (every pad >= 0, no input dilation: the
   /// common case): its loops then have constant bounds and no range checks, and for a unit stride
   /// each row is a copy of constant length, which the compiler inlines (instead of thousands of
   /// short std::copy/memmove calls with bounds computed per row).
   bool UsesPaddedInput() const
   {
      for (std::size_t i = 0; i < fD; i++)
         if (fP.pads[i] < 0 || fP.pads[fD + i] < 0 || fP.lhs_dilations[i] != 1)
            return false;
      return true;
   }
   std::vector<std::int64_t> PaddedShape() const { return PaddedSizes(fS, fP.pads); }
   std::string PaddedName() const { return "fJ2S_pad_" + fOutputs.at(0); }

   /// Copies the input channels of this group into the padded buffer's interior (when there is any
   /// padding), then im2col from it: col[(c, k...), (y...)] = xp[c, y*s + k*d ...].
   std::string PaddedIm2Col(std::int64_t cg) const
   {
      std::ostringstream out;
      const std::size_t d = fD;
      const std::string ind = "      ";
      const auto ps = PaddedShape();
      const std::vector<std::int64_t> pstride = RowMajorStrides(ps), sstride = RowMajorStrides(fS);
      const std::int64_t pprod = Prod(ps), sprod = Prod(fS);
      bool padded = false;
      for (auto p : fP.pads)
         padded = padded || p > 0;
      out << ind << "const float *xp = x;\n";
      if (padded) {
         std::int64_t offset = 0; // of the interior's first element
         for (std::size_t i = 0; i < d; i++)
            offset += fP.pads[i] * pstride[i];
         out << ind << "{\n" << ind << "float *pad = session." << PaddedName() << ".data();\n";
         out << ind << "for (std::size_t c = 0; c < " << cg << "; c++) {\n";
         out << ind << "const float *src = x + c * " << sprod << ";\n";
         out << ind << "float *dst = pad + c * " << pprod << " + " << offset << ";\n";
         for (std::size_t i = 0; i + 1 < d; i++)
            out << ind << "for (std::int64_t i" << i << " = 0; i" << i << " < " << fS[i] << "; i" << i << "++)\n";
         std::string srcOff = "0", dstOff = "0";
         for (std::size_t i = 0; i + 1 < d; i++) {
            srcOff += " + i" + std::to_string(i) + " * " + std::to_string(sstride[i]);
            dstOff += " + i" + std::to_string(i) + " * " + std::to_string(pstride[i]);
         }
         out << ind << "   for (std::int64_t j = 0; j < " << fS[d - 1] << "; j++) dst[" << dstOff << " + j] = src[" << srcOff
             << " + j];\n";
         out << ind << "}\n" << ind << "xp = pad;\n" << ind << "}\n";
      }
      out << ind << "float *dst = col;\n";
      out << ind << "for (std::size_t c = 0; c < " << cg << "; c++) {\n";
      out << ind << "const float *xc = xp + c * " << (padded ? pprod : sprod) << ";\n";
      for (std::size_t i = 0; i < d; i++)
         out << ind << "for (std::int64_t k" << i << " = 0; k" << i << " < " << fK[i] << "; k" << i << "++) {\n";
      for (std::size_t i = 0; i + 1 < d; i++)
         out << ind << "for (std::int64_t y" << i << " = 0; y" << i << " < " << fY[i] << "; y" << i << "++) {\n";
      std::string row = "xc";
      for (std::size_t i = 0; i < d; i++) {
         const std::string pos = i + 1 < d ? "(y" + std::to_string(i) + " * " + std::to_string(fP.strides[i]) + " + k" +
                                                std::to_string(i) + " * " + std::to_string(fP.dilations[i]) + ")"
                                           : "k" + std::to_string(i) + " * " + std::to_string(fP.dilations[i]);
         row += " + " + pos + (i + 1 < d ? " * " + std::to_string(pstride[i]) : "");
      }
      const std::int64_t s = fP.strides[d - 1];
      out << ind << "   const float *src = " << row << ";\n";
      out << ind << "   for (std::int64_t y = 0; y < " << fY[d - 1] << "; y++) dst[y] = src[" << (s == 1 ? "y" : "y * " + std::to_string(s))
          << "];\n";
      out << ind << "   dst += " << fY[d - 1] << ";\n";
      out << CloseLoops(2 * d, ind); // the outer output axes, the kernel axes, the channel
      return out.str();
   }

   /// The im2col loops (negative pads or input dilation): col[((c*K1 + k1)*K2 + k2)..., (y1*Y2 + y2)...] = x[c, i1, i2, ...] or 0,
   /// with i = (y*s + k*d - lo) / l where that is a whole, in-range number.
   std::string Im2Col(std::int64_t cg) const
   {
      std::ostringstream out;
      const std::size_t d = fD;
      std::string ind = "      ";
      out << ind << "float *dst = col;\n";
      out << ind << "for (std::size_t c = 0; c < " << cg << "; c++) {\n";
      out << ind << "const float *xc = x + c * " << Prod(fS) << ";\n";
      for (std::size_t i = 0; i < d; i++)
         out << ind << "for (std::int64_t k" << i << " = 0; k" << i << " < " << fK[i] << "; k" << i << "++) {\n";
      // outer output axes: one position each, an out-of-range one zeroes its whole inner block
      const std::vector<std::int64_t> innerBlock = RowMajorStrides(fY); // output elements below axis i
      const std::vector<std::int64_t> inStride = RowMajorStrides(fS);
      out << ind << "const float *xk = xc;\n";
      std::string xptr = "xk";
      for (std::size_t i = 0; i + 1 < d; i++) {
         out << ind << "for (std::int64_t y" << i << " = 0; y" << i << " < " << fY[i] << "; y" << i << "++) {\n";
         out << ind << "   const std::int64_t t" << i << " = y" << i << " * " << fP.strides[i] << " + k" << i << " * "
             << fP.dilations[i] << " - " << fP.pads[i] << ";\n";
         const std::int64_t l = fP.lhs_dilations[i];
         out << ind << "   if (t" << i << " < 0 || t" << i << " >= " << (fS[i] - 1) * l + 1;
         if (l > 1)
            out << " || t" << i << " % " << l << " != 0";
         out << ") { std::fill(dst, dst + " << innerBlock[i] << ", 0.0f); dst += " << innerBlock[i] << "; continue; }\n";
         out << ind << "   const float *x" << i << " = " << xptr << " + (t" << i << (l > 1 ? " / " + std::to_string(l) : "")
             << ") * " << inStride[i] << ";\n";
         xptr = "x" + std::to_string(i);
      }
      // innermost axis: zeros, a run of input elements, zeros
      const std::size_t i = d - 1;
      const std::int64_t s = fP.strides[i], dil = fP.dilations[i], lo = fP.pads[i], l = fP.lhs_dilations[i];
      const std::int64_t yn = fY[i], sn = fS[i];
      if (l == 1) {
         // 0 <= y*s + k*dil - lo < sn  <=>  ylo <= y < yhi
         out << ind << "{\n";
         out << ind << "   const std::int64_t off = k" << i << " * " << dil << " - " << lo << ";\n";
         out << ind << "   std::int64_t ylo = off >= 0 ? 0 : (-off + " << s - 1 << ") / " << s << ";\n";
         out << ind << "   std::int64_t yhi = off >= " << sn << " ? 0 : (" << sn - 1 << " - off) / " << s << " + 1;\n";
         out << ind << "   if (yhi > " << yn << ") yhi = " << yn << ";\n";
         out << ind << "   if (ylo > yhi) ylo = yhi;\n";
         out << ind << "   for (std::int64_t y = 0; y < ylo; y++) dst[y] = 0.0f;\n";
         if (s == 1)
            out << ind << "   std::copy(" << xptr << " + ylo + off, " << xptr << " + yhi + off, dst + ylo);\n";
         else
            out << ind << "   for (std::int64_t y = ylo; y < yhi; y++) dst[y] = " << xptr << "[y * " << s << " + off];\n";
         out << ind << "   for (std::int64_t y = yhi; y < " << yn << "; y++) dst[y] = 0.0f;\n";
         out << ind << "   dst += " << yn << ";\n";
         out << ind << "}\n";
      } else {
         out << ind << "for (std::int64_t y = 0; y < " << yn << "; y++) {\n";
         out << ind << "   const std::int64_t t = y * " << s << " + k" << i << " * " << dil << " - " << lo << ";\n";
         out << ind << "   dst[y] = (t < 0 || t >= " << (sn - 1) * l + 1 << " || t % " << l << " != 0) ? 0.0f : " << xptr
             << "[t / " << l << "];\n";
         out << ind << "}\n";
         out << ind << "dst += " << yn << ";\n";
      }
      out << CloseLoops(2 * d, ind); // the outer output axes, the kernel axes, the channel
      return out.str();
   }

   Params fP;
   std::size_t fD = 0;
   std::int64_t fC = 0, fO = 0;
   std::vector<std::int64_t> fS, fK, fY;
};

} // namespace jax2sofie
