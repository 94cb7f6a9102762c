// Project-owned dense linear algebra (SOFIE has no matrix decomposition or solver):
//   J2S_Cholesky              lower Cholesky factor (LAPACK potrf's result: NaN when not positive definite)
//   J2S_TriangularSolve       op(A) X = B or X op(A) = B with A triangular (lax.linalg.triangular_solve)
//   J2S_Lu                    LU with partial pivoting: lu, pivots, permutation (LAPACK getrf)
//   J2S_LuPivotsToPermutation row swaps -> permutation
//   J2S_Geqrf                 Householder QR in LAPACK's compact form (reflectors and taus)
//   J2S_HouseholderProduct    Q from the reflectors (LAPACK orgqr)
//   J2S_Ormqr                 Q C, Q^T C, C Q or C Q^T from the reflectors (LAPACK ormqr)
//   J2S_Qr                    Q and R (geqrf then orgqr, full or reduced)
//   J2S_Eigh                  symmetric eigen-decomposition by cyclic Jacobi rotations
//   J2S_Svd                   singular values (and vectors) by one-sided Jacobi rotations
//
// Every operator works on the last two axes (one matrix) and loops over all leading axes (the
// batch, which may be symbolic, "bs*3"); the matrix sizes must be static. The generated code is a
// straightforward loop nest per matrix, written once below as C++ text with the sizes as constexpr
// constants: small matrices (3x3 to 16x16) are what physics models hold, where LAPACK's blocking
// gains nothing. Inputs and outputs are float; the arithmetic is done in double, so the results are
// within float rounding of the exact ones (LAPACK in float32, which JAX calls, is less accurate than
// that on all but the best-conditioned inputs).
//
// Where a result is unique only up to signs (eigenvectors, singular vectors), ours follows one
// documented convention: the largest-magnitude component of each eigenvector / left singular
// vector is positive (the first of equal ones). LAPACK's signs follow no such rule.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace jax2sofie {

namespace linalg_detail {

using codegen::Shape;

/// The batch (leading axes, a C++ expression) and the size of the matrices of a tensor: static,
/// except where an operator allows a symbolic number of right-hand sides (`rows`/`cols` are then 0
/// and only the text is known).
struct Matrices {
   std::string batch;
   std::size_t rows = 0, cols = 0;
   std::string rowsText, colsText;
   std::string Size() const
   {
      if (rows && cols)
         return std::to_string(rows * cols);
      return codegen::Paren(rowsText) + " * " + codegen::Paren(colsText);
   }
};

inline std::runtime_error Error(const std::string &op, const std::string &what)
{
   return std::runtime_error("jax2sofie " + op + ": " + what);
}

/// Splits `shape` into its batch and its trailing `matrixRank` (1 or 2) axes, which must be static
/// unless allowed by `symbolicRows` / `symbolicCols`.
inline Matrices Split(const Shape &shape, std::size_t matrixRank, const std::string &op, const std::string &what,
                      bool symbolicRows = false, bool symbolicCols = false)
{
   if (shape.size() < matrixRank)
      throw Error(op, what + " must have rank >= " + std::to_string(matrixRank) + ", not " +
                         std::to_string(shape.size()));
   const std::size_t first = shape.size() - matrixRank;
   for (std::size_t i = first; i < shape.size(); i++) {
      const bool allowed = i == first ? symbolicRows : symbolicCols;
      if (shape[i].isParam && !allowed)
         throw Error(op, what + " has a symbolic matrix dimension '" + shape[i].param +
                            "' (only the leading batch axes may be symbolic)");
   }
   Matrices m;
   m.batch = codegen::Product(shape, 0, first);
   m.rows = shape[first].isParam ? 0 : shape[first].dim;
   m.rowsText = shape[first].GetVal();
   if (matrixRank == 2) {
      m.cols = shape[first + 1].isParam ? 0 : shape[first + 1].dim;
      m.colsText = shape[first + 1].GetVal();
   } else {
      m.cols = 1;
      m.colsText = "1";
   }
   return m;
}

/// `shape` with its trailing `matrixRank` axes replaced by `tail`.
inline Shape WithTail(const Shape &shape, std::size_t matrixRank, const std::vector<std::size_t> &tail)
{
   Shape out(shape.begin(), shape.end() - static_cast<std::ptrdiff_t>(matrixRank));
   for (auto d : tail)
      out.push_back(SOFIE::Dim{d});
   return out;
}

inline bool SameBatch(const Shape &a, std::size_t aRank, const Shape &b, std::size_t bRank)
{
   if (a.size() - aRank != b.size() - bRank)
      return false;
   for (std::size_t i = 0; i + aRank < a.size(); i++)
      if (!(a[i] == b[i]))
         return false;
   return true;
}

inline void ExpectFloat(const TensorInfo &t, const std::string &op, const std::string &what)
{
   if (t.type != SOFIE::ETensorType::FLOAT)
      throw Error(op, what + " must be float32, not " + SOFIE::ConvertTypeToString(t.type));
}

/// Re-indents a block of C++ lines (written flush left below) by `indent`.
inline std::string Indent(const std::string &text, const std::string &indent)
{
   std::stringstream in(text), out;
   std::string line;
   while (std::getline(in, line))
      out << (line.empty() ? "" : indent + line) << "\n";
   return out.str();
}

/// The declaration of a Program constant of value `value`: constexpr unless it names a symbol ("bs").
inline std::string ConstantType(const std::string &value)
{
   if (value == "true" || value == "false")
      return "constexpr bool ";
   const bool number = std::all_of(value.begin(), value.end(), [](char c) { return std::isdigit(c); });
   return number ? "constexpr std::size_t " : "const std::size_t ";
}

/// A matrix of the current batch element, as the body names it.
struct View {
   std::string name, type, tensor;
   std::string size; // elements per batch element (a C++ expression)
   bool output;
};

/// The generated code of a linear-algebra operator: the constants, scratch buffers (allocated once
/// per call, outside the batch loop), and per batch element the views of its input and output
/// matrices, then the body.
struct Program {
   std::string batch;
   std::vector<std::pair<std::string, std::string>> constants; // name, value (constexpr)
   std::vector<std::pair<std::string, std::string>> scratch;   // "double w", element count
   std::vector<View> views;
   std::string body;

