// What the two project-owned convolutions (J2S_Conv in NC<spatial> layout, J2S_ConvNHWC in
// N<spatial>C layout) share: their attributes, the output size of each spatial axis and the checks
// on them, and two small integer helpers of their code generators.
#pragma once

#include "SOFIE/SOFIE_common.hxx"

#include <algorithm>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace jax2sofie {

struct ConvParams {
   std::vector<std::int64_t> strides, pads, dilations, lhs_dilations; // pads: lo... then hi...
   std::int64_t group = 1;
   std::string activation; // "" | "relu" | "relu6" (J2S_Conv: "" | "relu")
};

inline std::int64_t Prod(const std::vector<std::int64_t> &v)
{
   std::int64_t p = 1;
   for (auto x : v)
      p *= x;
   return p;
}

inline std::vector<std::int64_t> RowMajorStrides(const std::vector<std::int64_t> &shape)
{
   std::vector<std::int64_t> strides(shape.size(), 1);
   for (std::size_t i = shape.size(); i-- > 1;)
      strides[i - 1] = strides[i] * shape[i];
   return strides;
}

/// The output size of each spatial axis, Yi = floor((Si' + lo + hi - ((Ki-1)*di + 1)) / si) + 1 with
/// Si' = (Si-1)*li + 1, after checking that every attribute has one entry per axis (pads two).
inline std::vector<std::int64_t> ConvOutputSizes(const std::string &kind, const std::vector<std::int64_t> &spatial,
                                                 const std::vector<std::int64_t> &kernel, const ConvParams &p)
{
   const std::size_t d = spatial.size();
   auto check = [&](const std::vector<std::int64_t> &v, std::size_t n, const char *what) {
      if (v.size() != n)
         throw std::runtime_error(kind + ": '" + what + "' needs " + std::to_string(n) + " entries");
   };
   check(p.strides, d, "strides");
   check(p.pads, 2 * d, "pads");
   check(p.dilations, d, "dilations");
   check(p.lhs_dilations, d, "lhs_dilations");
   std::vector<std::int64_t> y;
   for (std::size_t i = 0; i < d; i++) {
      const std::int64_t dilatedIn = (spatial[i] - 1) * p.lhs_dilations[i] + 1;
      const std::int64_t dilatedK = (kernel[i] - 1) * p.dilations[i] + 1;
      const std::int64_t span = dilatedIn + p.pads[i] + p.pads[d + i] - dilatedK;
      if (p.strides[i] < 1 || p.dilations[i] < 1 || p.lhs_dilations[i] < 1 || span < 0)
         throw std::runtime_error(kind + ": empty output or non-positive stride/dilation on spatial axis " +
                                  std::to_string(i));
      y.push_back(span / p.strides[i] + 1);
   }
   return y;
}

/// The spatial sizes of the input with its padding (pads: lo... then hi..., all >= 0).
inline std::vector<std::int64_t> PaddedSizes(const std::vector<std::int64_t> &spatial, const std::vector<std::int64_t> &pads)
{
   const std::size_t d = spatial.size();
   std::vector<std::int64_t> p(d);
   for (std::size_t i = 0; i < d; i++)
      p[i] = spatial[i] + pads[i] + pads[d + i];
   return p;
}

/// The static sizes of dims [from, to) of a shape; `what` names the tensor in the error.
inline std::vector<std::int64_t> StaticDims(const std::string &kind, const std::vector<SOFIE::Dim> &shape,
                                            std::size_t from, std::size_t to, const char *what)
{
   std::vector<std::int64_t> v;
   for (std::size_t i = from; i < to; i++) {
      if (shape[i].isParam)
         throw std::runtime_error(kind + ": only the batch dimension may be symbolic (" + what + ")");
      v.push_back(static_cast<std::int64_t>(shape[i].dim));
   }
   return v;
}

/// Float32 input and kernel of equal rank 3, 4 or 5 (1 to 3 spatial axes); returns that rank.
inline std::size_t CheckConvOperands(const std::string &kind, SOFIE::ETensorType xType, const std::vector<SOFIE::Dim> &x,
                                     SOFIE::ETensorType wType, const std::vector<SOFIE::Dim> &w)
{
   if (xType != SOFIE::ETensorType::FLOAT || wType != SOFIE::ETensorType::FLOAT)
      throw std::runtime_error(kind + ": float32 input and kernel only");
   if (x.size() < 3 || x.size() > 5 || w.size() != x.size())
      throw std::runtime_error(kind + ": input and kernel must both be of rank 3, 4 or 5");
   return x.size();
}

/// A residual input must be float32 of the output's shape `y` (batch dimension aside).
inline void CheckResidual(const std::string &kind, SOFIE::ETensorType type, const std::vector<SOFIE::Dim> &r,
                          const std::vector<SOFIE::Dim> &y)
{
   if (type != SOFIE::ETensorType::FLOAT || r.size() != y.size() || !std::equal(y.begin() + 1, y.end(), r.begin() + 1))
      throw std::runtime_error(kind + ": the residual must be float32 of the output's shape " +
                               SOFIE::ConvertDimShapeToString(y));
}

