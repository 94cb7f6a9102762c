// jax2sofie's window reduction (lax.reduce_window with a max, min or add body) over ANY axes.
//
// Why not SOFIE's Pool: it needs a 3-5-D NC<spatial> input and cannot pool over the batch or
// channel axis, nor pad with anything but its own rule. This one takes a tensor of any rank and a
// window per axis, so it also works in NHWC directly, and the layout pass moves transposes through
// it by permuting its attributes.
//   X [S0..S(r-1)]; window, strides, dilations (of the window) per axis; pads (lo0.., hi0..);
//   mode "max" | "min" | "sum"; init (float): the reduction starts from it once per window; padded
//   positions read the neutral element of the mode (what lax.reduce_window computes on the CPU).
// Output Yi = floor((Si + lo + hi - ((wi-1)*di + 1)) / si) + 1. A symbolic (batch) axis must have
// window 1, stride 1 and no padding.
//
// Generated code: one loop per output axis; per output element one loop per axis whose window is
// larger than 1. When the last axis is plain (channels-last pooling), its channels are the innermost
// loop, with one in-range test per window position. The loops are compiled per instruction-set level.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <iomanip>
#include <limits>
#include <sstream>

namespace jax2sofie {

class PoolOperator final : public OwnedOperator {
public:
   struct Params {
      std::vector<std::int64_t> window, strides, pads, dilations;
      std::string mode;
      double init = 0.0;
   };

   PoolOperator(std::string input, std::string output, Params p)
      : OwnedOperator("J2S_Pool", {std::move(input)}, {std::move(output)}), fP(std::move(p))
   {
      if (fP.mode != "max" && fP.mode != "min" && fP.mode != "sum")
         throw std::runtime_error("J2S_Pool: mode must be max, min or sum, not '" + fP.mode + "'");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0).shape;
      if (in[0].type != SOFIE::ETensorType::FLOAT)
         throw std::runtime_error("J2S_Pool: float32 input only");
      const std::size_t r = x.size();
      if (fP.window.size() != r || fP.strides.size() != r || fP.dilations.size() != r || fP.pads.size() != 2 * r)
         throw std::runtime_error("J2S_Pool: window/strides/dilations need " + std::to_string(r) +
                                  " entries and pads " + std::to_string(2 * r) + " for input " +
                                  SOFIE::ConvertDimShapeToString(x));
      std::vector<SOFIE::Dim> y;
      for (std::size_t i = 0; i < r; i++) {
         if (x[i].isParam) {
            if (fP.window[i] != 1 || fP.strides[i] != 1 || fP.pads[i] != 0 || fP.pads[r + i] != 0)
               throw std::runtime_error("J2S_Pool: the symbolic axis " + std::to_string(i) +
                                        " must have window 1, stride 1 and no padding");
            y.push_back(x[i]);
            continue;
         }
         const std::int64_t span = static_cast<std::int64_t>(x[i].dim) + fP.pads[i] + fP.pads[r + i] -
                                   ((fP.window[i] - 1) * fP.dilations[i] + 1);
         if (fP.window[i] < 1 || fP.strides[i] < 1 || fP.dilations[i] < 1 || span < 0)
            throw std::runtime_error("J2S_Pool: empty output or non-positive window/stride/dilation on axis " +
                                     std::to_string(i));
         y.emplace_back(static_cast<std::size_t>(span / fP.strides[i] + 1));
      }
      return {{SOFIE::ETensorType::FLOAT, y}};
   }

   /// The loops compiled per instruction-set level (codegen::KernelFunctions): the channel loop of a
   /// channels-last pooling vectorises with the level's registers.
   bool UsesKernel() const override { return true; }
   std::string KernelCode(const codegen::Isa &) override { return ChannelsLast() ? ChannelsLastCode() : GeneralCode(); }

   std::string GeneralCode() const
   {
      const std::size_t r = InInfo(0).shape.size();
      codegen::Code out;
      out.Line("{");
      out.Line("float *dst = " + Out(0) + ";");
      OutputLoops(out, r);
      out.Line("float acc = " + InitLiteral() + ";");
      std::string offset, cond;
      const std::size_t opened = WindowLoops(out, r, offset, cond);
      const std::string value = cond.empty() ? In(0) + "[" + offset + "]"
                                              : "((" + cond + ") ? " + Neutral() + " : " + In(0) + "[" + offset + "])";
      out.Line("const float v = " + value + ";");
      if (fP.mode == "max")
         out.Line("acc = v > acc ? v : acc;");
      else if (fP.mode == "min")
         out.Line("acc = v < acc ? v : acc;");
      else
         out.Line("acc += v;");
      out.Close(opened);
      out.Line("*dst++ = acc;");
      out.Close(r);
      out.Line("}");
      return out.Str();
   }

private:
   /// Whether the last axis is a plain one (window 1, stride 1, no padding, a number): the channels of
   /// a channels-last pooling, which ChannelsLastCode runs as the innermost loop.
   bool ChannelsLast() const
   {
      const auto &xs = InInfo(0).shape;
      const std::size_t r = xs.size(), last = r - 1;
      return r >= 2 && !xs[last].isParam && fP.window[last] == 1 && fP.strides[last] == 1 && fP.pads[last] == 0 &&
             fP.pads[r + last] == 0;
   }