   std::string Str() const
   {
      std::stringstream c;
      c << "   {\n";
      for (auto &[name, value] : constants)
         c << "      " << ConstantType(value) << name << " = " << value << ";\n";
      for (auto &[decl, count] : scratch) {
         const auto space = decl.rfind(' ');
         const std::string type = decl.substr(0, space), name = decl.substr(space + 1);
         c << "      std::vector<" << type << "> " << name << "_buffer(" << count << ");\n";
         c << "      " << type << " *const " << name << " = " << name << "_buffer.data();\n";
      }
      c << "      for (std::size_t batch_ = 0; batch_ < " << batch << "; batch_++) {\n";
      for (auto &v : views)
         c << "         " << (v.output ? "" : "const ") << v.type << " *const " << v.name << " = " << v.tensor
           << " + batch_ * " << v.size << ";\n";
      c << Indent(body, "         ");
      c << "      }\n";
      c << "   }\n";
      return c.str();
   }
};

inline std::string Bool(bool b) { return b ? "true" : "false"; }

// ---- algorithm texts (one matrix; sizes are the Program's constants) -----------------------------

/// Householder QR of the m x n double matrix `w` in place, LAPACK's geqr2 (slarfg's conventions: the
/// reflector of column j is H = I - tau v v^T, v = (1, w[j+1.., j]), R's diagonal entry is
/// beta = -sign(alpha) |x|, and tau = 0 (H = I) when the column below the diagonal is zero), so
/// that R and Q have the same signs as JAX's. Taus into `tau` (k = min(m, n) of them).
inline const char *kGeqrf = R"(for (std::size_t j = 0; j < k; j++) {
   const double alpha = w[j * n + j];
   double below = 0; // squared norm of the column below the diagonal
   for (std::size_t i = j + 1; i < m; i++)
      below += w[i * n + j] * w[i * n + j];
   if (below == 0) {
      tau[j] = 0;
      continue;
   }
   const double beta = -std::copysign(std::sqrt(alpha * alpha + below), alpha);
   tau[j] = (beta - alpha) / beta;
   const double scale = 1 / (alpha - beta);
   for (std::size_t i = j + 1; i < m; i++)
      w[i * n + j] *= scale;
   w[j * n + j] = beta;
   // the reflector applied to the columns on its right
   for (std::size_t c = j + 1; c < n; c++) {
      double s = w[j * n + c];
      for (std::size_t i = j + 1; i < m; i++)
         s += w[i * n + j] * w[i * n + c];
      s *= tau[j];
      w[j * n + c] -= s;
      for (std::size_t i = j + 1; i < m; i++)
         w[i * n + c] -= s * w[i * n + j];
   }
}
)";

/// Q = H_0 H_1 ... H_{k-1} applied to the first qn columns of the m x m identity, into the m x qn
/// double matrix `q` (LAPACK's org2r): the reflectors are applied last to first, each to the columns
/// it can change (those left of j are still unit vectors above row j).
inline const char *kFormQ = R"(for (std::size_t i = 0; i < m; i++)
   for (std::size_t c = 0; c < qn; c++)
      q[i * qn + c] = i == c ? 1.0 : 0.0;
for (std::size_t j = k; j-- > 0;) {
   for (std::size_t c = j; c < qn; c++) {
      double s = q[j * qn + c];
      for (std::size_t i = j + 1; i < m; i++)
         s += w[i * n + j] * q[i * qn + c];
      s *= tau[j];
      q[j * qn + c] -= s;
      for (std::size_t i = j + 1; i < m; i++)
         q[i * qn + c] -= s * w[i * n + j];
   }
}
)";

} // namespace linalg_detail

