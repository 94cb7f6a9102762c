// jax2sofie's transposed convolution in the channels-last layout: a convolution with input (lhs)
// dilation l > 1, unit window strides and no kernel dilation, which is what Flax's ConvTranspose (linen
// and nnx), Keras' Conv2DTranspose and lax.conv_transpose trace to:
//   X [N, S1..Sd, C] (d = 1, 2, 3), W [K1..Kd, C, O] (as the jaxpr has it), optional B [O], optional
//   R [N, Y1..Yd, O] (with B): a residual added before the activation; pads (lo1..lod, hi1..hid, of
//   the dilated input; any sign), lhs_dilations l (>= 1), activation ("" | "relu").
// Output [N, Y1..Yd, O] with Yi = (Si-1)*li + 1 + loi + hii - Ki + 1.
//
// Why not im2col over the dilated input (J2S_Conv): with l = 2 three quarters of the dilated input of a
// 2D layer are inserted zeros, and the patch matrix and the product spend as much on them as on the
// numbers. The sub-pixel (phase) form skips them: along an axis of dilation l, output position
// y = l*q + r (phase r) only meets the kernel taps k = k0 + l*m with k0 = (lo - r) mod l, and those read
// input x[q + m + off] with off = (r + k0 - lo) / l. So each of the prod(l) phases is a stride-1 direct
// convolution over X with a sub-kernel of the taps of W (read in place: W is not repacked, each tap's
// [C, O] block is contiguous), and its outputs go straight to their strided positions in Y: no zero
// work, no interleave pass. Phases with no tap on some axis (a kernel smaller than the dilation) write
// the bias alone.
//
// The inner loops are J2S_ConvNHWC's (csrc/owned/conv_nhwc.hpp): tiles of 8 output pixels of a phase
// along the last axis times one vector of output channels, one broadcast input value per pixel and
// kernel row, sums in runs of at most 64 channels of one tap. With a single output channel (a decoder's
// last layer: O = 1) vectors over output channels would hold one lane; there the vectors run over the
// input channels instead (each tap's [C] column of W is contiguous when O = 1), one accumulator per
// pixel, summed across lanes once per pixel.
// Padding: the input is copied into a zero-bordered buffer wide enough for every phase's reads
// (borders zeroed once), so the loops carry no bounds checks.
#pragma once

#include "codegen.hpp"
#include "conv_channels_last.hpp"

#include <algorithm>
#include <sstream>

namespace jax2sofie {

class ConvTransposeNHWCOperator final : public ChannelsLastConvOperator {
public:
   ConvTransposeNHWCOperator(std::vector<std::string> inputs, std::string output, ConvParams p)
      : ChannelsLastConvOperator("J2S_ConvTransposeNHWC", std::move(inputs), std::move(output), std::move(p))
   {
   }

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
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const std::string kind = "J2S_ConvTransposeNHWC";
      const auto &x = in.at(0).shape;
      const auto ws = ReadInputAndKernelSizes(kind, in); // K..., C, O
      fO = ws.back();
      CheckKernelTakesInputChannels(kind, in, ws);
      if (fP.group != 1)
         throw std::runtime_error(kind + ": group must be 1 (grouped convolutions are J2S_Conv's)");
      fY = ConvOutputSizes(kind, fS, fK, fP);
      for (std::size_t i = 0; i < fD; i++)
         if (fP.strides[i] != 1 || fP.dilations[i] != 1)
            throw std::runtime_error(kind + ": strides and dilations must be 1 (axis " + std::to_string(i) +
                                     "; other transposed convolutions are J2S_Conv's)");
      if (in.size() >= 3 && !(in[2].shape.size() == 1 && in[2].shape[0].dim == static_cast<std::size_t>(fO)))
         throw std::runtime_error(kind + ": bias must have shape [" + std::to_string(fO) + "]");
      MakePhases();
      std::vector<SOFIE::Dim> y = {x[0]};
      for (auto v : fY)
         y.emplace_back(static_cast<std::size_t>(v));
      y.emplace_back(static_cast<std::size_t>(fO));
      if (in.size() == 4)
         CheckResidual(kind, in[3].type, in[3].shape, y);
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   bool UsesKernel() const override { return true; }

   std::vector<std::pair<std::string, std::string>> KernelExtraParameters() const override
   {
      if (!Padded())
         return {};
      return {{"float *j2s_pad", "session." + PaddedName() + ".data()"}};
   }

