"""The C++ glue that runs a written model inside ROOT's RDataFrame: `<name>_rdf.hxx`.

It holds `SOFIE_<name>::RDFFunctor`, which keeps one Session per RDataFrame processing slot (a
Session must not be shared between threads) and maps the columns of one event to the model's input
and its outputs to one `ROOT::RVecF`. jax2sofie.rdf.Define declares it in ROOT's interpreter; C++
RDataFrame users include it themselves:

    #include "mlp_rdf.hxx"
    SOFIE_mlp::RDFFunctor mlp("mlp.dat", df.GetNSlots());
    auto scored = df.DefineSlot("score", [&mlp](unsigned slot, float pt, float eta, float phi) {
       return mlp(slot, pt, eta, phi);   // or mlp(slot, rvec) for one RVec<float> column
    }, {"pt", "eta", "phi"});

The header needs ROOT's headers only; the model's own header stays free of them.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import ConversionError
from .ir import Graph


def functor_filename(name: str) -> str:
    return f"{name}_rdf.hxx"


def _example_layout(graph: Graph) -> tuple[int, int]:
    """(rows of a static input, 0 for a dynamic batch; floats of one row) of the model's one input."""
    (value,) = graph.inputs
    shape = tuple(value.shape)
    if len(shape) <= 1:  # a vector or scalar: the whole input is one example
        return (0 if shape and isinstance(shape[0], str) else 1), max(1, math.prod(d for d in shape if isinstance(d, int)))
    if any(isinstance(d, str) for d in shape[1:]):
        raise ConversionError(f"input '{value.name}' has a batch-sized axis other than the first: {list(shape)}")
    rows = 0 if isinstance(shape[0], str) else int(shape[0])
    return rows, math.prod(int(d) for d in shape[1:])


def check_functor_support(graph: Graph) -> None:
    """Raise a ConversionError naming why the RDataFrame glue cannot take this model, if it cannot."""
    if len(graph.inputs) != 1:
        raise ConversionError(f"the RDataFrame glue takes a model with one input; '{graph.name}' has "
                              f"{len(graph.inputs)} ({', '.join(v.name for v in graph.inputs)}): concatenate them "
                              "into one input in the converted function")
    (value,) = graph.inputs
    if np.dtype(value.dtype) != np.float32:
        raise ConversionError(f"the RDataFrame glue takes a float32 input; input '{value.name}' of "
                              f"'{graph.name}' is {np.dtype(value.dtype).name}")
    _example_layout(graph)