// ---------------------------------------------------------------------------------------------
/// Base of the linear-algebra operators: float32 checks, and code from a linalg_detail::Program.
class LinalgOperator : public OwnedOperator {
public:
   using OwnedOperator::OwnedOperator;
   std::vector<std::string> GetStdLibs() override { return {"cmath", "algorithm", "limits", "cstdint", "vector"}; }

protected:
   linalg_detail::View InView(std::size_t i, const std::string &name, const std::string &size) const
   {
      return {name, CType(InInfo(i).type), In(i), size, false};
   }
   linalg_detail::View OutView(std::size_t i, const std::string &name, const std::string &size) const
   {
      return {name, CType(OutInfo(i).type), Out(i), size, true};
   }
   linalg_detail::View InView(std::size_t i, const std::string &name, std::size_t size) const
   {
      return InView(i, name, std::to_string(size));
   }
   linalg_detail::View OutView(std::size_t i, const std::string &name, std::size_t size) const
   {
      return OutView(i, name, std::to_string(size));
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_Cholesky: the lower factor L of A = L L^T from A's lower triangle. Like LAPACK potrf, whose
/// result JAX returns: the strict upper triangle is A's, and a matrix that is not positive definite
/// gives NaN everywhere.
class CholeskyOperator final : public LinalgOperator {
public:
   CholeskyOperator(std::string a, std::string l) : LinalgOperator("J2S_Cholesky", {std::move(a)}, {std::move(l)}) {}

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      linalg_detail::ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = linalg_detail::Split(in[0].shape, 2, fKindName, "the input");
      if (a.rows != a.cols)
         throw linalg_detail::Error(fKindName, "the matrices must be square");
      return {in[0]};
   }

   std::string GenerateCode() override
   {
      const auto a = linalg_detail::Split(InInfo(0).shape, 2, fKindName, "the input");
      linalg_detail::Program p;
      p.batch = a.batch;
      p.constants = {{"n", std::to_string(a.rows)}};
      p.scratch = {{"double l", "n * n"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "out", a.Size())};
      p.body = R"(bool ok = true;
for (std::size_t j = 0; j < n && ok; j++) {
   double d = a[j * n + j];
   for (std::size_t k = 0; k < j; k++)
      d -= l[j * n + k] * l[j * n + k];
   ok = d > 0; // false also for NaN
   const double djj = std::sqrt(d);
   l[j * n + j] = djj;
   for (std::size_t i = j + 1; i < n; i++) {
      double s = a[i * n + j];
      for (std::size_t k = 0; k < j; k++)
         s -= l[i * n + k] * l[j * n + k];
      l[i * n + j] = s / djj;
   }
}
for (std::size_t i = 0; i < n; i++)
   for (std::size_t j = 0; j < n; j++)
      out[i * n + j] = !ok     ? std::numeric_limits<float>::quiet_NaN()
                       : j <= i ? static_cast<float>(l[i * n + j])
                                : a[i * n + j];
)";
      return p.Str();
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_TriangularSolve: X with op(A) X = B (leftSide) or X op(A) = B, A (m x m) triangular (only
/// its `lower` or upper triangle is read), op(A) = A or A^T, a unit diagonal assumed (not read) with
/// unitDiagonal. B is (m x r) on the left side, (r x m) on the right; A and B have the same batch.
/// Both forms are solved as M y = b' per right-hand side: M = op(A) on the left, op(A)^T on the
/// right (X op(A) = B is op(A)^T X^T = B^T), so M is A or A^T, and lower or upper accordingly.
class TriangularSolveOperator final : public LinalgOperator {
public:
   TriangularSolveOperator(bool leftSide, bool lower, bool transposeA, bool unitDiagonal, std::string a, std::string b,
                       std::string x)
      : LinalgOperator("J2S_TriangularSolve", {std::move(a), std::move(b)}, {std::move(x)}), fLeftSide(leftSide),
        fLower(lower), fTransposeA(transposeA), fUnitDiagonal(unitDiagonal)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "A");
      ExpectFloat(in.at(1), fKindName, "B");
      // the number of right-hand sides may be symbolic (B = x^T of a batch of vectors x)
      const auto a = Split(in[0].shape, 2, fKindName, "A");
      const auto b = Split(in[1].shape, 2, fKindName, "B", !fLeftSide, fLeftSide);
      if (a.rows != a.cols)
         throw Error(fKindName, "A must be square");
      if ((fLeftSide ? b.rows : b.cols) != a.rows)
         throw Error(fKindName, "B's " + std::string(fLeftSide ? "rows" : "columns") + " must match A's order " +
                                   std::to_string(a.rows));
      if (!SameBatch(in[0].shape, 2, in[1].shape, 2))
         throw Error(fKindName, "A and B must have the same batch dimensions");
      return {in[1]};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "A");
      const auto b = Split(InInfo(1).shape, 2, fKindName, "B", !fLeftSide, fLeftSide);
      // M[i][k] is A[i][k] or A[k][i]
      const bool mIsTransposed = fLeftSide ? fTransposeA : !fTransposeA;
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)},
                     {"r", fLeftSide ? b.colsText : b.rowsText},
                     {"forward", Bool(fLower != mIsTransposed)}, // M lower triangular: forward substitution
                     {"unit_diagonal", Bool(fUnitDiagonal)}};
      p.scratch = {{"double y", "m"}};
      p.views = {InView(0, "a", a.Size()), InView(1, "b", b.Size()), OutView(0, "x", b.Size())};
      p.body = std::string("// M (i, k): op(A) or its transpose; rhs (i, c): the index of b' (i, c) in B and X\n") +
               "const auto M = [=](std::size_t i, std::size_t k) -> double { return a[" +
               (mIsTransposed ? "k * m + i" : "i * m + k") + "]; };\n" +
               "const auto rhs = [=](std::size_t i, std::size_t c) { return " +
               (fLeftSide ? "i * r + c" : "c * m + i") + "; };\n" + R"(for (std::size_t c = 0; c < r; c++) {
   for (std::size_t step = 0; step < m; step++) {
      const std::size_t i = forward ? step : m - 1 - step;
      double s = b[rhs(i, c)];
      if (forward)
         for (std::size_t k = 0; k < i; k++)
            s -= M(i, k) * y[k];
      else
         for (std::size_t k = i + 1; k < m; k++)
            s -= M(i, k) * y[k];
      y[i] = unit_diagonal ? s : s / M(i, i);
   }
   for (std::size_t i = 0; i < m; i++)
      x[rhs(i, c)] = static_cast<float>(y[i]);
}
)";
      return p.Str();
   }

