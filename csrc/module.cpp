// The Python module jax2sofie._native: push(rmodel, nodes) turns node dicts into SOFIE operators
// and adds them to an RModel created by PySofie (sofie.RModel).
//
// The RModel is received as SOFIE::RModel&: pybind11 shares registered types between modules
// that use the same internals version and ABI, so the class bound by sofie._sofie is found here
// (this is why pybind11 is pinned to the version PySofie was built with). The operators are built
// here, from the SOFIE headers of the same version, and handed over as std::unique_ptr; the
// RModel (code in libSOFIE_core.so, loaded once for both modules) owns them from then on.
#include "node.hpp"
#include "ops.hpp"

#include "SOFIE/RModel.hxx"

#include <pybind11/stl.h>

#ifndef JAX2SOFIE_SOFIE_VERSION
#define JAX2SOFIE_SOFIE_VERSION "unknown"
#endif

namespace py = pybind11;
using namespace jax2sofie;

namespace {

// NodeError on the Python side: a subclass of both ValueError and RuntimeError (a bad node is a
// bad value; a SOFIE constructor failure is a runtime error; callers may catch either), with the
// attributes `node` (the node's name) and `op`.
PyObject *gNodeErrorType = nullptr;

struct PushError {
   std::string message, node, op;
};

[[noreturn]] void Fail(const std::string &node, const std::string &op, const std::string &what)
{
   throw PushError{"node '" + node + "' (" + op + "): " + what, node, op};
}

void Push(SOFIE::RModel &model, const py::sequence &nodes)
{
   const auto &table = OpTable();
   // Build every operator first and add them only when all succeeded, so that a bad node leaves
   // the RModel as it was.
   std::vector<OpPtr> built;
   built.reserve(nodes.size());
   for (std::size_t i = 0; i < nodes.size(); i++) {
      py::object obj = nodes[i];
      // name/op for messages, read leniently before the strict parse
      std::string name = "#" + std::to_string(i), op = "?";
      if (py::isinstance<py::dict>(obj)) {
         auto d = py::reinterpret_borrow<py::dict>(obj);
         if (d.contains("name") && py::isinstance<py::str>(d["name"]))
            name = d["name"].cast<std::string>();
         if (d.contains("op") && py::isinstance<py::str>(d["op"]))
            op = d["op"].cast<std::string>();
      }
      try {
         Node n = Node::FromPython(obj, i);
         auto it = table.find(n.op);
         if (it == table.end())
            throw NodeError("unknown op '" + n.op + "' (jax2sofie._native.ops() lists the " +
                            std::to_string(table.size()) + " known ops)");
         OpPtr created = it->second(n);
         n.CheckAllAttrsUsed();
         built.push_back(std::move(created));
      } catch (const NodeError &e) {
         Fail(name, op, e.what());
      } catch (const py::error_already_set &e) {
         Fail(name, op, e.what());
      } catch (const std::exception &e) {
         // thrown by the SOFIE constructor itself (e.g. Gemm's shape checks)
         Fail(name, op, std::string("SOFIE: ") + e.what());
      }
   }
   for (std::size_t i = 0; i < built.size(); i++) {
      try {
         model.AddOperator(std::move(built[i]));
      } catch (const std::exception &e) {
         py::dict d = nodes[i];
         Fail(d["name"].cast<std::string>(), d["op"].cast<std::string>(), std::string("SOFIE AddOperator: ") + e.what());
      }
   }
}

std::vector<std::string> Ops()
{
   std::vector<std::string> names;
   for (auto &kv : OpTable())
      names.push_back(kv.first); // std::map: already sorted
   return names;
}

} // namespace

PYBIND11_MODULE(_native, m)
{
   m.doc() = "jax2sofie native shim: builds SOFIE operators from node descriptions and adds them to a "
             "sofie.RModel. Import it through jax2sofie._native_loader (which imports sofie first).";

   py::object bases = py::make_tuple(py::handle(PyExc_ValueError), py::handle(PyExc_RuntimeError));
   gNodeErrorType = PyErr_NewExceptionWithDoc(
      "jax2sofie._native.NodeError",
      "A node could not be turned into a SOFIE operator; the message names the node and its op "
      "(attributes: node, op).",
      bases.ptr(), nullptr);
   if (!gNodeErrorType)
      throw py::error_already_set();
   m.attr("NodeError") = py::handle(gNodeErrorType); // the module keeps the reference

   py::register_exception_translator([](std::exception_ptr p) {
      try {
         if (p)
            std::rethrow_exception(p);
      } catch (const PushError &e) {
         py::object exc = py::reinterpret_borrow<py::object>(gNodeErrorType)(e.message);
         exc.attr("node") = e.node;
         exc.attr("op") = e.op;
         PyErr_SetObject(gNodeErrorType, exc.ptr());
      }
   });

   m.def("push", &Push, py::arg("rmodel"), py::arg("nodes"),
         "Add one SOFIE operator per node to rmodel (a sofie.RModel), in order.\n\n"
         "nodes: list of {'op': str, 'name': str, 'inputs': [str], 'outputs': [str], 'attrs': {str: value}}.\n"
         "Raises NodeError (a ValueError and RuntimeError) naming the node and op; then nothing was added.");
   m.def("ops", &Ops, "The sorted names of the ops push() knows.");
   m.def("sofie_version", []() { return std::string(JAX2SOFIE_SOFIE_VERSION); },
         "The sofie version whose headers this module was compiled against.");
}
