// J2S_TopK: lax.top_k (and approx_max_k / approx_min_k, exact) along one axis, project-owned.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace jax2sofie {

/// J2S_TopK: the k largest (or, with largest = 0, smallest) elements of every row along `axis`, in
/// order, with their int32 positions along the axis; ties: the lower position first. Floats are
/// ordered as lax.top_k orders them, by the total order of their bits: -NaN < -inf < ... < -0.0 <
/// 0.0 < ... < inf < NaN (a positive NaN is the largest value, -0.0 comes after 0.0).
///
/// Each row is compared through an integer key (a float's bits made monotonic; an integer itself),
/// so a comparison is one integer compare and ties are plain equality. A row of n <= kRankMax (a
/// k-nearest-neighbour graph's) is ranked by counting, for each element, the elements that come
/// before it: n^2 compares with no branch to mispredict, written as integer vectors (RankRow). The
/// operator is a kernel compiled once per instruction-set level (codegen::KernelFunctions), so a plain
/// -O2 build ranks with AVX-512 or AVX2 where the CPU has them: rows of 32, k = 8, 2048 rows take
/// about 0.09 ms at -O2 on an AVX-512 CPU (fastest of many runs), where the element-by-element count
/// took 0.34 ms at -O2 and 0.14-0.19 ms at -O3 -march=native. Else, for k <= kBufferMax, a row is
/// one pass that keeps the best k so far sorted in a buffer: an element enters only when its key is
/// greater than the k-th best (strictly: an equal later element loses the tie), moving the smaller
/// ones down one place; a vector of keys is first compared with the k-th best at once (BufferRow).
/// Small k stays in registers and L1 with no per-row setup. Larger k selects from the row's (key, position) pairs
/// (std::nth_element, then std::sort of the k first) in a buffer allocated once per call; a 32-bit key
/// and its position are packed into one uint64_t, so each comparison is one integer compare.
class TopKOperator final : public OwnedOperator {
public:
   static constexpr std::size_t kRankMax = 32;
   static constexpr std::int64_t kBufferMax = 32;

   TopKOperator(std::int64_t k, std::int64_t axis, bool largest, std::string x, std::string values, std::string indices)
      : OwnedOperator("J2S_TopK", {std::move(x)}, {std::move(values), std::move(indices)}), fK(k), fAxisIn(axis),
        fLargest(largest)
   {
      if (k < 1)
         throw std::runtime_error("jax2sofie J2S_TopK: k must be at least 1, not " + std::to_string(k));
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      const auto &x = in.at(0);
      using SOFIE::ETensorType;
      if (x.type != ETensorType::FLOAT && x.type != ETensorType::DOUBLE && x.type != ETensorType::INT32 &&
          x.type != ETensorType::INT64)
         throw std::runtime_error("jax2sofie J2S_TopK: the input must be float32, float64, int32 or int64, not " +
                                  SOFIE::ConvertTypeToString(x.type));
      const auto rank = static_cast<std::int64_t>(x.shape.size());
      const std::int64_t axis = fAxisIn < 0 ? fAxisIn + rank : fAxisIn;
      if (axis < 0 || axis >= rank)
         throw std::runtime_error("jax2sofie J2S_TopK: axis " + std::to_string(fAxisIn) + " out of range for a rank-" +
                                  std::to_string(rank) + " input");
      fAxis = static_cast<std::size_t>(axis);
      const auto &n = x.shape[fAxis];
      if (n.isParam)
         throw std::runtime_error("jax2sofie J2S_TopK: the axis of top_k cannot be the dynamic batch ('" + n.param +
                                  "')");
      if (static_cast<std::size_t>(fK) > n.dim)
         throw std::runtime_error("jax2sofie J2S_TopK: k = " + std::to_string(fK) + " exceeds the axis length " +
                                  std::to_string(n.dim));
      auto shape = x.shape;
      shape[fAxis] = SOFIE::Dim{static_cast<std::size_t>(fK)};
      return {{x.type, shape}, {ETensorType::INT32, shape}};
   }

   bool UsesKernel() const override { return true; }