private:
   bool fLeftSide, fLower, fTransposeA, fUnitDiagonal;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Lu: P A = L U of an m x n A by Gaussian elimination with partial pivoting (LAPACK getrf, what
/// JAX calls): the pivot of column j is the first row of largest magnitude at or below j. Outputs:
/// lu (L's strict lower part with its unit diagonal implied, and U), pivots (int32, min(m, n): row
/// j was swapped with row pivots[j]) and permutation (int32, m: row i of P A is row permutation[i]
/// of A). A zero pivot (a singular matrix) leaves its column unscaled, like LAPACK.
class LuOperator final : public LinalgOperator {
public:
   LuOperator(std::string a, std::string lu, std::string pivots, std::string permutation)
      : LinalgOperator("J2S_Lu", {std::move(a)}, {std::move(lu), std::move(pivots), std::move(permutation)})
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      const auto i32 = SOFIE::ETensorType::INT32;
      return {in[0], {i32, WithTail(in[0].shape, 2, {std::min(a.rows, a.cols)})},
              {i32, WithTail(in[0].shape, 2, {a.rows})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      const std::size_t k = std::min(a.rows, a.cols);
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)}, {"n", std::to_string(a.cols)}, {"k", std::to_string(k)}};
      p.scratch = {{"double w", "m * n"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "lu", a.Size()), OutView(1, "pivots", k),
                 OutView(2, "permutation", a.rows)};
      p.body = R"(for (std::size_t i = 0; i < m * n; i++)
   w[i] = a[i];
for (std::size_t i = 0; i < m; i++)
   permutation[i] = static_cast<std::int32_t>(i);
for (std::size_t j = 0; j < k; j++) {
   std::size_t pivot = j;
   double largest = std::abs(w[j * n + j]);
   for (std::size_t i = j + 1; i < m; i++)
      if (std::abs(w[i * n + j]) > largest) {
         largest = std::abs(w[i * n + j]);
         pivot = i;
      }
   pivots[j] = static_cast<std::int32_t>(pivot);
   if (pivot != j) {
      for (std::size_t c = 0; c < n; c++)
         std::swap(w[j * n + c], w[pivot * n + c]);
      std::swap(permutation[j], permutation[pivot]);
   }
   const double diagonal = w[j * n + j];
   if (diagonal != 0)
      for (std::size_t i = j + 1; i < m; i++)
         w[i * n + j] /= diagonal;
   for (std::size_t i = j + 1; i < m; i++) {
      const double factor = w[i * n + j];
      for (std::size_t c = j + 1; c < n; c++)
         w[i * n + c] -= factor * w[j * n + c];
   }
}
for (std::size_t i = 0; i < m * n; i++)
   lu[i] = static_cast<float>(w[i]);
)";
      return p.Str();
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_LuPivotsToPermutation: the permutation of `size` rows that the swaps i <-> pivots[i] make of
/// 0, 1, ..., size-1, applied in order (lax.linalg.lu_pivots_to_permutation). int32 in and out.
class LuPivotsToPermutationOperator final : public LinalgOperator {
public:
   LuPivotsToPermutationOperator(std::int64_t size, std::string pivots, std::string permutation)
      : LinalgOperator("J2S_LuPivotsToPermutation", {std::move(pivots)}, {std::move(permutation)}), fSize(size)
   {
      if (size < 1)
         throw linalg_detail::Error(fKindName, "permutation_size must be >= 1");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      if (in.at(0).type != SOFIE::ETensorType::INT32)
         throw Error(fKindName, "the pivots must be int32");
      const auto pivots = Split(in[0].shape, 1, fKindName, "the pivots");
      if (pivots.rows > static_cast<std::size_t>(fSize))
         throw Error(fKindName, "more pivots than permutation_size");
      return {{in[0].type, WithTail(in[0].shape, 1, {static_cast<std::size_t>(fSize)})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto pivots = Split(InInfo(0).shape, 1, fKindName, "the pivots");
      Program p;
      p.batch = pivots.batch;
      p.constants = {{"k", std::to_string(pivots.rows)}, {"size", std::to_string(fSize)}};
      p.views = {InView(0, "pivots", pivots.rows), OutView(0, "permutation", fSize)};
      p.body = R"(for (std::size_t i = 0; i < size; i++)
   permutation[i] = static_cast<std::int32_t>(i);
for (std::size_t i = 0; i < k; i++) {
   const std::int32_t j = pivots[i];
   if (j >= 0 && static_cast<std::size_t>(j) < size) // an out-of-range pivot swaps nothing
      std::swap(permutation[i], permutation[j]);
}
)";
      return p.Str();
   }

private:
   std::int64_t fSize;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Geqrf: Householder QR in LAPACK's compact form (lax.linalg.geqrf): R in and above the
/// diagonal, the reflectors' vectors below it; taus (min(m, n)) as a second output.
class GeqrfOperator final : public LinalgOperator {
public:
   GeqrfOperator(std::string a, std::string out, std::string taus)
      : LinalgOperator("J2S_Geqrf", {std::move(a)}, {std::move(out), std::move(taus)})
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      return {in[0], {in[0].type, WithTail(in[0].shape, 2, {std::min(a.rows, a.cols)})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      const std::size_t k = std::min(a.rows, a.cols);
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)}, {"n", std::to_string(a.cols)}, {"k", std::to_string(k)}};
      p.scratch = {{"double w", "m * n"}, {"double tau", "k"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "out", a.Size()), OutView(1, "taus", k)};
      p.body = std::string("for (std::size_t i = 0; i < m * n; i++)\n   w[i] = a[i];\n") + kGeqrf +
               "for (std::size_t i = 0; i < m * n; i++)\n   out[i] = static_cast<float>(w[i]);\n"
               "for (std::size_t j = 0; j < k; j++)\n   taus[j] = static_cast<float>(tau[j]);\n";
      return p.Str();
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_HouseholderProduct: the m x n matrix of the first n columns of Q = H_0 ... H_{k-1}, from
/// reflectors below the diagonal of an m x n A (n <= m) and k <= n taus (LAPACK orgqr,
/// lax.linalg.householder_product).
class HouseholderProductOperator final : public LinalgOperator {
public:
   HouseholderProductOperator(std::string a, std::string taus, std::string q)
      : LinalgOperator("J2S_HouseholderProduct", {std::move(a), std::move(taus)}, {std::move(q)})
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "A");
      ExpectFloat(in.at(1), fKindName, "the taus");
      const auto a = Split(in[0].shape, 2, fKindName, "A"), taus = Split(in[1].shape, 1, fKindName, "the taus");
      if (a.cols > a.rows || taus.rows > a.cols)
         throw Error(fKindName, "needs an m x n A with n <= m and at most n taus");
      if (!SameBatch(in[0].shape, 2, in[1].shape, 1))
         throw Error(fKindName, "A and the taus must have the same batch dimensions");
      return {in[0]};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "A"), taus = Split(InInfo(1).shape, 1, fKindName, "taus");
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)}, {"n", std::to_string(a.cols)}, {"k", std::to_string(taus.rows)},
                     {"qn", std::to_string(a.cols)}};
      p.scratch = {{"double w", "m * n"}, {"double tau", "k"}, {"double q", "m * qn"}};
      p.views = {InView(0, "a", a.Size()), InView(1, "taus", taus.rows), OutView(0, "out", a.Size())};
      p.body = std::string("for (std::size_t i = 0; i < m * n; i++)\n   w[i] = a[i];\n"
                           "for (std::size_t j = 0; j < k; j++)\n   tau[j] = taus[j];\n") +
               kFormQ + "for (std::size_t i = 0; i < m * qn; i++)\n   out[i] = static_cast<float>(q[i]);\n";
      return p.Str();
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_Ormqr: C times Q = H_0 ... H_{k-1} (the m x m Q of reflectors below the diagonal of an
/// m x k' A, k taus): Q C or Q^T C (left, C is m x r), C Q or C Q^T (right, C is r x m)
/// (LAPACK ormqr, lax.linalg.ormqr). Each reflector is applied in turn, in the order the product
/// needs: Q C = H_0 (H_1 (... C)) applies the last one first.
class OrmqrOperator final : public LinalgOperator {
public:
   OrmqrOperator(bool left, bool transpose, std::string a, std::string taus, std::string c, std::string out)
      : LinalgOperator("J2S_Ormqr", {std::move(a), std::move(taus), std::move(c)}, {std::move(out)}), fLeft(left),
        fTranspose(transpose)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "A");
      ExpectFloat(in.at(1), fKindName, "the taus");
      ExpectFloat(in.at(2), fKindName, "C");
      const auto a = Split(in[0].shape, 2, fKindName, "A"), taus = Split(in[1].shape, 1, fKindName, "the taus");
      const auto c = Split(in[2].shape, 2, fKindName, "C", !fLeft, fLeft);
      if (taus.rows > std::min(a.rows, a.cols))
         throw Error(fKindName, "more taus than reflectors in A");
      if ((fLeft ? c.rows : c.cols) != a.rows)
         throw Error(fKindName, "C's " + std::string(fLeft ? "rows" : "columns") + " must match A's rows " +
                                   std::to_string(a.rows));
      if (!SameBatch(in[0].shape, 2, in[1].shape, 1) || !SameBatch(in[0].shape, 2, in[2].shape, 2))
         throw Error(fKindName, "A, the taus and C must have the same batch dimensions");
      return {in[2]};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "A"), taus = Split(InInfo(1).shape, 1, fKindName, "taus");
      const auto c = Split(InInfo(2).shape, 2, fKindName, "C", !fLeft, fLeft);
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)},
                     {"n", std::to_string(a.cols)},
                     {"k", std::to_string(taus.rows)},
                     {"r", fLeft ? c.colsText : c.rowsText},
                     // Q^T C = H_{k-1} ... H_0 C and C Q = C H_0 ... H_{k-1} apply H_0 first
                     {"first_to_last", Bool(fLeft == fTranspose)}};
      p.scratch = {{"double y", "m * r"}};
      p.views = {InView(0, "a", a.Size()), InView(1, "taus", taus.rows), InView(2, "c", c.Size()),
                 OutView(0, "out", c.Size())};
      // y holds C (left) or C^T (right) as m x r: C H is (H C^T)^T, the reflectors being symmetric
      p.body = std::string("const auto at = [=](std::size_t i, std::size_t col) { return ") +
               (fLeft ? "i * r + col" : "col * m + i") + "; };\n" + R"(for (std::size_t i = 0; i < m; i++)
   for (std::size_t col = 0; col < r; col++)
      y[i * r + col] = c[at(i, col)];