/// One input of a padded copy: the name of its pointer in the generated code and its channels.
struct CopiedPart {
   std::string pointer;
   std::int64_t channels;
};

/// Code that copies channels-last inputs [S..., c_i] side by side along channels (a concatenated
/// input; usually one part, x [S..., C]) into the interior of the zero-bordered buffer j2s_pad
/// (strides `pstride`, in floats; the interior starts at padLo[i] along spatial axis i, only the first
/// S.size() entries of padLo are read) and points xp at it. One part: one memcpy of S_last * C floats
/// per outer position; several: per pixel, one memcpy of c_i floats per part. Shared by the
/// channels-last convolutions (ConvNHWC, ConvDepthwise, ConvTransposeNHWC).
inline std::string PaddedCopyCode(const std::vector<std::int64_t> &S, const std::vector<CopiedPart> &parts,
                                  const std::vector<std::int64_t> &padLo, const std::vector<std::int64_t> &pstride,
                                  const std::string &ind)
{
   const std::size_t d = S.size();
   const std::vector<std::int64_t> sstride = RowMajorStrides(S); // in pixels
   std::int64_t offset = 0; // of the interior's first element
   for (std::size_t i = 0; i < d; i++)
      offset += padLo[i] * pstride[i];
   std::ostringstream out;
   out << ind << "{\n" << ind << "float *pad = j2s_pad + " << offset << ";\n";
   std::vector<std::string> src(parts.size(), "0"); // in floats of each part
   std::string dst = "0";
   for (std::size_t i = 0; i + 1 < d; i++) {
      const std::string v = "i" + std::to_string(i);
      out << ind << "for (std::int64_t " << v << " = 0; " << v << " < " << S[i] << "; " << v << "++)\n";
      for (std::size_t k = 0; k < parts.size(); k++)
         src[k] += " + " + v + " * " + std::to_string(sstride[i] * parts[k].channels);
      dst += " + " + v + " * " + std::to_string(pstride[i]);
   }
   if (parts.size() == 1) {
      out << ind << "   std::memcpy(pad + " << dst << ", " << parts[0].pointer << " + " << src[0] << ", "
          << S[d - 1] * parts[0].channels << " * sizeof(float));\n";
   } else {
      std::int64_t channels = 0;
      for (const auto &part : parts)
         channels += part.channels;
      out << ind << "for (std::int64_t p = 0; p < " << S[d - 1] << "; p++) {\n";
      out << ind << "   float *dst = pad + " << dst << " + p * " << channels << ";\n";
      std::int64_t at = 0;
      for (std::size_t k = 0; k < parts.size(); k++) {
         out << ind << "   std::memcpy(dst + " << at << ", " << parts[k].pointer << " + " << src[k] << " + p * "
             << parts[k].channels << ", " << parts[k].channels << " * sizeof(float));\n";
         at += parts[k].channels;
      }
      out << ind << "}\n";
   }
   out << ind << "xp = j2s_pad;\n" << ind << "}\n";
   return out.str();
}

/// The copy of one input x [S..., C] (see above).
inline std::string PaddedCopyCode(const std::vector<std::int64_t> &S, std::int64_t C,
                                  const std::vector<std::int64_t> &padLo, const std::vector<std::int64_t> &pstride,
                                  const std::string &ind)
{
   return PaddedCopyCode(S, std::vector<CopiedPart>{{"x", C}}, padLo, pstride, ind);
}

/// The statement `a = min(a, 6)` for vector `a` of `width` floats, after VectorRelu: ReLU6, the
/// clamp(0, 6) of MobileNets (a mask of the lanes above 6 selects 6 there; lane by lane on other compilers).
inline std::string VectorMinSix(const std::string &a, std::int64_t width)
{
   const std::string w = std::to_string(width), vf = "j2s_vf" + w, vi = "j2s_vi" + w;
   return "\n#if defined(__GNUC__) || defined(__clang__)\n{ const " + vi + " j2s_above = " + a + " > 6.0f; " + a + " = (" +
          vf + ")(((" + vi + ")" + a + " & ~j2s_above) | ((" + vi + ")(" + vf + "{} + 6.0f) & j2s_above)); }\n#else\nfor (int l = 0; l < " +
          w + "; l++) " + a + "[l] = " + a + "[l] > 6.0f ? 6.0f : " + a + "[l];\n#endif";
}

inline std::string CloseLoops(std::size_t n, const std::string &ind)
{
   std::string s;
   for (std::size_t j = 0; j < n; j++)
      s += ind + "}\n";
   return s;
}

} // namespace jax2sofie
