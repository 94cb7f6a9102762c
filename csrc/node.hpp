// A node description as handed over by Python, with attribute getters that fail with clear messages.
//
// Python passes {"op": str, "name": str, "inputs": [str], "outputs": [str], "attrs": {str: value}}.
// Getters throw NodeError with a short message ("missing attribute 'transB'"); push() (module.cpp)
// prefixes it with the node name and op, so the messages here never repeat them.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace SOFIE {
class ROperator;
}

namespace jax2sofie {

namespace py = pybind11;

using OpPtr = std::unique_ptr<SOFIE::ROperator>;

/// A problem with one node's description (unknown op, bad attribute, bad dtype, wrong arity).
struct NodeError : std::runtime_error {
   using std::runtime_error::runtime_error;
};

class Node {
public:
   std::string op;
   std::string name;
   std::vector<std::string> inputs;
   std::vector<std::string> outputs;

   /// Reads and type-checks the dict; `index` is the position in the list (for messages when the
   /// name itself is missing).
   static Node FromPython(py::handle obj, std::size_t index);

   // ---- arity -------------------------------------------------------------------------------
   void ExpectInputs(std::size_t lo, std::size_t hi) const;
   void ExpectInputs(std::size_t n) const { ExpectInputs(n, n); }
   void ExpectOutputs(std::size_t n) const;
   const std::string &Output() const { return outputs.at(0); }

   // ---- attributes: the one-argument form is required, the two-argument form has a default --
   bool Has(const char *key) const;
   std::int64_t Int(const char *key) const;
   std::int64_t Int(const char *key, std::int64_t def) const;
   double Float(const char *key) const;
   double Float(const char *key, double def) const;
   std::string Str(const char *key) const;
   std::string Str(const char *key, const std::string &def) const;
   std::vector<std::int64_t> Ints(const char *key) const;
   std::vector<std::int64_t> Ints(const char *key, const std::vector<std::int64_t> &def) const;
   /// An int attribute that must be 0 or 1 (ONNX flags like transA, keepdims).
   bool Flag(const char *key, bool def) const;

   /// Throws for an attribute that no getter asked for: a misspelt key ("transb") would
   /// otherwise be silently replaced by its default.
   void CheckAllAttrsUsed() const;

private:
   py::dict fAttrs;
   mutable std::set<std::string> fUsed;
   py::object Lookup(const char *key) const; // null object if absent; marks the key as used
};

// ---- element types ---------------------------------------------------------------------------
// The `dtype` attribute names the element type of the op's first data input.
template <class T>
constexpr const char *DTypeName()
{
   if constexpr (std::is_same_v<T, float>) return "float32";
   else if constexpr (std::is_same_v<T, double>) return "float64";
   else if constexpr (std::is_same_v<T, std::int32_t>) return "int32";
   else if constexpr (std::is_same_v<T, std::int64_t>) return "int64";
   else if constexpr (std::is_same_v<T, bool>) return "bool";
   else static_assert(!sizeof(T), "unsupported element type");
}

/// The dtype attribute (default float32), checked to be one of the known names.
std::string ReadDType(const Node &n);

template <class... Ts>
[[noreturn]] void ThrowBadDType(const std::string &dt)
{
   std::string supported;
   ((supported += (supported.empty() ? "" : ", ") + std::string(DTypeName<Ts>())), ...);
   throw NodeError("unsupported dtype '" + dt + "' (this op supports: " + supported + ")");
}

/// Calls make(std::type_identity<T>{}) with the T named by the node's dtype, among Ts only: each
/// op instantiates its SOFIE template just for the element types it supports.
template <class... Ts, class Make>
OpPtr WithDType(const Node &n, Make &&make)
{
   const std::string dt = ReadDType(n);
   OpPtr op;
   const bool found = ((dt == DTypeName<Ts>() && (op = make(std::type_identity<Ts>{}), true)) || ...);
   if (!found)
      ThrowBadDType<Ts...>(dt);
   return op;
}

/// For the ops that are not templated on the element type: only checks the dtype.
template <class... Ts>
void CheckDType(const Node &n)
{
   const std::string dt = ReadDType(n);
   if (!((dt == DTypeName<Ts>()) || ...))
      ThrowBadDType<Ts...>(dt);
}

} // namespace jax2sofie