for (std::size_t step = 0; step < k; step++) {
   const std::size_t j = first_to_last ? step : k - 1 - step;
   const double tau = taus[j];
   for (std::size_t col = 0; col < r; col++) {
      double s = y[j * r + col];
      for (std::size_t i = j + 1; i < m; i++)
         s += a[i * n + j] * y[i * r + col];
      s *= tau;
      y[j * r + col] -= s;
      for (std::size_t i = j + 1; i < m; i++)
         y[i * r + col] -= s * a[i * n + j];
   }
}
for (std::size_t i = 0; i < m; i++)
   for (std::size_t col = 0; col < r; col++)
      out[at(i, col)] = static_cast<float>(y[i * r + col]);
)";
      return p.Str();
   }

private:
   bool fLeft, fTranspose;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Qr: A = Q R by Householder reflections (lax.linalg.qr without pivoting; geqrf then orgqr, as
/// JAX computes it, so the signs agree). m x n A, k = min(m, n): Q is m x k and R k x n, or with
/// fullMatrices Q is m x m and R m x n.
class QrOperator final : public LinalgOperator {
public:
   QrOperator(bool fullMatrices, std::string a, std::string q, std::string r)
      : LinalgOperator("J2S_Qr", {std::move(a)}, {std::move(q), std::move(r)}), fFull(fullMatrices)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      const std::size_t k = fFull ? a.rows : std::min(a.rows, a.cols);
      return {{in[0].type, WithTail(in[0].shape, 2, {a.rows, k})}, {in[0].type, WithTail(in[0].shape, 2, {k, a.cols})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      const std::size_t k = std::min(a.rows, a.cols), qn = fFull ? a.rows : k;
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)}, {"n", std::to_string(a.cols)}, {"k", std::to_string(k)},
                     {"qn", std::to_string(qn)}};
      p.scratch = {{"double w", "m * n"}, {"double tau", "k"}, {"double q", "m * qn"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "q_out", a.rows * qn), OutView(1, "r_out", qn * a.cols)};
      p.body = std::string("for (std::size_t i = 0; i < m * n; i++)\n   w[i] = a[i];\n") + kGeqrf + kFormQ +
               R"(for (std::size_t i = 0; i < m * qn; i++)
   q_out[i] = static_cast<float>(q[i]);
for (std::size_t i = 0; i < qn; i++)
   for (std::size_t c = 0; c < n; c++)
      r_out[i * n + c] = c >= i ? static_cast<float>(w[i * n + c]) : 0.0f;
)";
      return p.Str();
   }

