// Helpers shared by the project-owned operators' code generators: C++ expressions for sizes and
// offsets built from SOFIE Dims (a symbolic batch "bs" stays a name; the numbers are folded:
// "bs*20", not "bs*4*5"), and a writer of nested loops with their indentation.
#pragma once

#include "SOFIE/SOFIE_common.hxx"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie::codegen {

using SOFIE::Dim;
using Shape = std::vector<Dim>;

inline std::string Paren(const std::string &e)
{
   const bool plain = std::all_of(e.begin(), e.end(), [](char c) { return std::isalnum(c) || c == '_'; });
   return plain ? e : "(" + e + ")";
}

/// The product of dims [from, to) as a C++ expression with the numbers folded ("1" when empty).
inline std::string Product(const Shape &dims, std::size_t from = 0, std::size_t to = SIZE_MAX)
{
   to = std::min(to, dims.size());
   std::size_t number = 1;
   std::string symbols;
   for (std::size_t i = from; i < to; i++) {
      if (dims[i].isParam)
         symbols += (symbols.empty() ? "" : "*") + Paren(dims[i].param);
      else
         number *= dims[i].dim;
   }
   if (symbols.empty() || number == 0)
      return std::to_string(number);
   return number == 1 ? symbols : symbols + "*" + std::to_string(number);
}

/// Row-major strides of `shape`, as expressions.
inline std::vector<std::string> Strides(const Shape &shape)
{
   std::vector<std::string> s(shape.size());
   for (std::size_t i = 0; i < shape.size(); i++)
      s[i] = Product(shape, i + 1);
   return s;
}

/// "i*stride" (or "i" for a unit stride); empty for a zero stride.
inline std::string Scaled(const std::string &index, const std::string &stride)
{
   if (stride == "0")
      return "";
   return stride == "1" ? index : index + "*" + Paren(stride);
}

/// Sum of terms ("0" when there are none).
inline std::string Sum(const std::vector<std::string> &terms)
{
   std::string out;
   for (auto &t : terms)
      if (!t.empty())
         out += (out.empty() ? "" : " + ") + t;
   return out.empty() ? "0" : out;
}

/// Generated-code writer: nested loops with their indentation.
class Code {
public:
   explicit Code(int depth = 1) : fIndent(3 * depth, ' ') {}
   Code &Line(const std::string &s)
   {
      fOut << fIndent << s << "\n";
      return *this;
   }
   void Open(const std::string &head)
   {
      Line(head + " {");
      fIndent += "   ";
   }
   void Loop(const std::string &var, const std::string &bound)
   {
      Open("for (size_t " + var + " = 0; " + var + " < " + bound + "; " + var + "++)");
   }
   void Close()
   {
      fIndent.resize(fIndent.size() - 3);
      Line("}");
   }
   std::string Str() const { return fOut.str(); }

private:
   std::stringstream fOut;
   std::string fIndent;
};

/// One block of a row of n values in vectors of `width` floats (16, 8 or 4): values
/// [first, first + lanes), lanes < width only for the last block (loaded and stored through memcpy).
struct VectorBlock {
   std::int64_t first, width, lanes;
};

/// A row of n values as vector blocks: 16 at a time, then one block of 8 and one of 4 for what is
/// left, the last possibly partial.
inline std::vector<VectorBlock> VectorBlocks(std::int64_t n)
{
   std::vector<VectorBlock> blocks;
   std::int64_t first = 0;
   for (; first + 16 <= n; first += 16)
      blocks.push_back({first, 16, 16});
   while (first < n) {
      const std::int64_t width = n - first >= 8 ? 8 : 4, lanes = std::min<std::int64_t>(width, n - first);
      blocks.push_back({first, width, lanes});
      first += lanes;
   }
   return blocks;
}

/// The expression loading `block` from float pointer expression `p` (through memcpy of its lanes
/// into a zeroed vector when the block is partial).
inline std::string VectorLoad(const VectorBlock &block, const std::string &p)
{
   const std::string tag = "j2s_vf" + std::to_string(block.width) + "{}";
   return block.lanes == block.width ? "j2s_load(" + p + ", " + tag + ")"
                                     : "j2s_load_n(" + p + ", " + tag + ", " + std::to_string(block.lanes) + ")";
}

/// The statement storing vector `v` of `block` at `p` (its lanes only, when partial).
inline std::string VectorStore(const VectorBlock &block, const std::string &p, const std::string &v)
{
   return block.lanes == block.width ? "j2s_store(" + p + ", " + v + ");"
                                     : "j2s_store_n(" + p + ", " + v + ", " + std::to_string(block.lanes) + ");";
}

/// Vectors of 16, 8 and 4 floats and the few operations the vector kernels (J2S_ConvNHWC, J2S_Dense)
/// use on them, as generic lambdas (a default-constructed vector is the type tag of a load): GCC and
/// Clang vector extensions, which the compiler maps onto the target's registers; other compilers get
/// plain structs of floats with the same lambdas (the same numbers, without the speed). Needs <cstring>.
inline std::string VectorHelpers(const std::string &ind)
{
   std::ostringstream out;
   out << "#if defined(__GNUC__)\n";
   for (int w : {16, 8, 4})
      out << ind << "typedef float j2s_vf" << w << " __attribute__((vector_size(" << 4 * w << "), aligned(4)));\n";
   out << ind << "auto j2s_fma = [](auto &a, float x, const auto &w) { a += x * w; };\n";
   out << "#if defined(__clang__)\n";
   out << ind << "auto j2s_relu = [](auto &a) { for (unsigned l = 0; l < sizeof a / sizeof(float); l++) a[l] = a[l] > 0.0f ? a[l] : 0.0f; };\n";
   out << "#else\n";
   out << ind << "auto j2s_relu = [](auto &a) { a = a > 0.0f ? a : 0.0f; };\n";
   out << "#endif\n";
   out << "#else\n";
   for (int w : {16, 8, 4}) {
      const std::string t = "j2s_vf" + std::to_string(w), n = std::to_string(w);
      out << ind << "struct " << t << " {\n";
      out << ind << "   float v[" << n << "];\n";
      out << ind << "   " << t << " &operator+=(const " << t << " &o) { for (int l = 0; l < " << n
          << "; l++) v[l] += o.v[l]; return *this; }\n";
      out << ind << "};\n";
   }
   out << ind << "auto j2s_fma = [](auto &a, float x, const auto &w) { for (unsigned l = 0; l < sizeof a.v / sizeof(float); l++) a.v[l] += x * w.v[l]; };\n";
   out << ind << "auto j2s_relu = [](auto &a) { for (unsigned l = 0; l < sizeof a.v / sizeof(float); l++) a.v[l] = a.v[l] > 0.0f ? a.v[l] : 0.0f; };\n";
   out << "#endif\n";
   out << ind << "auto j2s_load = [](const float *p, auto v) { std::memcpy(&v, p, sizeof v); return v; };\n";
   out << ind << "auto j2s_load_n = [](const float *p, auto v, int n) { std::memcpy(&v, p, n * sizeof(float)); return v; };\n";
   out << ind << "auto j2s_store = [](float *p, const auto &v) { std::memcpy(p, &v, sizeof v); };\n";
   out << ind << "auto j2s_store_n = [](float *p, const auto &v, int n) { std::memcpy(p, &v, n * sizeof(float)); };\n";
   return out.str();
}

inline bool IsFloat(SOFIE::ETensorType t)
{
   return t == SOFIE::ETensorType::FLOAT || t == SOFIE::ETensorType::DOUBLE;
}

} // namespace jax2sofie::codegen
