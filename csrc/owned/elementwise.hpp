// J2S_Elementwise: one loop that computes a C++ expression over n broadcast inputs.
//
// The expression names input i `x<i>` (its value, read as the input's C type) and may start with
// definitions of temporaries, separated by ';':  "t0 = std::exp(x0); t0 / (1.0f + t0)"
// becomes `const auto t0 = std::exp(x0); out = t0 / (1.0f + t0);` inside the loop. The expressions
// come from one table on the Python side (jax2sofie/lowering/expressions.py), never from user data.
//
// Shapes broadcast like numpy. When every input has the output's shape the loop is flat; otherwise
// size-1 output axes are dropped, neighbouring axes along which every input broadcasts the same way
// are merged, and the loop nest keeps one running offset per input per level (no div/mod per
// element). A dynamic batch Dim ("bs") is used by name in loop bounds and strides.
//
// Besides <cmath>, an expression may call the helpers of kHelpers (defined as lambdas at the top of
// the loop's block when the expression names them): j2s_pow2i(n) = 2^n as a float for n in
// [-126, 127], j2s_bits(f) = the bits of f as an int32 and j2s_float(b) = the float of bits b, bit
// casts that the loop vectorises (ldexp is a call per element), used by the exp of expressions.py,
// bitcast_convert_type, reduce_precision and the total-order comparisons; and the special functions
// of special_functions.hpp (j2s_lgamma(x), ...), static functions of the Session written once per header.
#pragma once

#include "owned_operator.hpp"
#include "special_functions.hpp"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace jax2sofie {

