// Project-owned dense linear algebra (SOFIE has no matrix decomposition or solver):
//   J2S_Cholesky              lower Cholesky factor (LAPACK potrf's result: NaN when not positive definite)
//   J2S_TriangularSolve       op(A) X = B or X op(A) = B with A triangular (lax.linalg.triangular_solve)
//   J2S_Lu                    LU with partial pivoting: lu, pivots, permutation (LAPACK getrf)
//   J2S_LuPivotsToPermutation row swaps -> permutation
//   J2S_Geqrf                 Householder QR in LAPACK's compact form (reflectors and taus)
//   J2S_HouseholderProduct    Q from the reflectors (LAPACK orgqr)
//   J2S_Ormqr                 Q C, Q^T C, C Q or C Q^T from the reflectors (LAPACK ormqr)
//   J2S_Qr                    Q and R (geqrf then orgqr, full or reduced), with column pivoting (geqp3)
//   J2S_Geqp3                 Householder QR with column pivoting in LAPACK's compact form
//   J2S_Hessenberg            Householder reduction to upper Hessenberg form (LAPACK gehrd's compact form)
//   J2S_Schur                 real Schur form and vectors (Hessenberg reduction, Francis double-shift QR)
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

/// One step of Householder QR of the m x n double matrix `w` in place, for column j (LAPACK geqr2's
/// step, slarfg's conventions: the reflector is H = I - tau v v^T, v = (1, w[j+1.., j]), R's diagonal
/// entry is beta = -sign(alpha) |x|, and tau = 0 (H = I) when the column below the diagonal is zero),
/// so that R and Q have the same signs as JAX's; H applied to the columns on its right. The last
/// statement of a loop over j (it may `continue`).
inline const char *kReflectColumn = R"(const double alpha = w[j * n + j];
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
)";

/// Householder QR of the m x n double matrix `w` in place (LAPACK geqr2), taus into `tau` (k = min(m, n)).
inline const std::string kGeqrf = "for (std::size_t j = 0; j < k; j++) {\n" + Indent(kReflectColumn, "   ") + "}\n";

/// Householder QR with column pivoting (LAPACK geqp3, whose pivot choice it makes): before the
/// reflector of column j, the first of the columns j.. with the largest norm below row j - 1 is
/// swapped into place (columns before `fixed` are not pivoted), its original index kept in `perm`.
/// The norms are recomputed in double at each step, where geqp3 updates float norms; both choose
/// the same column except between columns whose norms agree to float rounding.
inline const std::string kGeqp3 = "for (std::size_t j = 0; j < k; j++) {\n" + Indent(R"(if (j >= fixed) {
   std::size_t pivot = j;
   double largest = -1;
   for (std::size_t c = j; c < n; c++) {
      double norm = 0;
      for (std::size_t i = j; i < m; i++)
         norm += w[i * n + c] * w[i * n + c];
      if (norm > largest) { // the first of equal norms, as LAPACK's isamax; never a NaN
         largest = norm;
         pivot = c;
      }
   }
   if (pivot != j) {
      for (std::size_t i = 0; i < m; i++)
         std::swap(w[i * n + j], w[i * n + pivot]);
      std::swap(perm[j], perm[pivot]);
   }
}
)" + std::string(kReflectColumn), "   ") + "}\n";

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

/// geqp3's handling of its jpvt input: the columns whose entry is nonzero move to the front, in order
/// (LAPACK's swaps), and are factored first without pivoting; `perm` starts as the resulting order.
inline const char *kFixedColumns = R"(std::size_t fixed = 0;
for (std::size_t j = 0; j < n; j++) {
   perm[j] = j;
   if (jpvt[j] == 0)
      continue;
   if (j != fixed) {
      for (std::size_t i = 0; i < m; i++)
         std::swap(w[i * n + j], w[i * n + fixed]);
      perm[j] = perm[fixed];
      perm[fixed] = j;
   }
   fixed++;
}
)";

