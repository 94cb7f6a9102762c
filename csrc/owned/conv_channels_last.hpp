// What the channels-last convolutions share (J2S_ConvNHWC in its direct and gemm forms,
// J2S_ConvDepthwise, J2S_ConvTransposeNHWC): their parameters and the static sizes their shape
// inference finds, and the zero-bordered copy of the input that padding reads, a Session member named
// after the operator's output (doInfer reads the Session as const, so it is mutable; its borders are
// zeroed once, when the Session is made, and never written: each call copies only the interior).
#pragma once

#include "conv_geometry.hpp"
#include "owned_operator.hpp"

namespace jax2sofie {

class ChannelsLastConvOperator : public OwnedOperator {
protected:
   ChannelsLastConvOperator(std::string opType, std::vector<std::string> inputs, std::string output, ConvParams p)
      : OwnedOperator(std::move(opType), std::move(inputs), {std::move(output)}), fP(std::move(p))
   {
   }

   /// Whether the input is read through the padded copy (any pad above 0).
   virtual bool Padded() const
   {
      for (auto p : fP.pads)
         if (p > 0)
            return true;
      return false;
   }
   std::string PaddedName() const { return "fJ2S_pad_" + fOutputs.at(0); }
   /// The Session member holding the padded copy, of `elements` floats.
   std::string PaddedMember(std::int64_t elements) const
   {
      return "   mutable std::vector<float> " + PaddedName() + " = std::vector<float>(" + std::to_string(elements) + ");\n";
   }

   /// Checks X [N, S..., C] and W [K..., a, b] (static but for N) and reads fD, fS, fC and fK from
   /// them; returns W's sizes. `kind` names the operator in errors.
   std::vector<std::int64_t> ReadInputAndKernelSizes(const std::string &kind, const std::vector<TensorInfo> &in)
   {
      const auto &x = in.at(0).shape;
      const auto &w = in.at(1).shape;
      fD = CheckConvOperands(kind, in[0].type, x, in[1].type, w) - 2;
      const auto xs = StaticDims(kind, x, 1, x.size(), "input"); // S..., C
      const auto ws = StaticDims(kind, w, 0, w.size(), "kernel");
      fS.assign(xs.begin(), xs.end() - 1);
      fC = xs.back();
      fK.assign(ws.begin(), ws.end() - 2);
      return ws;
   }

   /// W [K..., C, O] must take the input's C channels.
   void CheckKernelTakesInputChannels(const std::string &kind, const std::vector<TensorInfo> &in,
                                      const std::vector<std::int64_t> &ws) const
   {
      if (ws[fD] != fC)
         throw std::runtime_error(kind + ": kernel " + SOFIE::ConvertDimShapeToString(in.at(1).shape) +
                                  " does not fit input " + SOFIE::ConvertDimShapeToString(in.at(0).shape) +
                                  " (kernel [K..., C, O])");
   }

   /// No input (lhs) dilation and no negative pad: those convolutions are J2S_Conv's.
   void CheckDirectGeometry(const std::string &kind) const
   {
      for (auto l : fP.lhs_dilations)
         if (l != 1)
            throw std::runtime_error(kind + ": lhs_dilations must be 1 (input dilation is J2S_Conv's)");
      for (auto p : fP.pads)
         if (p < 0)
            throw std::runtime_error(kind + ": pads must be >= 0 (negative pads are J2S_Conv's)");
   }

   /// J2S_ConvNHWC's shape inference (both forms): X [N, S..., C], W [K..., C, O], B [O], R like Y; sets
   /// the sizes below and returns Y's shape [N, Y..., O].
   std::vector<SOFIE::Dim> InferKernelLastConv(const std::string &kind, const std::vector<TensorInfo> &in)
   {
      const auto &x = in.at(0).shape;
      const auto ws = ReadInputAndKernelSizes(kind, in); // K..., C, O
      fO = ws.back();
      CheckKernelTakesInputChannels(kind, in, ws);
      if (fP.group != 1)
         throw std::runtime_error(kind + ": group must be 1 (grouped convolutions are J2S_Conv's)");
      CheckDirectGeometry(kind);
      if (in.size() >= 3 && !(in[2].shape.size() == 1 && in[2].shape[0].dim == static_cast<std::size_t>(fO)))
         throw std::runtime_error(kind + ": bias must have shape [" + std::to_string(fO) + "]");
      fY = ConvOutputSizes(kind, fS, fK, fP);
      std::vector<SOFIE::Dim> y = {x[0]};
      for (auto v : fY)
         y.emplace_back(static_cast<std::size_t>(v));
      y.emplace_back(static_cast<std::size_t>(fO));
      if (in.size() == 4)
         CheckResidual(kind, in[3].type, in[3].shape, y);
      return y;
   }

   ConvParams fP;
   std::size_t fD = 0;                  // spatial axes
   std::int64_t fC = 0, fO = 0;         // input and output channels
   std::vector<std::int64_t> fS, fK, fY; // input, kernel and output spatial sizes
};

} // namespace jax2sofie