   static constexpr std::int64_t kTile = 8;
   /// Runs of the dot products' sums, as J2S_ConvNHWC's (see kMinRun, kMaxRun there).
   static constexpr std::int64_t kMinRun = 16, kMaxRun = 64;

   std::string KernelCode(const codegen::Isa &isa) override
   {
      const std::size_t d = fD;
      const std::int64_t sprod = Prod(fS), yprod = Prod(fY);
      const std::string ind = "   ";
      std::ostringstream out;
      out << ind << "const float *j2s_w = " << In(1) << ";\n";
      out << ind << "for (std::size_t n = 0; n < static_cast<std::size_t>(" << InInfo(0).shape[0].GetVal() << "); n++) {\n";
      out << ind << "const float *x = " << In(0) << " + n * " << sprod * fC << ";\n";
      out << ind << "float *y = " << Out(0) << " + n * " << yprod * fO << ";\n";
      if (fInputs.size() == 4)
         out << ind << "const float *r = " << In(3) << " + n * " << yprod * fO << ";\n";
      out << ind << "const float *xp = x;\n" << ind << "(void)xp;\n" << ind << "(void)j2s_w;\n";
      if (Padded())
         out << PaddedCopyCode(fS, fC, fPadLo, PaddedStrides(), ind);
      // every combination of one phase per axis, the last axis fastest
      std::vector<std::size_t> phase(d, 0);
      while (true) {
         out << Phase(phase, isa, ind);
         std::size_t i = d;
         while (i > 0 && ++phase[i - 1] == fPhases[i - 1].size())
            phase[--i] = 0;
         if (i == 0)
            break;
      }
      out << ind << "}\n"; // n
      return out.str();
   }

private:
   /// One phase of one axis: outputs y = l*q + r for q < Q, kernel taps k0 + l*m for m < M, reading
   /// input q + m + off (padded buffer index q + m + off + padLo).
   struct AxisPhase {
      std::int64_t r, k0, taps, off, count;
   };

   void MakePhases()
   {
      fPhases.assign(fD, {});
      fPadLo.assign(fD, 0);
      fPadHi.assign(fD, 0);
      for (std::size_t i = 0; i < fD; i++) {
         const std::int64_t l = fP.lhs_dilations[i], lo = fP.pads[i], k = fK[i];
         for (std::int64_t r = 0; r < std::min(l, fY[i]); r++) {
            const std::int64_t k0 = ((lo - r) % l + l) % l;
            const std::int64_t taps = k0 < k ? (k - 1 - k0) / l + 1 : 0;
            const std::int64_t off = (r + k0 - lo) / l; // exact: r + k0 - lo is a multiple of l
            const std::int64_t count = (fY[i] - r + l - 1) / l;
            fPhases[i].push_back({r, k0, taps, off, count});
            if (taps > 0) {
               fPadLo[i] = std::max(fPadLo[i], -off);
               fPadHi[i] = std::max(fPadHi[i], (count - 1) + (taps - 1) + off - (fS[i] - 1));
            }
         }
      }
   }

