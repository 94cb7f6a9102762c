// Helpers shared by the project-owned indexing and data-movement operators with XLA semantics, one
// file per operator:
//   gather.hpp   J2S_Gather   XLA gather, any GatherDimensionNumbers (incl. batching dims), clamped or
//                             filled out-of-bounds starts (SOFIE's Gather is one axis only; its GatherND
//                             wraps negative indices once and never checks bounds);
//   scatter.hpp  J2S_Scatter  XLA scatter with set/add/sub/mul/min/max, clamped or dropped out-of-bounds
//                             windows (SOFIE's ScatterND fails shape inference on the index shapes JAX
//                             produces);
//   pad.hpp      J2S_Pad      lax.pad: low/high padding (negative crops) and interior padding;
//   reverse.hpp  J2S_Reverse  lax.rev over any set of axes;
//   tile.hpp     J2S_Tile     lax.tile (numpy tile with one repeat count per axis);
//   split.hpp    J2S_Split    lax.split into pieces of given sizes along one axis (several outputs).
//
// Shapes may hold a symbolic batch ("bs"): every size and stride is a C++ expression built from the
// Dims, with the numeric part folded ("bs*20", not "bs*4*5"). Index arithmetic is hoisted out of the
// innermost loops: a window's base offsets are computed once per index vector.
#pragma once

#include "codegen.hpp"
#include "owned_operator.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <limits>
#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace jax2sofie {

namespace indexing_detail {

using namespace codegen;

/// The value of a Dim as a signed C++ expression.
inline std::string Signed(const Dim &d)
{
   return d.isParam ? "static_cast<int64_t>(" + d.param + ")" : std::to_string(static_cast<std::int64_t>(d.dim));
}

/// `d - size` as a signed expression (the largest valid start of a window of `size` along `d`).
inline std::string LastStart(const Dim &d, const Dim &size)
{
   if (d == size)
      return "0";
   if (!d.isParam && !size.isParam)
      return std::to_string(static_cast<std::int64_t>(d.dim) - static_cast<std::int64_t>(size.dim));
   return Signed(d) + " - " + Signed(size);
}

inline bool Contains(const std::vector<std::int64_t> &v, std::size_t x)
{
   return std::find(v.begin(), v.end(), static_cast<std::int64_t>(x)) != v.end();
}

inline std::runtime_error Error(const std::string &op, const std::string &what)
{
   return std::runtime_error("jax2sofie " + op + ": " + what);
}

inline void CheckDims(const std::vector<std::int64_t> &dims, std::size_t rank, const std::string &op,
                      const std::string &what)
{
   std::set<std::int64_t> seen;
   for (auto d : dims) {
      if (d < 0 || static_cast<std::size_t>(d) >= rank || !seen.insert(d).second)
         throw Error(op, what + " holds an invalid or repeated dimension " + std::to_string(d) + " (rank " +
                             std::to_string(rank) + ")");
   }
}

inline bool IsIndexType(SOFIE::ETensorType t)
{
   return t == SOFIE::ETensorType::INT32 || t == SOFIE::ETensorType::INT64;
}

/// A value of type `type` as a C++ literal (NaN and infinities spelled through numeric_limits).
inline std::string Literal(double v, SOFIE::ETensorType type)
{
   const std::string T = SOFIE::ConvertTypeToString(type);
   if (type == SOFIE::ETensorType::BOOL)
      return v != 0 ? "1" : "0";
   if (IsFloat(type)) {
      if (v != v)
         return "std::numeric_limits<" + T + ">::quiet_NaN()";
      if (v == std::numeric_limits<double>::infinity())
         return "std::numeric_limits<" + T + ">::infinity()";
      if (v == -std::numeric_limits<double>::infinity())
         return "-std::numeric_limits<" + T + ">::infinity()";
      std::stringstream s;
      s.precision(17);
      s << "static_cast<" << T << ">(" << v << ")";
      return s.str();
   }
   if (type == SOFIE::ETensorType::INT64 && v <= -9.2233720368547758e18)
      return "std::numeric_limits<int64_t>::min()";
   std::stringstream s;
   s << "static_cast<" << T << ">(" << static_cast<std::int64_t>(v) << "LL)";
   return s.str();
}

} // namespace indexing_detail

} // namespace jax2sofie