/// Householder reduction of the n x n double matrix `w` to upper Hessenberg form in place (LAPACK
/// gehd2, which gehrd is for these sizes): the reflector of column j, H = I - tau v v^T with
/// v = (1, w[j+2.., j]) on rows j+1.., zeroes column j below the subdiagonal (slarfg's conventions,
/// as in kReflectColumn) and is applied from the right to all rows and from the left to the columns
/// on its right. The vectors stay below the subdiagonal, the n - 1 taus go into `tau` (the last is
/// always 0: a reflector of one entry is the identity).
inline const char *kGehrd = R"(for (std::size_t j = 0; j + 1 < n; j++) {
   const double alpha = w[(j + 1) * n + j];
   double below = 0;
   for (std::size_t i = j + 2; i < n; i++)
      below += w[i * n + j] * w[i * n + j];
   if (below == 0) {
      tau[j] = 0;
      continue;
   }
   const double beta = -std::copysign(std::sqrt(alpha * alpha + below), alpha);
   const double t = (beta - alpha) / beta;
   tau[j] = t;
   const double scale = 1 / (alpha - beta);
   for (std::size_t i = j + 2; i < n; i++)
      w[i * n + j] *= scale;
   w[(j + 1) * n + j] = beta;
   for (std::size_t r = 0; r < n; r++) { // A H on columns j+1..
      double s = w[r * n + j + 1];
      for (std::size_t i = j + 2; i < n; i++)
         s += w[r * n + i] * w[i * n + j];
      s *= t;
      w[r * n + j + 1] -= s;
      for (std::size_t i = j + 2; i < n; i++)
         w[r * n + i] -= s * w[i * n + j];
   }
   for (std::size_t c = j + 1; c < n; c++) { // H A on rows j+1.., columns j+1..
      double s = w[(j + 1) * n + c];
      for (std::size_t i = j + 2; i < n; i++)
         s += w[i * n + j] * w[i * n + c];
      s *= t;
      w[(j + 1) * n + c] -= s;
      for (std::size_t i = j + 2; i < n; i++)
         w[i * n + c] -= s * w[i * n + j];
   }
}
)";

/// The orthogonal Q = H_0 ... H_{n-2} of kGehrd's reflectors into the n x n double matrix `z`
/// (LAPACK orghr), applied last to first as in kFormQ.
inline const char *kFormHessenbergQ = R"(for (std::size_t i = 0; i < n * n; i++)
   z[i] = i / n == i % n ? 1.0 : 0.0;
for (std::size_t j = n - 1; j-- > 0;) {
   for (std::size_t c = j + 1; c < n; c++) {
      double s = z[(j + 1) * n + c];
      for (std::size_t i = j + 2; i < n; i++)
         s += w[i * n + j] * z[i * n + c];
      s *= tau[j];
      z[(j + 1) * n + c] -= s;
      for (std::size_t i = j + 2; i < n; i++)
         z[i * n + c] -= s * w[i * n + j];
   }
}
)";

/// The real Schur form of the upper Hessenberg n x n double matrix `w` (its entries below the
/// subdiagonal are ignored and set to zero) by Francis double-shift QR iterations, the rotations
/// accumulated into `z` (Z <- Z Q): LAPACK slahqr, what gees runs for matrices of fewer than 75 rows,
/// in double: the same deflation test (Ahues and Kressner), Wilkinson double shifts with
/// exceptional shifts after 10 and 20 iterations without deflation, the search for two small
/// consecutive subdiagonal entries to start the bulge from, and each 2 x 2 block standardised as
/// slanv2 does (equal diagonal entries and off-diagonal entries of opposite signs for a complex
/// pair; split into two 1 x 1 blocks for real eigenvalues). Sets `converged` (false: slahqr's
/// iteration limit was reached, where LAPACK reports info > 0).
inline const char *kSchur = R"(const std::ptrdiff_t N = n;
const auto H = [=](std::ptrdiff_t r, std::ptrdiff_t c) -> double & { return w[r * N + c]; };
for (std::ptrdiff_t i = 0; i < N; i++)
   for (std::ptrdiff_t j = 0; j + 1 < i; j++)
      H(i, j) = 0;