   /// The code of one combination of phases (index into fPhases per axis).
   std::string Phase(const std::vector<std::size_t> &index, const codegen::Isa &isa, const std::string &ind) const
   {
      const std::size_t d = fD;
      std::vector<AxisPhase> ph;
      bool taps = true;
      for (std::size_t i = 0; i < d; i++) {
         ph.push_back(fPhases[i][index[i]]);
         taps = taps && ph.back().taps > 0;
      }
      const std::vector<std::int64_t> pstride = PaddedStrides();
      const std::vector<std::int64_t> ystride = RowMajorStrides(fY); // in pixels
      std::ostringstream out;
      out << ind << "{ // phase";
      for (auto &p : ph)
         out << " " << p.r;
      out << "\n";
      std::string xoff = "0", yoff = "0";
      for (std::size_t i = 0; i + 1 < d; i++) {
         const std::string q = "q" + std::to_string(i);
         out << ind << "for (std::int64_t " << q << " = 0; " << q << " < " << ph[i].count << "; " << q << "++)\n";
         xoff += " + " + q + " * " + std::to_string(pstride[i]);
         yoff += " + (" + q + " * " + std::to_string(fP.lhs_dilations[i]) + " + " + std::to_string(ph[i].r) + ") * " +
                 std::to_string(ystride[i]);
      }
      std::int64_t xconst = 0;
      for (std::size_t i = 0; i < d; i++)
         xconst += (ph[i].off + fPadLo[i]) * pstride[i];
      const AxisPhase &last = ph[d - 1];
      const std::int64_t ll = fP.lhs_dilations[d - 1];
      out << ind << "{\n";
      if (taps)
         out << ind << "   const float *xrow0 = xp + " << xconst << " + " << xoff << ";\n";
      out << ind << "   const std::int64_t pix = " << yoff << " + " << last.r << ";\n";
      const bool overInputs = fO == 1 && taps;
      const std::int64_t tileMax = kTile;
      auto tile = [&](std::int64_t width) {
         std::ostringstream t;
         t << ind << "   {\n";
         if (taps)
            t << ind << "      const float *xrow = xrow0 + ow * " << fC << ";\n";
         t << ind << "      float *yrow = y + (pix + ow * " << ll << ") * " << fO << ";\n";
         if (fInputs.size() == 4)
            t << ind << "      const float *rrow = r + (pix + ow * " << ll << ") * " << fO << ";\n";
         t << ind << "      constexpr int T = " << width << ";\n";
         if (overInputs)
            t << BlockOverInputs(ph, isa, ind + "      ");
         else
            t << Tile(ph, taps, isa, ind + "      ");
         t << ind << "   }\n";
         return t.str();
      };
      out << ind << "   std::int64_t ow = 0;\n";
      if (last.count >= tileMax)
         out << ind << "   for (; ow + " << tileMax << " <= " << last.count << "; ow += " << tileMax << ")\n"
             << tile(tileMax);
      if (last.count % tileMax)
         out << tile(last.count % tileMax);
      out << ind << "}\n";
      out << ind << "}\n";
      return out.str();
   }

   /// One output tile of the phase, every output channel, in vector blocks of channels.
   std::string Tile(const std::vector<AxisPhase> &ph, bool taps, const codegen::Isa &isa, const std::string &ind) const
   {
      const std::vector<codegen::VectorBlock> blocks = codegen::VectorBlocks(fO, isa.width);
      const std::int64_t full = fO / isa.width;
      std::ostringstream out;
      if (full > 0) {
         out << ind << "for (std::int64_t ob = 0; ob < " << full * isa.width << "; ob += " << isa.width << ") {\n";
         out << Block(ph, taps, {0, isa.width, isa.width}, "ob", ind + "   ");
         out << ind << "}\n";
      }
      for (const auto &b : blocks) {
         if (b.first < full * isa.width)
            continue;
         out << ind << "{\n" << Block(ph, taps, b, std::to_string(b.first), ind + "   ") << ind << "}\n";
      }
      return out.str();
   }

   /// The offsets, in the padded input and in W, of the tap loops' kernel position (outer axes; the
   /// last axis's tap is `kl`), with the loops opened on `out`.
   void OpenTapLoops(const std::vector<AxisPhase> &ph, std::ostringstream &out, const std::string &ind,
                     std::string &xoff, std::string &koff) const
   {
      const std::vector<std::int64_t> pstride = PaddedStrides();
      const std::vector<std::int64_t> kstride = RowMajorStrides(fK);
      xoff = "0";
      koff = "0";
      for (std::size_t i = 0; i + 1 < fD; i++) {
         const std::string m = "m" + std::to_string(i);
         out << ind << "for (std::int64_t " << m << " = 0; " << m << " < " << ph[i].taps << "; " << m << "++)\n";
         xoff += " + " + m + " * " + std::to_string(pstride[i]);
         koff += " + (" + std::to_string(ph[i].k0) + " + " + m + " * " + std::to_string(fP.lhs_dilations[i]) + ") * " +
                 std::to_string(kstride[i]);
      }
   }

   /// The output's epilogue for pixel t: residual, activation, store (vector `a` of `block`).
   std::string Store(const codegen::VectorBlock &block, const std::string &first, const std::string &a,
                     const std::string &ind) const
   {
      const std::string o = std::to_string(fO), step = std::to_string(fP.lhs_dilations[fD - 1] * fO);
      std::ostringstream out;
      if (fInputs.size() == 4)
         out << ind << "{ " << codegen::VectorLoad(block, "res", "rrow + t * " + step + " + " + first) << " " << a
             << " += res; }\n";
      if (fP.activation == "relu")
         out << ind << codegen::VectorRelu(a, block.width) << "\n";
      out << ind << codegen::VectorStore(block, "yrow + t * " + step + " + " + first, a) << "\n";
      return out.str();
   }

