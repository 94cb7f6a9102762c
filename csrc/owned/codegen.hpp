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

inline bool IsFloat(SOFIE::ETensorType t)
{
   return t == SOFIE::ETensorType::FLOAT || t == SOFIE::ETensorType::DOUBLE;
}

} // namespace jax2sofie::codegen