def functor_code(graph: Graph, dynamic_batch: bool) -> str:
    """The text of `<name>_rdf.hxx` for a model written as `<name>.hxx`."""
    check_functor_support(graph)
    name = graph.name
    rows, example = _example_layout(graph)
    guard = f"J2S_RDF_FUNCTOR_{name.upper()}"
    run_session = ("session.infer(rows, x)" if dynamic_batch else "session.infer(x)")
    make_session = ("std::make_unique<Session>(fWeights, fMaxBatch)" if dynamic_batch
                    else "std::make_unique<Session>(fWeights)")
    return f'''// RDataFrame glue for the model of {name}.hxx: SOFIE_{name}::RDFFunctor (needs ROOT's headers).
#ifndef {guard}
#define {guard}

#include "{name}.hxx"

#include <ROOT/RVec.hxx>
#include <TROOT.h>

#include <algorithm>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

namespace SOFIE_{name} {{

/// Runs the model on the events of an RDataFrame. One Session per processing slot, made at the
/// slot's first event (a Session must not be shared between threads). The input of one event is
/// either the model's input row as scalar columns, `operator()(slot, x0, x1, ...)`, or one
/// RVec<float> holding the input flattened: exactly kRows rows of a static model, or any number of
/// rows up to the maximum batch of a dynamic-batch model (e.g. the jets of the event). The result is
/// every output of the model, flattened and concatenated, as RVec<float>.
class RDFFunctor {{
public:
   static constexpr std::size_t kRows = {rows};         // rows of the input; 0: any number (dynamic batch)
   static constexpr std::size_t kRowSize = {example};     // floats in one row of the input

   /// weights: the model's weight file; if it does not exist, the file of that name next to this
   /// header is used (where a distributed RDataFrame ships both). slots: df.GetNSlots() (at least
   /// ROOT's thread-pool size is kept). maxBatch: the most rows one event may hold (dynamic batch).
   explicit RDFFunctor(const std::string &weights, unsigned slots = 1, std::size_t maxBatch = 64)
      : fWeights(weights), fMaxBatch(kRows ? kRows : maxBatch),
        fSessions(std::max<std::size_t>({{std::size_t(slots), std::size_t(ROOT::GetThreadPoolSize()), 1}}))
   {{
   }}

   ROOT::RVecF operator()(unsigned slot, const ROOT::RVecF &x)
   {{
      if (x.size() % kRowSize != 0 || (kRows && x.size() != kRows * kRowSize))
         throw std::runtime_error("SOFIE_{name}::RDFFunctor: an input of " + std::to_string(x.size()) +
                                  " floats, expected " + (kRows ? std::to_string(kRows) + " rows" : std::string("rows")) +
                                  " of " + std::to_string(kRowSize));
      return Run(slot, x.data(), x.size() / kRowSize);
   }}

   template <class... T>
   ROOT::RVecF operator()(unsigned slot, T... values)
   {{
      static_assert(sizeof...(T) == kRowSize, "SOFIE_{name}::RDFFunctor: one column per input value of the row");
      static_assert(kRows <= 1, "SOFIE_{name}::RDFFunctor: scalar columns give one row; this model takes several");
      const float row[] = {{static_cast<float>(values)...}};
      return Run(slot, row, 1);
   }}

private:
   static std::string Locate(const std::string &weights)
   {{
      namespace fs = std::filesystem;
      if (weights.empty() || fs::exists(weights))
         return weights;
      const fs::path shipped = fs::path(__FILE__).parent_path() / fs::path(weights).filename();
      if (fs::exists(shipped))
         return shipped.string();
      throw std::runtime_error("SOFIE_{name}::RDFFunctor: weight file '" + weights + "' not found (nor " +
                               shipped.string() + " next to {functor_filename(name)})");
   }}

   template <class V>
   static void Append(ROOT::RVecF &out, const std::vector<V> &values)
   {{
      for (const V &v : values)
         out.push_back(static_cast<float>(v));
   }}

   template <class... V>
   static void Append(ROOT::RVecF &out, const std::tuple<V...> &outputs)
   {{
      std::apply([&out](const auto &...each) {{ (Append(out, each), ...); }}, outputs);
   }}

   ROOT::RVecF Run(unsigned slot, const float *x, std::size_t rows)
   {{
      if (slot >= fSessions.size())
         throw std::runtime_error("SOFIE_{name}::RDFFunctor: slot " + std::to_string(slot) + " of " +
                                  std::to_string(fSessions.size()) +
                                  ": make the functor after ROOT::EnableImplicitMT, with df.GetNSlots()");
      ROOT::RVecF out;
      if (rows == 0)
         return out;
      if (rows > fMaxBatch)
         throw std::runtime_error("SOFIE_{name}::RDFFunctor: an event of " + std::to_string(rows) +
                                  " rows, more than the maximum batch " + std::to_string(fMaxBatch));
      if (!fSessions[slot])
         fSessions[slot] = {make_session.replace("fWeights", "Locate(fWeights)")};
      Session &session = *fSessions[slot];
      Append(out, {run_session});
      return out;
   }}

   std::string fWeights;
   std::size_t fMaxBatch;
   std::vector<std::unique_ptr<Session>> fSessions;
}};

}} // namespace SOFIE_{name}

#endif // {guard}
'''