   std::string KernelCode(const codegen::Isa &isa) override
   {
      using namespace codegen;
      const auto &shape = InInfo(0).shape;
      const std::string T = CType(InInfo(0).type), K = KeyType(), k = std::to_string(fK);
      const std::string n = std::to_string(shape[fAxis].dim), inner = Product(shape, fAxis + 1);
      const bool strided = inner != "1";
      Code c(1);
      const bool packed = K == "int32_t"; // a 32-bit key and the position fit in one uint64_t
      if (fK > kBufferMax && packed) {
         c.Line("std::vector<uint64_t> row_(" + n + ");");
      } else if (fK > kBufferMax) {
         c.Line("std::vector<std::pair<" + K + ", int32_t>> row_(" + n + ");");
         // the order of the result: larger key first, then the lower position (a strict total order,
         // so an unstable selection gives the one answer)
         c.Line("const auto before_ = [](const std::pair<" + K + ", int32_t> &a, const std::pair<" + K +
                ", int32_t> &b) { return a.first != b.first ? a.first > b.first : a.second < b.second; };");
      }
      c.Loop("o", Paren(Product(shape, 0, fAxis)));
      if (strided) // the axis is not the last one: rows are strided, one per position after the axis
         c.Loop("i", Paren(inner));
      const std::string xStep = strided ? "*" + Paren(inner) : "";
      const std::string row = strided ? "o * " + n + " * " + Paren(inner) + " + i" : "o * " + n;
      const std::string outRow = strided ? "o * " + k + " * " + Paren(inner) + " + i" : "o * " + k;
      c.Line("const " + T + " *x_ = " + In(0) + " + " + row + ";");
      c.Line(T + " *values_ = " + Out(0) + " + " + outRow + ";");
      c.Line("int32_t *indices_ = " + Out(1) + " + " + outRow + ";");
      if (shape[fAxis].dim <= kRankMax) {
         RankRow(c, isa, xStep);
      } else if (fK <= kBufferMax) {
         BufferRow(c, isa, xStep);
      } else if (packed) {
         // the key's bits made unsigned (flipping the sign bit keeps the order) above the complement of
         // the position: larger packed values come first, and among equal keys the lower position
         c.Loop("j", n, "int32_t");
         c.Line("row_[j] = uint64_t(uint32_t(" + Key("x_[j" + xStep + "]") +
                ") ^ 0x80000000u) << 32 | uint32_t(~uint32_t(j));");
         c.Close();
         c.Line("std::nth_element(row_.begin(), row_.begin() + " + k + ", row_.end(), std::greater<uint64_t>());");
         c.Line("std::sort(row_.begin(), row_.begin() + " + k + ", std::greater<uint64_t>());");
         c.Open("for (int32_t t = 0; t < " + k + "; t++)");
         c.Line("const int32_t at_ = int32_t(~uint32_t(row_[t]));");
         c.Line("values_[t" + xStep + "] = x_[at_" + xStep + "];");
         c.Line("indices_[t" + xStep + "] = at_;");
         c.Close();
      } else {
         c.Loop("j", n, "int32_t");
         c.Line("row_[j] = {" + Key("x_[j" + xStep + "]") + ", j};");
         c.Close();
         c.Line("std::nth_element(row_.begin(), row_.begin() + " + k + ", row_.end(), before_);");
         c.Line("std::sort(row_.begin(), row_.begin() + " + k + ", before_);");
         c.Open("for (int32_t t = 0; t < " + k + "; t++)");
         c.Line("values_[t" + xStep + "] = x_[row_[t].second" + xStep + "];");
         c.Line("indices_[t" + xStep + "] = row_[t].second;");
         c.Close();
      }
      c.Close(strided ? 2 : 1);
      return c.Str();
   }