class ElementwiseOperator final : public OwnedOperator {
public:
   ElementwiseOperator(std::vector<std::string> inputs, std::string output, std::string expression,
                       SOFIE::ETensorType outType)
      : OwnedOperator("J2S_Elementwise", std::move(inputs), {std::move(output)}),
        fExpression(std::move(expression)), fOutType(outType)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      std::size_t rank = 0;
      for (auto &t : in)
         rank = std::max(rank, t.shape.size());
      std::vector<SOFIE::Dim> out(rank, SOFIE::Dim(std::size_t(1)));
      for (std::size_t i = 0; i < in.size(); i++) {
         const auto &s = in[i].shape;
         for (std::size_t k = 0; k < s.size(); k++) {
            SOFIE::Dim &o = out[rank - s.size() + k];
            const SOFIE::Dim &d = s[k];
            if (IsOne(d))
               continue;
            if (IsOne(o))
               o = d;
            else if (!(o == d))
               throw std::runtime_error("jax2sofie J2S_Elementwise: input " + std::to_string(i) + " of shape " +
                                        SOFIE::ConvertDimShapeToString(s) + " does not broadcast to the others");
         }
      }
      return {{fOutType, out}};
   }

   bool UsesKernel() const override { return true; }

   /// The special functions the expression calls (special_functions.hpp), then the kernel.
   std::string GenerateSessionMembersCode(std::string opName) override
   {
      return special::Definitions(fExpression, fModelName) + OwnedOperator::GenerateSessionMembersCode(opName);
   }

   /// The same loops at every level: the compiler vectorises them for the level's registers.
   std::string KernelCode(const codegen::Isa &) override
   {
      const auto &outShape = OutInfo(0).shape;
      const std::size_t rank = outShape.size();
      // per input, per output axis: whether the input moves along it (false = broadcast)
      std::vector<std::vector<bool>> moves(fIn.size(), std::vector<bool>(rank, true));
      bool sameShapes = true;
      for (std::size_t i = 0; i < fIn.size(); i++) {
         const auto &s = fIn[i].shape;
         for (std::size_t k = 0; k < rank; k++) {
            const bool present = k + s.size() >= rank;
            const bool one = !present || IsOne(s[k + s.size() - rank]);
            moves[i][k] = !(one && !IsOne(outShape[k]));
         }
         if (SOFIE::ConvertDimShapeToLength(s) != Length(outShape))
            sameShapes = false;
      }
      std::ostringstream code;
      code << "   {\n" << Helpers(fExpression, "      ");
      if (sameShapes) {
         std::vector<std::string> index(fIn.size(), "i");
         code << InnerLoop("i", Length(outShape), [&](const std::string &) { return Body(index, "i", "         "); },
                           "      ");
         code << "   }\n";
         return code.str();
      }
      // drop size-1 output axes, merge neighbours with the same broadcast pattern
      std::vector<std::string> sizes;       // merged output extents (C++ expressions)
      std::vector<std::vector<bool>> pattern; // per merged axis: moves of each input
      for (std::size_t k = 0; k < rank; k++) {
         if (IsOne(outShape[k]))
            continue;
         std::vector<bool> p(fIn.size());
         for (std::size_t i = 0; i < fIn.size(); i++)
            p[i] = moves[i][k];
         if (!pattern.empty() && pattern.back() == p)
            sizes.back() = "(" + sizes.back() + ")*" + outShape[k].GetVal();
         else {
            sizes.push_back(outShape[k].GetVal());
            pattern.push_back(p);
         }
      }
      const std::size_t levels = sizes.size();
      if (levels == 0) { // every extent is 1: one element
         std::vector<std::string> index(fIn.size(), "0");
         code << Body(index, "0", "      ") << "   }\n";
         return code.str();
      }
      // strides: of the output over merged axes, and of each input (0 where it broadcasts)
      auto strideAfter = [&](std::size_t level, int input) {
         std::string s;
         for (std::size_t m = level + 1; m < levels; m++) {
            if (input >= 0 && !pattern[m][input])
               continue;
            s += (s.empty() ? "" : "*") + std::string("(") + sizes[m] + ")";
         }
         return s.empty() ? std::string("1") : s;
      };
      std::string indent = "      ";
      std::string outPrev = "0";
      std::vector<std::string> inPrev(fIn.size(), "0");
      for (std::size_t m = 0; m < levels; m++) {
         const std::string iv = "i" + std::to_string(m);
         const bool last = m + 1 == levels;
         const std::string outIdx = Offset(outPrev, iv, strideAfter(m, -1));
         std::vector<std::string> inIdx(fIn.size());
         for (std::size_t i = 0; i < fIn.size(); i++)
            inIdx[i] = pattern[m][i] ? Offset(inPrev[i], iv, strideAfter(m, static_cast<int>(i))) : inPrev[i];
         if (last) {
            code << InnerLoop(iv, sizes[m], [&](const std::string &) { return Body(inIdx, outIdx, indent + "   "); },
                              indent);
            break;
         }
         code << indent << "for (std::size_t " << iv << " = 0; " << iv << " < " << sizes[m] << "; " << iv << "++) {\n";
         indent += "   ";
         // hoist the offsets of this level out of the inner loops
         outPrev = "o" + std::to_string(m);
         code << indent << "const std::size_t " << outPrev << " = " << outIdx << ";\n";
         for (std::size_t i = 0; i < fIn.size(); i++) {
            if (!pattern[m][i])
               continue;
            const std::string name = "a" + std::to_string(i) + "_" + std::to_string(m);
            code << indent << "const std::size_t " << name << " = " << inIdx[i] << ";\n";
            inPrev[i] = name;
         }
      }
      for (std::size_t m = levels - 1; m-- > 0;) {
         indent.resize(indent.size() - 3);
         code << indent << "}\n";
      }
      code << "   }\n";
      return code.str();
   }

private:
   std::string fExpression;
   SOFIE::ETensorType fOutType;

   static bool IsOne(const SOFIE::Dim &d) { return !d.isParam && d.dim == 1; }

   /// Before the innermost loop: the output does not overlap an input (SOFIE places an operator's
   /// outputs before it frees its inputs' memory), so GCC at -O2, whose cost model allows no run-time
   /// overlap checks, vectorises the loop too (Clang checks for overlap at run time; told to assume
   /// none, it warns on every loop it cannot vectorise, such as one calling erf). `block`: the loop is
   /// the inner loop of a block (InnerLoop), which GCC at -O3 would otherwise unroll completely before
   /// its vectoriser sees it, and then vectorise the loop over blocks with short vectors behind an
   /// overlap check.
   static std::string NoAliasing(bool block = false)
   {
      return std::string("#if defined(__GNUC__) && !defined(__clang__)\n#pragma GCC ivdep\n") +
             (block ? "#pragma GCC unroll 1\n" : "") + "#endif\n";
   }

   /// The helper functions an expression may call: name -> its definition as a lambda.
   static const std::vector<std::pair<std::string, std::string>> &kHelpers()
   {
      static const std::vector<std::pair<std::string, std::string>> helpers = {
         {"j2s_pow2i", "[](std::int32_t n) { const std::uint32_t bits = static_cast<std::uint32_t>(n + 127) << 23; "
                       "float f; std::memcpy(&f, &bits, sizeof f); return f; }"},
         {"j2s_bits", "[](float f) { std::int32_t bits; std::memcpy(&bits, &f, sizeof bits); return bits; }"},
         {"j2s_float", "[](std::int32_t bits) { float f; std::memcpy(&f, &bits, sizeof f); return f; }"},
      };
      return helpers;
   }