const double ulp = std::numeric_limits<double>::epsilon();
const double smlnum = std::numeric_limits<double>::min() * (static_cast<double>(n) / ulp);
const auto sign = [](double a, double b) { return std::copysign(std::abs(a), b); };
// slanv2: the rotation (cs, sn) that standardises the 2 x 2 block [[a, b], [c, d]] in place
const auto standardise = [&](double &a, double &b, double &c, double &d, double &cs, double &sn) {
   cs = 1;
   sn = 0;
   if (c == 0)
      return;
   if (b == 0) { // swap rows and columns
      cs = 0;
      sn = 1;
      std::swap(a, d);
      b = -c;
      c = 0;
      return;
   }
   if (a - d == 0 && sign(1, b) != sign(1, c))
      return;
   double temp = a - d, p = 0.5 * temp;
   const double bcmax = std::max(std::abs(b), std::abs(c));
   const double bcmis = std::min(std::abs(b), std::abs(c)) * sign(1, b) * sign(1, c);
   double scale = std::max(std::abs(p), bcmax);
   double zz = (p / scale) * p + (bcmax / scale) * bcmis;
   if (zz >= 4 * ulp) { // real eigenvalues: upper triangular
      zz = p + sign(std::sqrt(scale) * std::sqrt(zz), p);
      a = d + zz;
      d = d - (bcmax / zz) * bcmis;
      const double tau = std::hypot(c, zz);
      cs = zz / tau;
      sn = c / tau;
      b = b - c;
      c = 0;
      return;
   }
   // complex eigenvalues, or real ones (almost) equal: make the diagonal entries equal
   const double sigma = b + c;
   const double tau = std::hypot(sigma, temp);
   cs = std::sqrt(0.5 * (1 + std::abs(sigma) / tau));
   sn = -(p / (tau * cs)) * sign(1, sigma);
   const double aa = a * cs + b * sn, bb = -a * sn + b * cs, cc = c * cs + d * sn, dd = -c * sn + d * cs;
   a = aa * cs + cc * sn;
   b = bb * cs + dd * sn;
   c = -aa * sn + cc * cs;
   d = -bb * sn + dd * cs;
   temp = 0.5 * (a + d);
   a = d = temp;
   if (c != 0) {
      if (b != 0) {
         if (sign(1, b) == sign(1, c)) { // real eigenvalues after all: upper triangular
            const double sab = std::sqrt(std::abs(b)), sac = std::sqrt(std::abs(c));
            p = sign(sab * sac, c);
            const double t = 1 / std::sqrt(std::abs(b + c));
            a = temp + p;
            d = temp - p;
            b = b - c;
            c = 0;
            const double cs1 = sab * t, sn1 = sac * t;
            const double rotated = cs * cs1 - sn * sn1;
            sn = cs * sn1 + sn * cs1;
            cs = rotated;
         }
      } else {
         b = -c;
         c = 0;
         const double rotated = cs;
         cs = -sn;
         sn = rotated;
      }
   }
};
converged = true;
const int itmax = 30 * static_cast<int>(std::max<std::ptrdiff_t>(10, N));
int kdefl = 0; // iterations since the last deflation
for (std::ptrdiff_t i = N - 1; i >= 0;) {
   // rows and columns l..i are the active block; it ends where a subdiagonal entry is negligible
   std::ptrdiff_t l = 0;
   bool split = false;
   for (int its = 0; its <= itmax && !split; its++) {
      std::ptrdiff_t k = i;
      for (; k > l; k--) {
         if (std::abs(H(k, k - 1)) <= smlnum)
            break;
         double tst = std::abs(H(k - 1, k - 1)) + std::abs(H(k, k));
         if (tst == 0) {
            if (k - 2 >= 0)
               tst += std::abs(H(k - 1, k - 2));
            if (k + 1 < N)
               tst += std::abs(H(k + 1, k));
         }
         if (std::abs(H(k, k - 1)) <= ulp * tst) {
            const double ab = std::max(std::abs(H(k, k - 1)), std::abs(H(k - 1, k)));
            const double ba = std::min(std::abs(H(k, k - 1)), std::abs(H(k - 1, k)));
            const double aa = std::max(std::abs(H(k, k)), std::abs(H(k - 1, k - 1) - H(k, k)));
            const double bb = std::min(std::abs(H(k, k)), std::abs(H(k - 1, k - 1) - H(k, k)));
            const double s = aa + ab;
            if (ba * (ab / s) <= std::max(smlnum, ulp * (bb * (aa / s))))
               break;
         }
      }
      l = k;
      if (l > 0)
         H(l, l - 1) = 0;
      if (l >= i - 1) { // a 1 x 1 or 2 x 2 block has split off
         split = true;
         break;
      }
      kdefl++;
      double h11, h12, h21, h22;
      if (kdefl % 20 == 0) { // exceptional shifts
         const double s = std::abs(H(i, i - 1)) + std::abs(H(i - 1, i - 2));
         h11 = 0.75 * s + H(i, i);
         h12 = -0.4375 * s;
         h21 = s;
         h22 = h11;
      } else if (kdefl % 10 == 0) {
         const double s = std::abs(H(l + 1, l)) + std::abs(H(l + 2, l + 1));
         h11 = 0.75 * s + H(l, l);
         h12 = -0.4375 * s;
         h21 = s;
         h22 = h11;
      } else { // Wilkinson's: the eigenvalues of the trailing 2 x 2 block
         h11 = H(i - 1, i - 1);
         h21 = H(i, i - 1);
         h12 = H(i - 1, i);
         h22 = H(i, i);
      }
      double rt1r = 0, rt1i = 0, rt2r = 0, rt2i = 0;
      const double hs = std::abs(h11) + std::abs(h12) + std::abs(h21) + std::abs(h22);
      if (hs != 0) {
         h11 /= hs;
         h21 /= hs;
         h12 /= hs;
         h22 /= hs;
         const double tr = (h11 + h22) / 2;
         const double det = (h11 - tr) * (h22 - tr) - h12 * h21;
         const double rtdisc = std::sqrt(std::abs(det));
         if (det >= 0) { // a complex conjugate pair
            rt1r = tr * hs;
            rt2r = rt1r;
            rt1i = rtdisc * hs;
            rt2i = -rt1i;
         } else { // two real shifts: the one nearer h22 twice
            rt1r = tr + rtdisc;
            rt2r = tr - rtdisc;
            if (std::abs(rt1r - h22) <= std::abs(rt2r - h22))
               rt2r = rt1r = rt1r * hs;
            else
               rt1r = rt2r = rt2r * hs;
         }
      }
      // the first column of the double-shift polynomial, started where two consecutive
      // subdiagonal entries are small enough
      double v[3];
      std::ptrdiff_t m = i - 2;
      for (;; m--) {
         double s = std::abs(H(m, m) - rt2r) + std::abs(rt2i) + std::abs(H(m + 1, m));
         const double h21s = H(m + 1, m) / s;
         v[0] = h21s * H(m, m + 1) + (H(m, m) - rt1r) * ((H(m, m) - rt2r) / s) - rt1i * (rt2i / s);
         v[1] = h21s * (H(m, m) + H(m + 1, m + 1) - rt1r - rt2r);
         v[2] = h21s * H(m + 2, m + 1);
         s = std::abs(v[0]) + std::abs(v[1]) + std::abs(v[2]);
         v[0] /= s;
         v[1] /= s;
         v[2] /= s;
         if (m == l)
            break;
         const double h00 = std::abs(H(m, m - 1)) * (std::abs(v[1]) + std::abs(v[2]));
         const double h01 = ulp * std::abs(v[0]) * (std::abs(H(m - 1, m - 1)) + std::abs(H(m, m)) + std::abs(H(m + 1, m + 1)));
         if (h00 <= h01)
            break;
      }
      // the double-shift QR step: a bulge chased down by reflectors of 3 (at the end 2) rows
      for (std::ptrdiff_t k2 = m; k2 <= i - 1; k2++) {
         const std::ptrdiff_t nr = std::min<std::ptrdiff_t>(3, i - k2 + 1);
         if (k2 > m)
            for (std::ptrdiff_t r = 0; r < nr; r++)
               v[r] = H(k2 + r, k2 - 1);
         double t1 = 0; // slarfg
         const double below = nr == 3 ? v[1] * v[1] + v[2] * v[2] : v[1] * v[1];
         if (below != 0) {
            const double beta = -std::copysign(std::sqrt(v[0] * v[0] + below), v[0]);
            t1 = (beta - v[0]) / beta;
            const double scale = 1 / (v[0] - beta);
            v[1] *= scale;
            v[2] *= scale;
            v[0] = beta;
         }
         if (k2 > m) {
            H(k2, k2 - 1) = v[0];
            H(k2 + 1, k2 - 1) = 0;
            if (k2 < i - 1)
               H(k2 + 2, k2 - 1) = 0;
         } else if (m > l) {
            H(k2, k2 - 1) *= 1 - t1;
         }
         const double v2 = v[1], t2 = t1 * v2;
         const double v3 = nr == 3 ? v[2] : 0, t3 = t1 * v3;
         for (std::ptrdiff_t j = k2; j < N; j++) { // from the left: rows k2..k2+nr-1
            const double sum = H(k2, j) + v2 * H(k2 + 1, j) + (nr == 3 ? v3 * H(k2 + 2, j) : 0);
            H(k2, j) -= sum * t1;
            H(k2 + 1, j) -= sum * t2;
            if (nr == 3)
               H(k2 + 2, j) -= sum * t3;
         }
         const std::ptrdiff_t last = nr == 3 ? std::min(k2 + 3, i) : i;
         for (std::ptrdiff_t j = 0; j <= last; j++) { // from the right: columns k2..k2+nr-1
            const double sum = H(j, k2) + v2 * H(j, k2 + 1) + (nr == 3 ? v3 * H(j, k2 + 2) : 0);
            H(j, k2) -= sum * t1;
            H(j, k2 + 1) -= sum * t2;
            if (nr == 3)
               H(j, k2 + 2) -= sum * t3;
         }
         for (std::ptrdiff_t j = 0; j < N; j++) { // Z Q
            double *zr = z + j * N + k2;
            const double sum = zr[0] + v2 * zr[1] + (nr == 3 ? v3 * zr[2] : 0);
            zr[0] -= sum * t1;
            zr[1] -= sum * t2;
            if (nr == 3)
               zr[2] -= sum * t3;
         }
      }
   }
   if (!split) {
      converged = false;
      break;
   }
   if (l == i - 1) { // a 2 x 2 block: standardised, its rotation applied to the rest of H and to Z
      double cs, sn;
      standardise(H(i - 1, i - 1), H(i - 1, i), H(i, i - 1), H(i, i), cs, sn);
      for (std::ptrdiff_t j = i + 1; j < N; j++) {
         const double x = H(i - 1, j), y = H(i, j);
         H(i - 1, j) = cs * x + sn * y;
         H(i, j) = cs * y - sn * x;
      }
      for (std::ptrdiff_t j = 0; j + 2 <= i; j++) {
         const double x = H(j, i - 1), y = H(j, i);
         H(j, i - 1) = cs * x + sn * y;
         H(j, i) = cs * y - sn * x;
      }
      for (std::ptrdiff_t j = 0; j < N; j++) {
         const double x = z[j * N + i - 1], y = z[j * N + i];
         z[j * N + i - 1] = cs * x + sn * y;
         z[j * N + i] = cs * y - sn * x;
      }
   }
   kdefl = 0;
   i = l - 1;
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
/// J2S_Qr: A = Q R by Householder reflections (lax.linalg.qr; geqrf then orgqr, as JAX computes it,
/// so the signs agree). m x n A, k = min(m, n): Q is m x k and R k x n, or with fullMatrices Q is
/// m x m and R m x n. With pivoting, A P = Q R with the columns chosen as LAPACK geqp3 does (kGeqp3),
/// and a third output: the int32 permutation p (n), column j of A P is column p[j] of A (0-based).
class QrOperator final : public LinalgOperator {
public:
   QrOperator(bool fullMatrices, bool pivoting, std::string a, std::vector<std::string> outputs)
      : LinalgOperator("J2S_Qr", {std::move(a)}, std::move(outputs)), fFull(fullMatrices), fPivoting(pivoting)
   {
      if (fOutputs.size() != (pivoting ? 3u : 2u))
         throw linalg_detail::Error(fKindName, pivoting ? "with pivoting needs 3 outputs (q, r, p)"
                                                        : "needs 2 outputs (q, r)");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      const std::size_t k = fFull ? a.rows : std::min(a.rows, a.cols);
      std::vector<TensorInfo> out = {{in[0].type, WithTail(in[0].shape, 2, {a.rows, k})},
                                     {in[0].type, WithTail(in[0].shape, 2, {k, a.cols})}};
      if (fPivoting)
         out.push_back({SOFIE::ETensorType::INT32, WithTail(in[0].shape, 2, {a.cols})});
      return out;
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
      p.body = "for (std::size_t i = 0; i < m * n; i++)\n   w[i] = a[i];\n";
      if (fPivoting) {
         p.constants.push_back({"fixed", "0"}); // qr passes no fixed columns to geqp3
         p.scratch.push_back({"std::size_t perm", "n"});
         p.views.push_back(OutView(2, "p_out", a.cols));
         p.body += "for (std::size_t j = 0; j < n; j++)\n   perm[j] = j;\n" + kGeqp3 +
                   "for (std::size_t j = 0; j < n; j++)\n   p_out[j] = static_cast<std::int32_t>(perm[j]);\n";
      } else {
         p.body += kGeqrf;
      }
      p.body += kFormQ + std::string(R"(for (std::size_t i = 0; i < m * qn; i++)
   q_out[i] = static_cast<float>(q[i]);
for (std::size_t i = 0; i < qn; i++)
   for (std::size_t c = 0; c < n; c++)
      r_out[i * n + c] = c >= i ? static_cast<float>(w[i * n + c]) : 0.0f;
)");
      return p.Str();
   }

private:
   bool fFull, fPivoting;
};

// ---------------------------------------------------------------------------------------------
/// J2S_Geqp3: Householder QR with column pivoting in LAPACK's compact form (lax.linalg's geqp3, what
/// JAX runs for qr(pivoting=True)): inputs A (m x n) and jpvt (int32, n: columns with a nonzero entry
/// are moved to the front and not pivoted); outputs R in and above the diagonal with the reflectors'
/// vectors below it (A's shape), jpvt (int32, n, 1-based as LAPACK's: column j of A P is column
/// jpvt[j] - 1 of A) and the taus (min(m, n)).
class Geqp3Operator final : public LinalgOperator {
public:
   Geqp3Operator(std::string a, std::string jpvt, std::string out, std::string jpvtOut, std::string taus)
      : LinalgOperator("J2S_Geqp3", {std::move(a), std::move(jpvt)},
                       {std::move(out), std::move(jpvtOut), std::move(taus)})
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "A");
      if (in.at(1).type != SOFIE::ETensorType::INT32)
         throw Error(fKindName, "jpvt must be int32, not " + SOFIE::ConvertTypeToString(in[1].type));
      const auto a = Split(in[0].shape, 2, fKindName, "A"), jpvt = Split(in[1].shape, 1, fKindName, "jpvt");
      if (jpvt.rows != a.cols)
         throw Error(fKindName, "jpvt has " + std::to_string(jpvt.rows) + " entries, A " + std::to_string(a.cols) +
                                   " columns");
      if (!SameBatch(in[0].shape, 2, in[1].shape, 1))
         throw Error(fKindName, "A and jpvt must have the same batch dimensions");
      return {in[0], in[1], {in[0].type, WithTail(in[0].shape, 2, {std::min(a.rows, a.cols)})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "A");
      const std::size_t k = std::min(a.rows, a.cols);
      Program p;
      p.batch = a.batch;
      p.constants = {{"m", std::to_string(a.rows)}, {"n", std::to_string(a.cols)}, {"k", std::to_string(k)}};
      p.scratch = {{"double w", "m * n"}, {"double tau", "k"}, {"std::size_t perm", "n"}};
      p.views = {InView(0, "a", a.Size()), InView(1, "jpvt", a.cols), OutView(0, "out", a.Size()),
                 OutView(1, "jpvt_out", a.cols), OutView(2, "taus", k)};
      p.body = std::string("for (std::size_t i = 0; i < m * n; i++)\n   w[i] = a[i];\n") + kFixedColumns + kGeqp3 +
               R"(for (std::size_t i = 0; i < m * n; i++)
   out[i] = static_cast<float>(w[i]);
for (std::size_t j = 0; j < n; j++)
   jpvt_out[j] = static_cast<std::int32_t>(perm[j] + 1);
for (std::size_t j = 0; j < k; j++)
   taus[j] = static_cast<float>(tau[j]);
)";
      return p.Str();
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_Hessenberg: A = Q H Q^T with H upper Hessenberg, in LAPACK gehrd's compact form
/// (lax.linalg.hessenberg): H in and above the subdiagonal, the reflectors' vectors below it (A's
/// shape), and the n - 1 taus. n >= 2.
class HessenbergOperator final : public LinalgOperator {
public:
   HessenbergOperator(std::string a, std::string out, std::string taus)
      : LinalgOperator("J2S_Hessenberg", {std::move(a)}, {std::move(out), std::move(taus)})
   {
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      if (a.rows != a.cols || a.rows < 2)
         throw Error(fKindName, "the matrices must be square, at least 2 x 2");
      return {in[0], {in[0].type, WithTail(in[0].shape, 2, {a.rows - 1})}};
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      Program p;
      p.batch = a.batch;
      p.constants = {{"n", std::to_string(a.rows)}};
      p.scratch = {{"double w", "n * n"}, {"double tau", "n - 1"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "out", a.Size()), OutView(1, "taus", a.rows - 1)};
      p.body = std::string("for (std::size_t i = 0; i < n * n; i++)\n   w[i] = a[i];\n") + kGehrd +
               "for (std::size_t i = 0; i < n * n; i++)\n   out[i] = static_cast<float>(w[i]);\n"
               "for (std::size_t j = 0; j + 1 < n; j++)\n   taus[j] = static_cast<float>(tau[j]);\n";
      return p.Str();
   }
};

// ---------------------------------------------------------------------------------------------
/// J2S_Schur: the real Schur decomposition A = Z T Z^T of a square A (lax.linalg.schur on real
/// input, LAPACK gees without sorting): T quasi-upper-triangular (1 x 1 blocks for real eigenvalues,
/// standardised 2 x 2 blocks for complex pairs), Z orthogonal (the second output, with
/// computeVectors). Hessenberg reduction (kGehrd, kFormHessenbergQ) then Francis double-shift QR
/// (kSchur). gees first permutes A to isolate eigenvalues where rows or columns allow it (balancing
/// 'P'); this does not, so on such matrices Z and the order of T's blocks may differ from LAPACK's
/// (as they may anyway: the order in which the eigenvalues deflate depends on rounding). A matrix on
/// which the iterations do not converge gives NaN, as JAX returns it.
class SchurOperator final : public LinalgOperator {
public:
   SchurOperator(bool computeVectors, std::string a, std::vector<std::string> outputs)
      : LinalgOperator("J2S_Schur", {std::move(a)}, std::move(outputs)), fVectors(computeVectors)
   {
      if (fOutputs.size() != (computeVectors ? 2u : 1u))
         throw linalg_detail::Error(fKindName, computeVectors ? "needs 2 outputs (t, z)" : "needs 1 output (t)");
   }

protected:
   std::vector<TensorInfo> InferOutputs(const std::vector<TensorInfo> &in) override
   {
      using namespace linalg_detail;
      ExpectFloat(in.at(0), fKindName, "the input");
      const auto a = Split(in[0].shape, 2, fKindName, "the input");
      if (a.rows != a.cols)
         throw Error(fKindName, "the matrices must be square");
      return std::vector<TensorInfo>(fVectors ? 2 : 1, in[0]);
   }

   std::string GenerateCode() override
   {
      using namespace linalg_detail;
      const auto a = Split(InInfo(0).shape, 2, fKindName, "the input");
      Program p;
      p.batch = a.batch;
      p.constants = {{"n", std::to_string(a.rows)}};
      p.scratch = {{"double w", "n * n"}, {"double tau", "n"}, {"double z", "n * n"}};
      p.views = {InView(0, "a", a.Size()), OutView(0, "t_out", a.Size())};
      if (fVectors)
         p.views.push_back(OutView(1, "z_out", a.Size()));
      p.body = std::string("for (std::size_t i = 0; i < n * n; i++)\n   w[i] = a[i];\n") + kGehrd + kFormHessenbergQ +
               "bool converged;\n{\n" + Indent(kSchur, "   ") + "}\n" + R"(const float nan = std::numeric_limits<float>::quiet_NaN();
for (std::size_t i = 0; i < n * n; i++)
   t_out[i] = !converged ? nan : i / n > i % n + 1 ? 0.0f : static_cast<float>(w[i]);
)";
      if (fVectors)
         p.body += "for (std::size_t i = 0; i < n * n; i++)\n   z_out[i] = converged ? static_cast<float>(z[i]) : nan;\n";
      return p.Str();
   }

private:
   bool fVectors;
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
