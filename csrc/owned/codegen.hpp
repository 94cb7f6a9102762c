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

/// Generated-code writer: nested blocks (loops, ifs, plain braces) with their indentation, three
/// spaces per level. Every operator's code generator writes its nested loops through it, so that the
/// indentation of the generated code is kept in one place.
class Code {
public:
   explicit Code(int depth = 1) : fIndent(3 * depth, ' ') {}
   /// One line at the current indentation.
   Code &Line(const std::string &s)
   {
      fOut << fIndent << s << "\n";
      return *this;
   }
   /// Text as it is (already indented, or a preprocessor line).
   Code &Raw(const std::string &text)
   {
      fOut << text;
      return *this;
   }
   /// "head {" and one level deeper.
   void Open(const std::string &head)
   {
      Line(head + " {");
      fIndent += "   ";
   }
   /// A bare "{" (a scope) and one level deeper.
   void OpenScope()
   {
      Line("{");
      fIndent += "   ";
   }
   /// for (size_t var = 0; var < bound; var++) {
   void Loop(const std::string &var, const std::string &bound, const std::string &type = "size_t")
   {
      Open("for (" + type + " " + var + " = 0; " + var + " < " + bound + "; " + var + "++)");
   }
   /// One level up and "}".
   void Close()
   {
      fIndent.resize(fIndent.size() - 3);
      Line("}");
   }
   /// `n` times Close().
   void Close(std::size_t n)
   {
      for (std::size_t i = 0; i < n; i++)
         Close();
   }
   /// "} head {" (an else branch) at the level of the block it ends.
   void Continue(const std::string &head)
   {
      fIndent.resize(fIndent.size() - 3);
      Open("} " + head);
   }
   /// The current indentation (for text written by helpers that take it).
   const std::string &Indentation() const { return fIndent; }
   std::string Str() const { return fOut.str(); }

private:
   std::stringstream fOut;
   std::string fIndent;
};

/// An instruction-set level the vector kernels are written for. A header holds each kernel once per
/// level its build can run (x86: a function with a target attribute, so a plain `-O2` build still
/// has the AVX2 and AVX-512 code) and picks one at run time from the CPU (see DispatchPrelude).
struct Isa {
   int level;          // 2: AVX-512, 1: AVX2 + FMA, 0: the build's own flags (SSE2 on x86-64, NEON on aarch64)
   std::string name;   // suffix of the kernel functions
   std::string target; // the macro holding the level's function attribute (empty for level 0)
   int width;          // floats per vector register
   int registers;      // vector registers
};

/// The levels, widest first.
inline const std::vector<Isa> &IsaLevels()
{
   static const std::vector<Isa> levels = {
      {2, "avx512", "J2S_TARGET_AVX512", 16, 32},
      {1, "avx2", "J2S_TARGET_AVX2", 8, 16},
      {0, "base", "", 4, 16},
   };
   return levels;
}