   /// One vector block of output channels of a tile (from `first`, a C++ expression).
   std::string Block(const std::vector<AxisPhase> &ph, bool taps, const codegen::VectorBlock &block,
                     const std::string &first, const std::string &ind) const
   {
      const std::size_t d = fD;
      const std::string vf = codegen::VectorType(block.width);
      const std::string o = std::to_string(fO);
      const std::string unroll = "#pragma GCC unroll 16\n";
      std::ostringstream out;
      if (fInputs.size() >= 3)
         out << ind << codegen::VectorLoad(block, "j2s_b", In(2) + " + " + first) << "\n";
      else
         out << ind << "const " << vf << " j2s_b{};\n";
      out << ind << vf << " sum[T];\n";
      out << unroll << ind << "for (int t = 0; t < T; t++) sum[t] = j2s_b;\n";
      if (taps) {
         const AxisPhase &last = ph[d - 1];
         const std::int64_t ll = fP.lhs_dilations[d - 1];
         out << ind << "const float *wb = j2s_w + " << first << ";\n";
         std::string xoff, koff;
         OpenTapLoops(ph, out, ind, xoff, koff);
         auto startRun = [&](const std::string &in) {
            return in + vf + " acc[T];\n" + unroll + in + "for (int t = 0; t < T; t++) acc[t] = " + vf + "{};\n";
         };
         auto finishRun = [&](const std::string &in) {
            return unroll + in + "for (int t = 0; t < T; t++) sum[t] += acc[t];\n";
         };
         const bool runPerRow = fC < kMinRun, chunked = fC > kMaxRun;
         std::string in = ind;
         if (runPerRow) {
            out << ind << "{\n" << startRun(ind + "   ");
            in += "   ";
         }
         out << in << "for (std::int64_t kl = 0; kl < " << last.taps << "; kl++) {\n";
         out << in << "   const float *xs = xrow + " << xoff << " + kl * " << fC << ";\n";
         out << in << "   const float *ws = wb + (" << koff << " + " << last.k0 << " + kl * " << ll << ") * " << fC * fO
             << ";\n";
         std::string cIn = in + "   ", cFrom = "0", cTo = std::to_string(fC);
         if (chunked) {
            out << cIn << "for (std::int64_t c0 = 0; c0 < " << fC << "; c0 += " << kMaxRun << ") {\n";
            cIn += "   ";
            cFrom = "c0";
            cTo = "std::min<std::int64_t>(c0 + " + std::to_string(kMaxRun) + ", " + std::to_string(fC) + ")";
         }
         if (!runPerRow)
            out << startRun(cIn);
         out << cIn << "for (std::int64_t c = " << cFrom << "; c < " << cTo << "; c++) {\n";
         out << cIn << "   " << codegen::VectorLoad(block, "wv", "ws + c * " + o) << "\n";
         out << unroll << cIn << "   for (int t = 0; t < T; t++) "
             << codegen::VectorFma("acc[t]", "wv", "xs[t * " + std::to_string(fC) + " + c]") << "\n";
         out << cIn << "}\n";
         if (!runPerRow)
            out << finishRun(cIn);
         if (chunked)
            out << in << "   }\n";
         out << in << "}\n";
         if (runPerRow)
            out << finishRun(in) << ind << "}\n";
      }
      out << unroll << ind << "for (int t = 0; t < T; t++) {\n";
      out << ind << "   " << vf << " a = sum[t];\n";
      out << Store(block, first, "a", ind + "   ");
      out << ind << "}\n";
      return out.str();
   }