   /// As GeneralCode, with the channels (the last axis) innermost: per output pixel the accumulators
   /// of all its channels, one in-range test per window position (not per value), and a loop over the
   /// channels with a known trip count, which GCC vectorises at -O2 too.
   std::string ChannelsLastCode() const
   {
      const auto &xs = InInfo(0).shape;
      const std::size_t last = xs.size() - 1;
      const std::string c = xs[last].GetVal();
      codegen::Code out;
      out.Line("float *dst = " + Out(0) + ";");
      OutputLoops(out, last);
      out.Line("float acc[" + c + "];");
      out.Line("for (std::int64_t ch = 0; ch < " + c + "; ch++) acc[ch] = " + InitLiteral() + ";");
      std::string offset, cond;
      const std::size_t opened = WindowLoops(out, last, offset, cond);
      const std::string combine = fP.mode == "max" ? "acc[ch] = v > acc[ch] ? v : acc[ch];"
                                : fP.mode == "min" ? "acc[ch] = v < acc[ch] ? v : acc[ch];"
                                                   : "acc[ch] += v;";
      const std::string fromInput = "const float *xp = " + In(0) + " + " + offset + "; for (std::int64_t ch = 0; ch < " +
                                    c + "; ch++) { const float v = xp[ch]; " + combine + " }";
      if (cond.empty()) {
         out.Line(fromInput);
      } else { // a padded position reads the neutral element, as in GeneralCode
         out.Open("if (" + cond + ")");
         out.Line("for (std::int64_t ch = 0; ch < " + c + "; ch++) { const float v = " + Neutral() + "; " + combine +
                  " }");
         out.Continue("else");
         out.Line(fromInput);
         out.Close();
      }
      out.Close(opened);
      out.Line("for (std::int64_t ch = 0; ch < " + c + "; ch++) dst[ch] = acc[ch];");
      out.Line("dst += " + c + ";");
      out.Close(last);
      return out.Str();
   }

   /// The loops over the output's axes [0, n), each with the input position of its window's origin
   /// (o<i>); `out` ends inside them.
   void OutputLoops(codegen::Code &out, std::size_t n) const
   {
      const auto &ys = OutInfo(0).shape;
      for (std::size_t i = 0; i < n; i++) {
         const std::string y = "y" + std::to_string(i);
         out.Loop(y, "static_cast<std::int64_t>(" + ys[i].GetVal() + ")", "std::int64_t");
         out.Line("const std::int64_t o" + std::to_string(i) + " = " + y + " * " + std::to_string(fP.strides[i]) +
                  " - " + std::to_string(fP.pads[i]) + ";");
      }
   }

   /// The window loops of axes [0, n) whose window is larger than 1 (t<i>: the input position read;
   /// an axis with window 1 reads at o<i>, in range unless padded). Sets `offset` to the input offset
   /// read and `cond` to the test of a position outside the input ("" when none can be); `out` ends
   /// inside the loops; returns how many it opened.
   std::size_t WindowLoops(codegen::Code &out, std::size_t n, std::string &offset, std::string &cond) const
   {
      const auto &xs = InInfo(0).shape;
      const std::size_t r = xs.size();
      // strides of the input, as C++ expressions (an axis may be symbolic)
      const std::vector<std::string> inStride = codegen::Strides(xs);
      offset = "0";
      cond.clear();
      std::size_t opened = 0;
      for (std::size_t i = 0; i < n; i++) {
         const std::string idx = fP.window[i] == 1 ? "o" + std::to_string(i) : "t" + std::to_string(i);
         if (fP.window[i] > 1) {
            const std::string w = "w" + std::to_string(i);
            out.Loop(w, std::to_string(fP.window[i]), "std::int64_t");
            opened++;
            out.Line("const std::int64_t t" + std::to_string(i) + " = o" + std::to_string(i) + " + " + w + " * " +
                     std::to_string(fP.dilations[i]) + ";");
         }
         const bool mayLeave = fP.window[i] > 1 || fP.pads[i] != 0 || fP.pads[r + i] != 0 || fP.strides[i] != 1;
         if (mayLeave && !xs[i].isParam)
            cond += std::string(cond.empty() ? "" : " || ") + "(" + idx + " < 0 || " + idx + " >= " + xs[i].GetVal() + ")";
         offset += " + " + idx + " * (" + inStride[i] + ")";
      }
      return opened;
   }

   /// What a padded position reads: the neutral element of the reduction. lax.reduce_window (CPU)
   /// applies init_value once per window, not once per padded element (checked against JAX 0.10).
   std::string Neutral() const
   {
      if (fP.mode == "max")
         return "(-std::numeric_limits<float>::infinity())";
      if (fP.mode == "min")
         return "std::numeric_limits<float>::infinity()";
      return "0.0f";
   }

   std::string InitLiteral() const
   {
      if (fP.init == std::numeric_limits<double>::infinity())
         return "std::numeric_limits<float>::infinity()";
      if (fP.init == -std::numeric_limits<double>::infinity())
         return "(-std::numeric_limits<float>::infinity())";
      if (fP.init != fP.init)
         return "std::numeric_limits<float>::quiet_NaN()";
      std::ostringstream s;
      s << std::setprecision(9) << static_cast<float>(fP.init) << "f";
      std::string text = s.str();
      if (text.find_first_of(".e") == std::string::npos)
         text.insert(text.size() - 1, ".0");
      return "(" + text + ")";
   }

   Params fP;
};

} // namespace jax2sofie