   std::vector<std::string> GetStdLibs() override
   {
      return {"cmath", "algorithm", "limits", "cstdint", "cstring", "functional", "utility", "vector"};
   }

private:
   /// The rank path (rows of n <= kRankMax): the rank of each element is the number of elements that
   /// come before it in the result (larger keys, and equal keys at lower positions); the ranks are a
   /// permutation, so every slot of at_ is written once. With GCC and Clang the row's keys are integer
   /// vectors of the level's register width, and one pass over the row broadcasts each key and counts,
   /// in one accumulator per vector, the keys greater than each element (a compare and a subtract per
   /// vector; independent accumulators, no horizontal sums). Equal keys get the same count r and share
   /// the slots r, r + 1, ...: the elements are placed in the order of their positions, each in the next
   /// free slot of its count (tied_), so the lower position comes first. Other compilers count one
   /// element at a time.
   void RankRow(codegen::Code &c, const codegen::Isa &isa, const std::string &xStep) const
   {
      const std::string K = KeyType();
      const std::int64_t n = static_cast<std::int64_t>(InInfo(0).shape[fAxis].dim);
      const std::int64_t keyBytes = K == "int32_t" ? 4 : 8;
      std::int64_t w = isa.width * 4 / keyBytes; // lanes of a register of the level
      while (w > 2 && w / 2 >= n) // a short row: the narrowest vector that holds it
         w /= 2;
      const std::int64_t padded = (n + w - 1) / w * w;
      const std::string N = std::to_string(n), W = std::to_string(w), V = "j2s_topk_v" + W;
      c.Line(K + " key_[" + std::to_string(padded) + "];");
      c.Line("int32_t at_[" + N + "];");
      c.Loop("j", N, "int32_t");
      c.Line("key_[j] = " + Key("x_[j" + xStep + "]") + ";");
      c.Close();
      if (padded > n) // lanes of the last block past the row: ranked, never stored
         c.Line("for (int32_t j = " + N + "; j < " + std::to_string(padded) + "; j++) key_[j] = 0;");
      c.Line("\n#if defined(__GNUC__) || defined(__clang__)");
      c.Line("typedef " + K + " " + V + " __attribute__((vector_size(" + std::to_string(w * keyBytes) + ")));");
      // all blocks against each element in one pass: independent accumulators, one broadcast each
      const std::int64_t blocks = padded / w;
      c.Line(V + " v_[" + std::to_string(blocks) + "], greater_[" + std::to_string(blocks) + "];");
      for (std::int64_t b = 0; b < blocks; b++) {
         const std::string B = std::to_string(b);
         c.Line("std::memcpy(&v_[" + B + "], key_ + " + std::to_string(b * w) + ", sizeof v_[" + B + "]);");
         c.Line("greater_[" + B + "] = " + V + "{};");
      }
      c.Open("for (int32_t l = 0; l < " + N + "; l++)");
      c.Line("const " + K + " k_ = key_[l];");
      for (std::int64_t b = 0; b < blocks; b++)
         c.Line("greater_[" + std::to_string(b) + "] -= (k_ > v_[" + std::to_string(b) + "]);");
      c.Close();
      c.Line(K + " count_[" + std::to_string(padded) + "];");
      c.Line("std::memcpy(count_, greater_, sizeof count_);");
      c.Line("int32_t tied_[" + N + "] = {}; // elements placed so far at each count");
      c.Open("for (int32_t j = 0; j < " + N + "; j++)");
      c.Line("const int32_t r_ = int32_t(count_[j]);");
      c.Line("at_[r_ + tied_[r_]++] = j;");
      c.Close();
      c.Line("\n#else");
      c.Open("for (int32_t j = 0; j < " + N + "; j++)");
      c.Line("const " + K + " v_ = key_[j];");
      c.Line("int32_t rank_ = 0;");
      c.Line("for (int32_t l = 0; l < " + N + "; l++) rank_ += (key_[l] > v_) | ((key_[l] == v_) & (l < j));");
      c.Line("at_[rank_] = j;");
      c.Close();
      c.Line("\n#endif");
      c.Open("for (int32_t t = 0; t < " + std::to_string(fK) + "; t++)");
      c.Line("values_[t" + xStep + "] = x_[at_[t]" + xStep + "];");
      c.Line("indices_[t" + xStep + "] = at_[t];");
      c.Close();
   }

