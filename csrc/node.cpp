// Reading a node dict from Python, with type checks that say what was expected.
#include "node.hpp"

#include <algorithm>

namespace jax2sofie {

namespace {

std::string TypeName(py::handle h)
{
   return py::str(py::type::handle_of(h).attr("__name__")).cast<std::string>();
}

// bool is an int in Python; ints are accepted for floats. numpy scalars are accepted through
// __index__ / __float__, since the lowering often computes attributes with numpy.
bool IsIntLike(py::handle h)
{
   return PyLong_Check(h.ptr()) || (PyIndex_Check(h.ptr()) && !PyFloat_Check(h.ptr()));
}

bool IsFloatLike(py::handle h)
{
   if (PyFloat_Check(h.ptr()) || IsIntLike(h))
      return true;
   // numpy floating scalars
   return !PyUnicode_Check(h.ptr()) && !PyBytes_Check(h.ptr()) && py::hasattr(h, "__float__") &&
          !PySequence_Check(h.ptr());
}

std::int64_t ToInt(py::handle h)
{
   return py::reinterpret_steal<py::object>(PyNumber_Index(h.ptr())).cast<std::int64_t>();
}

std::vector<std::string> StringList(py::handle obj, const char *what)
{
   if (!py::isinstance<py::list>(obj) && !py::isinstance<py::tuple>(obj))
      throw NodeError(std::string("'") + what + "' must be a list of str, not " + TypeName(obj));
   std::vector<std::string> out;
   for (auto item : obj) {
      if (!py::isinstance<py::str>(item))
         throw NodeError(std::string("'") + what + "' must be a list of str, found an item of type " + TypeName(item));
      out.push_back(item.cast<std::string>());
      if (out.back().empty())
         throw NodeError(std::string("'") + what + "' has an empty tensor name");
   }
   return out;
}

} // namespace

Node Node::FromPython(py::handle obj, std::size_t index)
{
   if (!py::isinstance<py::dict>(obj))
      throw NodeError("node #" + std::to_string(index) + " is a " + TypeName(obj) + ", not a dict");
   auto d = py::reinterpret_borrow<py::dict>(obj);
   Node n;
   auto str_field = [&](const char *key) {
      if (!d.contains(key))
         throw NodeError(std::string("node #") + std::to_string(index) + " has no '" + key + "'");
      py::object v = d[key];
      if (!py::isinstance<py::str>(v))
         throw NodeError(std::string("node #") + std::to_string(index) + ": '" + key + "' must be a str, not " +
                         TypeName(v));
      return v.cast<std::string>();
   };
   n.name = str_field("name");
   n.op = str_field("op");
   for (auto item : d) {
      const std::string key = py::str(item.first).cast<std::string>();
      if (key != "op" && key != "name" && key != "inputs" && key != "outputs" && key != "attrs")
         throw NodeError("unknown node field '" + key + "' (fields: op, name, inputs, outputs, attrs)");
   }
   n.inputs = d.contains("inputs") ? StringList(d["inputs"], "inputs") : std::vector<std::string>{};
   n.outputs = d.contains("outputs") ? StringList(d["outputs"], "outputs") : std::vector<std::string>{};
   if (d.contains("attrs") && !d["attrs"].is_none()) {
      py::object a = d["attrs"];
      if (!py::isinstance<py::dict>(a))
         throw NodeError("'attrs' must be a dict, not " + TypeName(a));
      n.fAttrs = py::reinterpret_borrow<py::dict>(a);
      for (auto item : n.fAttrs)
         if (!py::isinstance<py::str>(item.first))
            throw NodeError("attribute names must be str, found " + TypeName(item.first));
   }
   return n;
}

void Node::ExpectInputs(std::size_t lo, std::size_t hi) const
{
   if (inputs.size() < lo || inputs.size() > hi) {
      std::string want = lo == hi ? std::to_string(lo)
                         : hi == SIZE_MAX ? "at least " + std::to_string(lo)
                                          : std::to_string(lo) + " to " + std::to_string(hi);
      throw NodeError("expects " + want + " input(s), got " + std::to_string(inputs.size()));
   }
}

void Node::ExpectOutputs(std::size_t n) const
{
   if (outputs.size() != n)
      throw NodeError("expects " + std::to_string(n) + " output(s), got " + std::to_string(outputs.size()));
}

py::object Node::Lookup(const char *key) const
{
   fUsed.insert(key);
   if (!fAttrs.contains(key))
      return py::object();
   return fAttrs[key];
}

bool Node::Has(const char *key) const
{
   return fAttrs.contains(key);
}

static NodeError Missing(const char *key)
{
   return NodeError(std::string("missing attribute '") + key + "'");
}

static NodeError IllTyped(const char *key, const char *want, py::handle v)
{
   return NodeError(std::string("attribute '") + key + "' must be " + want + ", not " + TypeName(v) + " (" +
                    py::repr(v).cast<std::string>() + ")");
}

std::int64_t Node::Int(const char *key) const
{
   py::object v = Lookup(key);
   if (!v)
      throw Missing(key);
   if (!IsIntLike(v))
      throw IllTyped(key, "an int", v);
   return ToInt(v);
}

std::int64_t Node::Int(const char *key, std::int64_t def) const
{
   return Has(key) ? Int(key) : (Lookup(key), def);
}

double Node::Float(const char *key) const
{
   py::object v = Lookup(key);
   if (!v)
      throw Missing(key);
   if (!IsFloatLike(v))
      throw IllTyped(key, "a float", v);
   return py::float_(v).cast<double>();
}

double Node::Float(const char *key, double def) const
{
   return Has(key) ? Float(key) : (Lookup(key), def);
}

std::string Node::Str(const char *key) const
{
   py::object v = Lookup(key);
   if (!v)
      throw Missing(key);
   if (!py::isinstance<py::str>(v))
      throw IllTyped(key, "a str", v);
   return v.cast<std::string>();
}

std::string Node::Str(const char *key, const std::string &def) const
{
   return Has(key) ? Str(key) : (Lookup(key), def);
}

std::vector<std::int64_t> Node::Ints(const char *key) const
{
   py::object v = Lookup(key);
   if (!v)
      throw Missing(key);
   if (!py::isinstance<py::list>(v) && !py::isinstance<py::tuple>(v))
      throw IllTyped(key, "a list of int", v);
   std::vector<std::int64_t> out;
   for (auto item : v) {
      if (!IsIntLike(item))
         throw IllTyped(key, "a list of int", v);
      out.push_back(ToInt(item));
   }
   return out;
}

std::vector<std::int64_t> Node::Ints(const char *key, const std::vector<std::int64_t> &def) const
{
   return Has(key) ? Ints(key) : (Lookup(key), def);
}

bool Node::Flag(const char *key, bool def) const
{
   const std::int64_t v = Int(key, def ? 1 : 0);
   if (v != 0 && v != 1)
      throw NodeError(std::string("attribute '") + key + "' must be 0 or 1, not " + std::to_string(v));
   return v == 1;
}

void Node::CheckAllAttrsUsed() const
{
   std::vector<std::string> unknown;
   for (auto item : fAttrs) {
      auto key = item.first.cast<std::string>();
      if (!fUsed.count(key))
         unknown.push_back(key);
   }
   if (unknown.empty())
      return;
   std::string known, bad;
   for (auto &k : fUsed)
      known += (known.empty() ? "" : ", ") + k;
   for (auto &k : unknown)
      bad += (bad.empty() ? "'" : ", '") + k + "'";
   throw NodeError("unknown attribute(s) " + bad + " (this op reads: " + (known.empty() ? "none" : known) + ")");
}

std::string ReadDType(const Node &n)
{
   std::string dt = n.Str("dtype", "float32");
   static const char *known[] = {"float32", "float64", "int32", "int64", "bool"};
   if (std::none_of(std::begin(known), std::end(known), [&](const char *k) { return dt == k; }))
      throw NodeError("unknown dtype '" + dt + "' (dtypes: float32, float64, int32, int64, bool)");
   return dt;
}

} // namespace jax2sofie