   /// A tile of the single output channel (O = 1): per pixel one accumulator vector over the input
   /// channels (the tap's column of W, contiguous), summed across its lanes at the end.
   std::string BlockOverInputs(const std::vector<AxisPhase> &ph, const codegen::Isa &isa, const std::string &ind) const
   {
      const std::size_t d = fD;
      const AxisPhase &last = ph[d - 1];
      const std::int64_t ll = fP.lhs_dilations[d - 1];
      // the widest vector the channels fill (at least 4 lanes: a tail is loaded partially)
      std::int64_t w = isa.width;
      while (w > 4 && fC < w)
         w /= 2;
      const std::string vf = codegen::VectorType(w), c = std::to_string(fC);
      const std::int64_t fullEnd = fC / w * w;
      const std::string unroll = "#pragma GCC unroll 16\n";
      std::ostringstream out;
      out << ind << vf << " acc[T];\n";
      out << unroll << ind << "for (int t = 0; t < T; t++) acc[t] = " << vf << "{};\n";
      std::string xoff, koff;
      OpenTapLoops(ph, out, ind, xoff, koff);
      out << ind << "for (std::int64_t kl = 0; kl < " << last.taps << "; kl++) {\n";
      out << ind << "   const float *xs = xrow + " << xoff << " + kl * " << fC << ";\n";
      out << ind << "   const float *ws = j2s_w + (" << koff << " + " << last.k0 << " + kl * " << ll << ") * " << fC
          << ";\n";
      if (fullEnd > 0) {
         out << ind << "   for (std::int64_t c = 0; c < " << fullEnd << "; c += " << w << ") {\n";
         out << ind << "      " << codegen::VectorLoad({0, w, w}, "wv", "ws + c", false) << "\n";
         out << unroll << ind << "      for (int t = 0; t < T; t++) {\n";
         out << ind << "         " << codegen::VectorLoad({0, w, w}, "xv", "xs + t * " + c + " + c", false) << "\n";
         out << MultiplyAdd("acc[t]", "wv", "xv", w) << ind << "      }\n";
         out << ind << "   }\n";
      }
      if (fullEnd < fC) {
         const codegen::VectorBlock tail{fullEnd, w, fC - fullEnd};
         out << ind << "   {\n";
         out << ind << "      " << codegen::VectorLoad(tail, "wv", "ws + " + std::to_string(fullEnd)) << "\n";
         out << unroll << ind << "      for (int t = 0; t < T; t++) {\n";
         out << ind << "         " << codegen::VectorLoad(tail, "xv", "xs + t * " + c + " + " + std::to_string(fullEnd))
             << "\n";
         out << MultiplyAdd("acc[t]", "wv", "xv", w) << ind << "      }\n";
         out << ind << "   }\n";
      }
      out << ind << "}\n";
      // the lanes summed by halving the vector (the halves copied out: vextract where there is one)
      out << unroll << ind << "for (int t = 0; t < T; t++) {\n";
      std::string v = "acc[t]";
      for (std::int64_t h = w / 2; h >= 4; h /= 2) {
         const std::string hv = codegen::VectorType(h), name = "h" + std::to_string(h);
         out << ind << "   " << hv << " " << name << ", " << name << "b; std::memcpy(&" << name << ", &" << v << ", "
             << 4 * h << "); std::memcpy(&" << name << "b, reinterpret_cast<const char *>(&" << v << ") + " << 4 * h
             << ", " << 4 * h << "); " << name << " += " << name << "b;\n";
         v = name;
      }
      out << ind << "   j2s_vf4 a{}; a[0] = " << (fInputs.size() >= 3 ? In(2) + "[0] + " : std::string()) << "((" << v
          << "[0] + " << v << "[2]) + (" << v << "[1] + " << v << "[3]));\n";
      out << Store({0, 4, 1}, "0", "a", ind + "   ");
      out << ind << "}\n";
      return out.str();
   }

   /// `a += w * x` for vectors w and x of `width` floats (lane by lane where vectors are structs, which
   /// have no vector product: see codegen::VectorTypes).
   static std::string MultiplyAdd(const std::string &a, const std::string &w, const std::string &x, std::int64_t width)
   {
      return "#if defined(__GNUC__) || defined(__clang__)\n" + a + " += " + w + " * " + x + ";\n#else\nfor (int l = 0; l < " +
             std::to_string(width) + "; l++) " + a + "[l] += " + w + "[l] * " + x + "[l];\n#endif\n";
   }

   bool Padded() const override
   {
      for (std::size_t i = 0; i < fD; i++)
         if (fPadLo[i] > 0 || fPadHi[i] > 0)
            return true;
      return false;
   }
   std::vector<std::int64_t> PaddedShape() const
   {
      std::vector<std::int64_t> p(fD);
      for (std::size_t i = 0; i < fD; i++)
         p[i] = fS[i] + fPadLo[i] + fPadHi[i];
      return p;
   }
   /// Strides of the padded buffer [P..., C] per spatial axis, in floats.
   std::vector<std::int64_t> PaddedStrides() const
   {
      std::vector<std::int64_t> s = RowMajorStrides(PaddedShape());
      for (auto &v : s)
         v *= fC;
      return s;
   }
   std::vector<std::int64_t> fPadLo, fPadHi; // the zero border the phases read past the input (MakePhases)
   std::vector<std::vector<AxisPhase>> fPhases;
};

} // namespace jax2sofie