/// The macros every dispatched kernel relies on, defined once per translation unit (identical in every
/// header, so several generated headers can be included together):
///   J2S_X86_DISPATCH  1 where kernels for wider x86 levels are compiled in and chosen at run time;
///   J2S_MAX_ISA       the widest level used (-DJ2S_MAX_ISA=1 caps it at AVX2, 0 at the build's flags);
///   J2S_MIN_ISA       the level the build's own flags already give (-march=native on an AVX-512 CPU: 2),
///                     below which no kernel is compiled: it could never run;
///   J2S_CPU_ISA       the level of the CPU running the code (CPUID, and XGETBV for the registers the
///                     operating system saves; no libgcc symbol, so ROOT's interpreter can run it too).
inline std::string DispatchPrelude()
{
   return R"(#ifndef J2S_DISPATCH_PRELUDE
#define J2S_DISPATCH_PRELUDE
#ifndef J2S_MAX_ISA
#define J2S_MAX_ISA 2
#endif
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && !defined(J2S_NO_DISPATCH)
#define J2S_X86_DISPATCH 1
#else
#define J2S_X86_DISPATCH 0
#endif
#if J2S_X86_DISPATCH && J2S_MAX_ISA >= 2 && defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__AVX512DQ__)
#define J2S_MIN_ISA 2
#elif J2S_X86_DISPATCH && J2S_MAX_ISA >= 1 && defined(__AVX2__) && defined(__FMA__)
#define J2S_MIN_ISA 1
#else
#define J2S_MIN_ISA 0
#endif
#define J2S_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#define J2S_TARGET_AVX2 __attribute__((target("avx2,fma")))
#if J2S_X86_DISPATCH
/* The widest level this CPU and its operating system run: the CPUID feature bits, and XGETBV for the
   vector registers the operating system saves. Read with inline assembly in a lambda (usable in any
   scope, no header): __builtin_cpu_supports needs libgcc's __cpu_model, which a JIT such as ROOT's
   interpreter cannot resolve. */
#define J2S_CPU_ISA ([]() -> int { \
   unsigned r[4] = {0, 0, 0, 0}; \
   __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(0u), "c"(0u)); \
   const unsigned max_leaf = r[0]; \
   __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(1u), "c"(0u)); \
   if (max_leaf < 7 || !(r[2] & (1u << 27)) || !(r[2] & (1u << 28))) /* OSXSAVE, AVX */ \
      return 0; \
   const bool fma = (r[2] & (1u << 12)) != 0; \
   unsigned xcr0 = 0, xcr0_high = 0; \
   __asm__ __volatile__("xgetbv" : "=a"(xcr0), "=d"(xcr0_high) : "c"(0u)); \
   (void)xcr0_high; \
   const bool ymm_saved = (xcr0 & 0x6u) == 0x6u, zmm_saved = (xcr0 & 0xe6u) == 0xe6u; \
   __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(7u), "c"(0u)); \
   const bool avx2 = (r[1] & (1u << 5)) != 0; \
   const bool avx512 = (r[1] & (1u << 16)) && (r[1] & (1u << 17)) && (r[1] & (1u << 30)) && \
                       (r[1] & (1u << 31)); /* F, DQ, BW, VL */ \
   if (J2S_MAX_ISA >= 2 && zmm_saved && avx512 && avx2 && fma) \
      return 2; \
   if (J2S_MAX_ISA >= 1 && ymm_saved && avx2 && fma) \
      return 1; \
   return 0; \
}())
#else
#define J2S_CPU_ISA 0
#endif
#endif
)";
}

/// The preprocessor condition under which the kernel of `isa` is compiled.
inline std::string KernelCondition(const Isa &isa)
{
   if (isa.level == 0)
      return "!J2S_X86_DISPATCH || J2S_MIN_ISA == 0";
   const std::string l = std::to_string(isa.level);
   return "J2S_X86_DISPATCH && J2S_MAX_ISA >= " + l + " && J2S_MIN_ISA <= " + l;
}

inline std::string VectorTypes(const std::string &body, const std::string &ind);

/// A kernel compiled once per level: its parameter declarations and the arguments that the call in
/// doInfer passes.
struct Kernel {
   std::vector<std::string> parameters, arguments;
};

/// `items` separated by ", ".
inline std::string CommaList(const std::vector<std::string> &items)
{
   std::string s;
   for (auto &item : items)
      s += (s.empty() ? "" : ", ") + item;
   return s;
}

/// 64-bit FNV-1a of `text`, in hex: the same on every platform, unlike std::hash.
inline std::string Fingerprint(const std::string &text)
{
   std::uint64_t h = 1469598103934665603ull;
   for (unsigned char c : text) {
      h ^= c;
      h *= 1099511628211ull;
   }
   std::ostringstream out;
   out << std::hex << h;
   return out.str();
}