public:
   /// Definitions of the helpers `expression` calls (also for other kernels that compute an
   /// expression of this form, such as J2S_Softmax's exp).
   static std::string Helpers(const std::string &expression, const std::string &indent)
   {
      std::string s;
      for (const auto &helper : kHelpers())
         if (expression.find(helper.first + "(") != std::string::npos)
            s += indent + "const auto " + helper.first + " = " + helper.second + ";\n";
      return s;
   }

private:

   /// The innermost loop `for (iv = 0; iv < bound; iv++) body`, in blocks of kBlock iterations and a
   /// loop over the rest: GCC at -O2 vectorises only loops whose trip count is a known multiple of
   /// the vector length (its "very cheap" cost model), which the inner loop of a block is at every
   /// level (16 floats: one AVX-512 vector, two AVX2 ones, four SSE/NEON ones).
   template <class BodyOf>
   static std::string InnerLoop(const std::string &iv, const std::string &bound, BodyOf bodyOf, const std::string &indent)
   {
      const std::string block = std::to_string(kBlock), start = iv + "_block";
      const bool known = std::all_of(bound.begin(), bound.end(), [](char c) { return std::isdigit(c); });
      const long long n = known ? std::stoll(bound) : -1;
      std::ostringstream code;
      if (!known || n >= kBlock) {
         code << indent << "for (std::size_t " << start << " = 0; " << start << " + " << block << " <= " << bound << "; "
              << start << " += " << block << ") {\n";
         code << NoAliasing(true);
         code << indent << "   for (std::size_t " << iv << " = " << start << "; " << iv << " < " << start << " + " << block
              << "; " << iv << "++) {\n";
         code << bodyOf(iv) << indent << "   }\n" << indent << "}\n";
      }
      if (!known || n % kBlock) {
         const std::string first = known ? std::to_string(n / kBlock * kBlock) : "(" + bound + ") / " + block + " * " + block;
         code << NoAliasing();
         code << indent << "for (std::size_t " << iv << " = " << first << "; " << iv << " < " << bound << "; " << iv
              << "++) {\n";
         code << bodyOf(iv) << indent << "}\n";
      }
      return code.str();
   }
   static constexpr long long kBlock = 16;

   static std::string Offset(const std::string &base, const std::string &iv, const std::string &stride)
   {
      const std::string term = stride == "1" ? iv : iv + "*" + stride;
      return base == "0" ? term : base + " + " + term;
   }

   /// The loop body: read each input, define the temporaries, write the result.
   std::string Body(const std::vector<std::string> &index, const std::string &outIndex, const std::string &indent) const
   {
      std::ostringstream body;
      for (std::size_t i = 0; i < fIn.size(); i++)
         body << indent << "const " << CType(fIn[i].type) << " x" << i << " = " << In(i) << "[" << index[i] << "];\n";
      std::string rest = fExpression;
      for (std::size_t pos; (pos = rest.find(';')) != std::string::npos; rest = rest.substr(pos + 1))
         body << indent << "const auto " << Trim(rest.substr(0, pos)) << ";\n";
      body << indent << Out(0) << "[" << outIndex << "] = static_cast<" << CType(fOutType) << ">(" << Trim(rest)
           << ");\n";
      return body.str();
   }

   static std::string Trim(const std::string &s)
   {
      const auto b = s.find_first_not_of(' ');
      const auto e = s.find_last_not_of(' ');
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
   }
};

} // namespace jax2sofie