   /// The sorted-buffer path (rows longer than kRankMax, k <= kBufferMax): the first k elements fill
   /// the buffer, then each element enters only when its key is greater than the k-th best (strictly:
   /// an equal later element loses the tie), moving the smaller ones down one place. Past the first
   /// few elements most are rejected, so with GCC and Clang a contiguous row of 32-bit keys is read
   /// in vectors of the level's width: the keys of a vector are made at once and compared with the
   /// k-th best, and only a vector with a key above it goes through the buffer element by element.
   void BufferRow(codegen::Code &c, const codegen::Isa &isa, const std::string &xStep) const
   {
      const std::string K = KeyType(), k = std::to_string(fK), last = std::to_string(fK - 1);
      const std::string n = std::to_string(InInfo(0).shape[fAxis].dim);
      c.Line(K + " key_[" + k + "];");
      c.Line("int32_t at_[" + k + "];");
      c.Line("int32_t m_ = 0; // entries of the buffer filled");
      c.Line("int32_t j = 0; // the next element");
      // element e_ into the buffer (`continue`: the enclosing loop's next element)
      auto insert = [&](const std::string &e) {
         c.Line("const int32_t e_ = " + e + ";");
         c.Line("const " + K + " v_ = " + Key("x_[e_" + xStep + "]") + ";");
         c.Line("int32_t p_;");
         c.Open("if (m_ == " + k + ")");
         c.Line("if (!(v_ > key_[" + last + "])) continue;");
         c.Line("p_ = " + last + ";");
         c.Continue("else");
         c.Line("p_ = m_++;");
         c.Close();
         c.Open("for (; p_ > 0 && key_[p_ - 1] < v_; p_--)");
         c.Line("key_[p_] = key_[p_ - 1];");
         c.Line("at_[p_] = at_[p_ - 1];");
         c.Close();
         c.Line("key_[p_] = v_;");
         c.Line("at_[p_] = e_;");
      };
      if (xStep.empty() && K == "int32_t") {
         const std::int64_t w = isa.width;
         const std::string W = std::to_string(w), V = "j2s_topk_v" + W;
         c.Open("for (; j < " + k + "; j++)");
         insert("j");
         c.Close();
         c.Line("\n#if defined(__GNUC__) || defined(__clang__)");
         c.Line("typedef int32_t " + V + " __attribute__((vector_size(" + std::to_string(4 * w) + ")));");
         c.Open("for (; j + " + W + " <= " + n + "; j += " + W + ")");
         c.Line(V + " keys_;");
         c.Line("std::memcpy(&keys_, x_ + j, sizeof keys_);");
         if (IsFloatInput()) // Key()'s flip of the negative floats' other bits, without a branch
            c.Line("keys_ ^= (keys_ >> 31) & 0x7fffffff;");
         if (!fLargest)
            c.Line("keys_ = ~keys_;");
         c.Line("const " + V + " above_ = keys_ > key_[" + last + "];");
         c.Line("uint64_t words_[" + std::to_string(w / 2) + "], any_ = 0;");
         c.Line("std::memcpy(words_, &above_, sizeof words_);");
         c.Line("for (int l = 0; l < " + std::to_string(w / 2) + "; l++) any_ |= words_[l];");
         c.Line("if (!any_) continue;");
         c.Open("for (int32_t l = 0; l < " + W + "; l++)");
         insert("j + l");
         c.Close(2);
         c.Line("\n#endif");
      }
      c.Open("for (; j < " + n + "; j++)");
      insert("j");
      c.Close();
      c.Open("for (int32_t t = 0; t < " + k + "; t++)");
      c.Line("values_[t" + xStep + "] = x_[at_[t]" + xStep + "];");
      c.Line("indices_[t" + xStep + "] = at_[t];");
      c.Close();
   }

   bool IsFloatInput() const { return codegen::IsFloat(InInfo(0).type); }

   /// The integer type of the keys: a float's bits as a signed integer of its width, an integer itself.
   std::string KeyType() const
   {
      const auto t = InInfo(0).type;
      return t == SOFIE::ETensorType::FLOAT || t == SOFIE::ETensorType::INT32 ? "int32_t" : "int64_t";
   }

   /// The key of element expression `x`, ordered as the result: larger first. A float's bits b as a
   /// signed integer order the non-negative floats already; the negative ones (b < 0) get their other
   /// bits flipped, which reverses their order and keeps them below the non-negative ones: that is
   /// lax's total order. Smallest-first (largest = 0) complements the key (~ reverses the order of
   /// every signed integer, without the overflow of negating the most negative one).
   std::string Key(const std::string &x) const
   {
      const std::string K = KeyType();
      std::string key;
      if (IsFloatInput()) {
         const std::string mask = K == "int32_t" ? "0x7fffffff" : "0x7fffffffffffffffLL";
         key = "[&] { " + K + " b_; const auto f_ = " + x + "; std::memcpy(&b_, &f_, sizeof b_); return b_ < 0 ? " +
               K + "(b_ ^ " + mask + ") : b_; }()";
      } else {
         key = "static_cast<" + K + ">(" + x + ")";
      }
      return fLargest ? key : "static_cast<" + K + ">(~" + key + ")";
   }

   std::int64_t fK, fAxisIn;
   bool fLargest;
   std::size_t fAxis = 0;
};

} // namespace jax2sofie