/// The kernel's name and its functions (`body(isa)`: the statements of each level). The name comes
/// from a fingerprint of the functions' text, so that operators with the same kernel (the steps of an
/// unrolled recurrent layer, the blocks of a transformer) share one function.
template <class Body>
std::pair<std::string, std::string> KernelDefinition(const Kernel &k, Body body)
{
   const std::string params = CommaList(k.parameters);
   std::vector<std::string> codes;
   std::string all = params;
   for (const Isa &isa : IsaLevels()) {
      codes.push_back(body(isa));
      all += "\n" + codes.back();
   }
   const std::string name = "j2s_kernel_" + Fingerprint(all);
   std::string s;
   for (std::size_t i = 0; i < IsaLevels().size(); i++) {
      const Isa &isa = IsaLevels()[i];
      s += "#if " + KernelCondition(isa) + "\n";
      s += (isa.target.empty() ? "" : isa.target + " ") + std::string("static void ") + name + "_" + isa.name + "(" +
           params + ")\n{\n" + VectorTypes(codes[i], "   ") + codes[i] + "}\n";
      s += "#endif\n";
   }
   return {name, s};
}

/// The kernel's functions (`definition`: KernelDefinition's name and text), static members of the
/// Session, defined once per model (a macro named after the model and the kernel guards them).
inline std::string KernelFunctions(const std::pair<std::string, std::string> &definition, const std::string &model)
{
   const std::string guard = "J2S_" + model + "_" + definition.first;
   return DispatchPrelude() + "#ifndef " + guard + "\n#define " + guard + "\n" + definition.second + "#endif\n";
}

/// The statements in doInfer that call kernel `name` of the CPU's level (or the only one compiled).
inline std::string KernelCall(const Kernel &k, const std::string &name)
{
   const std::string args = CommaList(k.arguments);
   auto call = [&](const Isa &isa) { return "Session::" + name + "_" + isa.name + "(" + args + ");\n"; };
   std::string s = "   {\n#if J2S_X86_DISPATCH\n";
   s += "   static const int j2s_isa = J2S_CPU_ISA;\n   (void)j2s_isa;\n";
   for (const Isa &isa : IsaLevels()) {
      if (isa.level == 0)
         break;
      const std::string l = std::to_string(isa.level);
      s += "#if J2S_MAX_ISA >= " + l + " && J2S_MIN_ISA < " + l + "\n";
      s += "   if (j2s_isa >= " + l + ") " + call(isa) + "   else\n";
      s += "#elif J2S_MIN_ISA == " + l + "\n   " + call(isa) + "#endif\n";
   }
   s += "#if J2S_MIN_ISA == 0\n   " + call(IsaLevels().back()) + "#endif\n";
   s += "#else\n   " + call(IsaLevels().back()) + "#endif\n   }\n";
   return s;
}

/// One block of a row of n values in vectors of `width` floats: values [first, first + lanes),
/// lanes < width only for the last block (loaded and stored through memcpy).
struct VectorBlock {
   std::int64_t first, width, lanes;
};

/// A row of n values as vector blocks of at most `maxWidth` floats (16, 8 or 4): full ones, then one
/// block of each smaller width for what is left, the last possibly partial.
inline std::vector<VectorBlock> VectorBlocks(std::int64_t n, std::int64_t maxWidth)
{
   std::vector<VectorBlock> blocks;
   std::int64_t first = 0;
   for (; first + maxWidth <= n; first += maxWidth)
      blocks.push_back({first, maxWidth, maxWidth});
   std::int64_t width = maxWidth;
   while (first < n) {
      while (width > 4 && n - first < width)
         width /= 2;
      const std::int64_t lanes = std::min<std::int64_t>(width, n - first);
      blocks.push_back({first, width, lanes});
      first += lanes;
   }
   return blocks;
}

/// The vector type of `width` floats.
inline std::string VectorType(std::int64_t width)
{
   return "j2s_vf" + std::to_string(width);
}

/// The statement declaring vector `v` of `block` loaded from float pointer expression `p` (a partial
/// block through memcpy of its lanes into a zeroed vector).
inline std::string VectorLoad(const VectorBlock &block, const std::string &v, const std::string &p, bool isConst = true)
{
   const std::string t = VectorType(block.width);
   if (block.lanes == block.width)
      return (isConst ? "const " : "") + t + " " + v + " = *reinterpret_cast<const " + t + " *>(" + p + ");";
   return t + " " + v + "{}; std::memcpy(&" + v + ", " + p + ", " + std::to_string(block.lanes) + " * sizeof(float));";
}