private:
   bool fFull;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Eigh: A = V diag(w) V^T of a symmetric n x n A, read from its lower (or upper) triangle;
/// outputs V (eigenvectors as columns) and w, ascending (what LAPACK syevd returns, sorted or not).
/// Cyclic Jacobi: each rotation zeroes one off-diagonal pair (Golub & Van Loan, sym.schur2), sweeps
/// repeat until every off-diagonal entry is negligible next to its diagonal pair. Signs: see the top.
class EighOperator final : public LinalgOperator {
public:
   EighOperator(bool lower, std::string a, std::string v, std::string w)
      : LinalgOperator("J2S_Eigh", {std::move(a)}, {std::move(v), std::move(w)}), fLower(lower)
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      if (a.rows != a.cols)
         throw Error(fKindName, "the matrices must be square");
      return {in[0], {in[0].type, WithTail(in[0].shape, 2, {a.rows})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      Program p;
      p.batch = a.batch;
      p.constants = {{"n", std::to_string(a.rows)}, {"lower", Bool(fLower)}};
      p.scratch = {{"double s", "n * n"}, {"double v", "n * n"}, {"std::size_t order", "n"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "vectors", a.Size()), OutView(1, "values", a.rows)};
      p.body = R"(for (std::size_t i = 0; i < n; i++)
   for (std::size_t j = 0; j < n; j++) {
      const std::size_t hi = std::max(i, j), lo = std::min(i, j);
      s[i * n + j] = lower ? a[hi * n + lo] : a[lo * n + hi];
      v[i * n + j] = i == j ? 1.0 : 0.0;
   }
for (int sweep = 0; sweep < 64; sweep++) { // 6 to 9 sweeps for 3x3 to 16x16 matrices
   bool rotated = false;
   for (std::size_t p = 0; p + 1 < n; p++)
      for (std::size_t q = p + 1; q < n; q++) {
         const double apq = s[p * n + q];
         // negligible next to the diagonal (the stopping rule of Demmel and Veselic; also false for NaN)
         if (!(std::abs(apq) > 1e-16 * std::sqrt(std::abs(s[p * n + p] * s[q * n + q]))))
            continue;
         rotated = true;
         // the rotation J = [[c, sn], [-sn, c]] in the (p, q) plane with (J^T S J)[p][q] = 0
         const double theta = (s[q * n + q] - s[p * n + p]) / (2 * apq);
         const double t = std::abs(theta) > 1e150 // theta * theta would overflow
                             ? 0.5 / theta
                             : (theta >= 0 ? 1.0 : -1.0) / (std::abs(theta) + std::sqrt(theta * theta + 1));
         const double c = 1 / std::sqrt(t * t + 1), sn = t * c;
         for (std::size_t i = 0; i < n; i++) { // S J
            const double sp = s[i * n + p], sq = s[i * n + q];
            s[i * n + p] = c * sp - sn * sq;
            s[i * n + q] = sn * sp + c * sq;
         }
         for (std::size_t i = 0; i < n; i++) { // J^T (S J)
            const double sp = s[p * n + i], sq = s[q * n + i];
            s[p * n + i] = c * sp - sn * sq;
            s[q * n + i] = sn * sp + c * sq;
         }
         s[p * n + q] = s[q * n + p] = 0; // zero, not the rounding left of it
         for (std::size_t i = 0; i < n; i++) { // V J
            const double vp = v[i * n + p], vq = v[i * n + q];
            v[i * n + p] = c * vp - sn * vq;
            v[i * n + q] = sn * vp + c * vq;
         }
      }
   if (!rotated)
      break;
}
// ascending eigenvalues (a stable insertion sort of the diagonal's positions)
for (std::size_t j = 0; j < n; j++) {
   std::size_t i = j;
   for (; i > 0 && s[order[i - 1] * (n + 1)] > s[j * (n + 1)]; i--)
      order[i] = order[i - 1];
   order[i] = j;
}
for (std::size_t j = 0; j < n; j++) {
   const std::size_t e = order[j];
   values[j] = static_cast<float>(s[e * (n + 1)]);
   std::size_t largest = 0;
   for (std::size_t i = 1; i < n; i++)
      if (std::abs(v[i * n + e]) > std::abs(v[largest * n + e]))
         largest = i;
   const double sign = v[largest * n + e] < 0 ? -1.0 : 1.0;
   for (std::size_t i = 0; i < n; i++)
      vectors[i * n + j] = static_cast<float>(sign * v[i * n + e]);
}
)";
      return p.Str();
   }

private:
   bool fLower;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Svd: A = U diag(s) V^T of an m x n A, k = min(m, n) singular values, descending; with
/// computeUV also U (m x k, or m x m with fullMatrices) and V^T (k x n, or n x n). One-sided
/// (Hestenes) Jacobi on the columns of W = A, or of W = A^T when m < n: rotations of column pairs
/// until every pair is orthogonal to double rounding; then s are the column norms, the normalised
/// columns are the left singular vectors of W and the accumulated rotations its right ones (for
/// W = A^T, U and V trade places). Singular vectors of zero singular values and the extra columns
/// of a full U are completed to an orthonormal basis by Gram-Schmidt on unit vectors.
class SvdOperator final : public LinalgOperator {
public:
   SvdOperator(bool fullMatrices, bool computeUV, std::string a, std::vector<std::string> outputs)
      : LinalgOperator("J2S_Svd", {std::move(a)}, std::move(outputs)), fFull(fullMatrices), fComputeUV(computeUV)
   {
      if (fOutputs.size() != (computeUV ? 3u : 1u))
         throw linalg_detail::Error(fKindName, computeUV ? "needs 3 outputs (s, u, vt)" : "needs 1 output (s)");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      const std::size_t k = std::min(a.rows, a.cols);
      const auto type = in[0].type;
      std::vector<TensorInfo> out = {{type, WithTail(in[0].shape, 2, {k})}};
      if (fComputeUV) {
         out.push_back({type, WithTail(in[0].shape, 2, {a.rows, fFull ? a.rows : k})});
         out.push_back({type, WithTail(in[0].shape, 2, {fFull ? a.cols : k, a.cols})});
      }
      return out;
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      const std::size_t rows = std::max(a.rows, a.cols), cols = std::min(a.rows, a.cols);
      const std::size_t k = cols, uc = fFull ? rows : cols;
      Program p;
      p.batch = a.batch;
      p.constants = {{"n", std::to_string(a.cols)}, {"R", std::to_string(rows)}, {"C", std::to_string(cols)},
                     {"transposed", Bool(a.rows < a.cols)}};
      p.scratch = {{"double w", "R * C"}, {"double v", "C * C"}, {"double sigma", "C"}, {"std::size_t order", "C"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "s_out", k)};
      if (fComputeUV) {
         p.constants.push_back({"m", std::to_string(a.rows)});
         p.constants.push_back({"uc", std::to_string(uc)});
         p.scratch.push_back({"double ul", "R * uc"});
         p.scratch.push_back({"double x", "R"});
         p.scratch.push_back({"unsigned char filled", "uc"});
         p.views.push_back(OutView(1, "u_out", a.rows * (fFull ? a.rows : k)));
         p.views.push_back(OutView(2, "vt_out", (fFull ? a.cols : k) * a.cols));
      }
      p.body = R"(for (std::size_t i = 0; i < R; i++)
   for (std::size_t j = 0; j < C; j++)
      w[i * C + j] = transposed ? a[j * n + i] : a[i * n + j];
for (std::size_t i = 0; i < C * C; i++)
   v[i] = i / C == i % C ? 1.0 : 0.0;
for (int sweep = 0; sweep < 64; sweep++) { // 6 to 10 sweeps for 3x3 to 16x16 matrices
   bool rotated = false;
   for (std::size_t p = 0; p + 1 < C; p++)
      for (std::size_t q = p + 1; q < C; q++) {
         double alpha = 0, beta = 0, gamma = 0;
         for (std::size_t i = 0; i < R; i++) {
            alpha += w[i * C + p] * w[i * C + p];
            beta += w[i * C + q] * w[i * C + q];
            gamma += w[i * C + p] * w[i * C + q];
         }
         if (!(std::abs(gamma) > 1e-15 * std::sqrt(alpha * beta))) // orthogonal (or NaN)
            continue;
         rotated = true;
         // the rotation of the column pair that diagonalises its Gram matrix [[alpha, gamma], [gamma, beta]]
         const double zeta = (beta - alpha) / (2 * gamma);
         const double t = std::abs(zeta) > 1e150 // zeta * zeta would overflow
                             ? 0.5 / zeta
                             : (zeta >= 0 ? 1.0 : -1.0) / (std::abs(zeta) + std::sqrt(zeta * zeta + 1));
         const double c = 1 / std::sqrt(t * t + 1), sn = t * c;
         for (std::size_t i = 0; i < R; i++) {
            const double wp = w[i * C + p], wq = w[i * C + q];
            w[i * C + p] = c * wp - sn * wq;
            w[i * C + q] = sn * wp + c * wq;
         }
         for (std::size_t i = 0; i < C; i++) {
            const double vp = v[i * C + p], vq = v[i * C + q];
            v[i * C + p] = c * vp - sn * vq;
            v[i * C + q] = sn * vp + c * vq;
         }
      }
   if (!rotated)
      break;
}
for (std::size_t j = 0; j < C; j++) {
   double norm = 0;
   for (std::size_t i = 0; i < R; i++)
      norm += w[i * C + j] * w[i * C + j];
   sigma[j] = std::sqrt(norm);
}
// descending singular values (a stable insertion sort of the positions)
for (std::size_t j = 0; j < C; j++) {
   std::size_t i = j;
   for (; i > 0 && sigma[order[i - 1]] < sigma[j]; i--)
      order[i] = order[i - 1];
   order[i] = j;
}
for (std::size_t j = 0; j < C; j++)
   s_out[j] = static_cast<float>(sigma[order[j]]);
)";
      if (fComputeUV)
         p.body += R"(
// left singular vectors of W: the normalised columns, where the singular value is not zero
const double negligible = 1e-13 * sigma[order[0]];
for (std::size_t j = 0; j < uc; j++) {
   filled[j] = j < C && sigma[order[j]] > negligible;
   for (std::size_t i = 0; i < R; i++)
      ul[i * uc + j] = filled[j] ? w[i * C + order[j]] / sigma[order[j]] : 0.0;
}
// the others: the unit vector with the largest part orthogonal to the columns so far
for (std::size_t j = 0; j < uc; j++) {
   if (filled[j])
      continue;
   double best = -1;
   for (std::size_t e = 0; e < R; e++) {
      for (std::size_t i = 0; i < R; i++)
         x[i] = i == e ? 1.0 : 0.0;
      for (int pass = 0; pass < 2; pass++) // twice: Gram-Schmidt is then orthogonal to rounding
         for (std::size_t col = 0; col < uc; col++) {
            if (!filled[col])
               continue;
            double d = 0;
            for (std::size_t i = 0; i < R; i++)
               d += ul[i * uc + col] * x[i];
            for (std::size_t i = 0; i < R; i++)
               x[i] -= d * ul[i * uc + col];
         }
      double norm = 0;
      for (std::size_t i = 0; i < R; i++)
         norm += x[i] * x[i];
      if (norm > best) {
         best = norm;
         for (std::size_t i = 0; i < R; i++)
            ul[i * uc + j] = x[i];
      }
   }
   const double scale = 1 / std::sqrt(best);
   for (std::size_t i = 0; i < R; i++)
      ul[i * uc + j] *= scale;
   filled[j] = 1;
}
// signs: the largest-magnitude component of each left singular vector of A is positive; the
// right singular vector of the same value changes sign with it
for (std::size_t j = 0; j < C; j++) {
   const auto left = [&](std::size_t i) { return transposed ? v[i * C + order[j]] : ul[i * uc + j]; };
   std::size_t largest = 0;
   for (std::size_t i = 1; i < m; i++)
      if (std::abs(left(i)) > std::abs(left(largest)))
         largest = i;
   if (left(largest) < 0) {
      for (std::size_t i = 0; i < R; i++)
         ul[i * uc + j] = -ul[i * uc + j];
      for (std::size_t i = 0; i < C; i++)
         v[i * C + order[j]] = -v[i * C + order[j]];
   }
}
// A = W (m >= n): U = ul, V^T = v^T; A = W^T (m < n): U = v, V^T = ul^T
const std::size_t un = transposed ? C : uc;
for (std::size_t i = 0; i < m; i++)
   for (std::size_t j = 0; j < un; j++)
      u_out[i * un + j] = static_cast<float>(transposed ? v[i * C + order[j]] : ul[i * uc + j]);
const std::size_t vn = transposed ? uc : C;
for (std::size_t j = 0; j < vn; j++)
   for (std::size_t i = 0; i < n; i++)
      vt_out[j * n + i] = static_cast<float>(transposed ? ul[i * uc + j] : v[i * C + order[j]]);
)";
      return p.Str();
   }

private:
   bool fFull, fComputeUV;
};

} // namespace jax2sofie