/// The statement storing vector `v` of `block` at `p` (its lanes only, when partial).
inline std::string VectorStore(const VectorBlock &block, const std::string &p, const std::string &v)
{
   if (block.lanes == block.width)
      return "*reinterpret_cast<" + VectorType(block.width) + " *>(" + p + ") = " + v + ";";
   return "std::memcpy(" + p + ", &" + v + ", " + std::to_string(block.lanes) + " * sizeof(float));";
}

/// The statement `a = max(a, 0)` for vector `a` of `width` floats (NaN gives 0, like `v > 0 ? v : 0`):
/// with GCC and Clang a mask of the lanes above 0 and'ed with the bits (the two differ on ?: over
/// vectors, and a loop over the lanes, which GCC -O3 unrolls into one scalar per lane, took the vector
/// out of its register); lane by lane elsewhere.
inline std::string VectorRelu(const std::string &a, std::int64_t width)
{
   const std::string w = std::to_string(width);
   return "\n#if defined(__GNUC__) || defined(__clang__)\n" + a + " = (j2s_vf" + w + ")((j2s_vi" + w + ")" + a + " & (" +
          a + " > 0.0f));\n#else\nfor (int l = 0; l < " + w + "; l++) " + a + "[l] = " + a + "[l] > 0.0f ? " + a +
          "[l] : 0.0f;\n#endif";
}

/// `a += w * x` for vector accumulator `a`, vector `w` and float `x` (a fused multiply-add where the
/// level has one).
inline std::string VectorFma(const std::string &a, const std::string &w, const std::string &x)
{
   return a + " += " + w + " * " + x + ";";
}

/// Local declarations of the vector types that `body` names (j2s_vf16, j2s_vf8, j2s_vf4), to put at the
/// top of a kernel: GCC and Clang vector extensions, which the kernel's target maps onto its registers;
/// `may_alias` and 4-byte alignment make a vector read or written through a float pointer a plain
/// unaligned load or store (as the compilers' own __m512_u is declared); `unused`: a body may name a
/// type only in a branch the preprocessor drops. Other compilers get structs of floats with the
/// operators the kernels use: the same numbers, without the speed.
inline std::string VectorTypes(const std::string &body, const std::string &ind)
{
   std::ostringstream gnu, other;
   for (int w : {16, 8, 4}) {
      const std::string t = VectorType(w), n = std::to_string(w);
      if (body.find(t) == std::string::npos)
         continue;
      gnu << ind << "typedef float " << t << " __attribute__((vector_size(" << 4 * w << "), aligned(4), may_alias, unused));\n";
      if (body.find("j2s_vi" + n) != std::string::npos)
         gnu << ind << "typedef std::int32_t j2s_vi" << n << " __attribute__((vector_size(" << 4 * w << "), unused));\n";
      other << ind << "struct " << t << " {\n";
      other << ind << "   float v[" << n << "];\n";
      other << ind << "   float &operator[](int l) { return v[l]; }\n";
      other << ind << "   " << t << " &operator+=(const " << t << " &o) { for (int l = 0; l < " << n
            << "; l++) v[l] += o.v[l]; return *this; }\n";
      other << ind << "   " << t << " operator*(float x) const { " << t << " r; for (int l = 0; l < " << n
            << "; l++) r.v[l] = v[l] * x; return r; }\n";
      other << ind << "};\n";
   }
   if (gnu.str().empty())
      return "";
   return "#if defined(__GNUC__) || defined(__clang__)\n" + gnu.str() + "#else\n" + other.str() + "#endif\n";
}

inline bool IsFloat(SOFIE::ETensorType t)
{
   return t == SOFIE::ETensorType::FLOAT || t == SOFIE::ETensorType::DOUBLE;
}

} // namespace jax2sofie::codegen
