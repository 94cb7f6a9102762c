"""A reference check a C++ user can run without Python: `<name>_test.cpp` (built by the Makefile's
`make test`, runtime/makefile.py).

The test embeds one reference input and the JAX output for it, runs the generated Session on the
input, compares (float: |got - expected| <= atol + rtol * |expected|; integers and booleans: equal)
and exits non-zero on any mismatch — the way keras2c and frugally-deep ship a check with a model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .build import DEFAULT_CXXFLAGS

_C_TYPES = {np.dtype("float32"): "float", np.dtype("int32"): "int32_t", np.dtype("int64"): "int64_t",
            np.dtype("bool"): "uint8_t"}  # SOFIE's generated code stores booleans as uint8_t

_TEST_TEMPLATE = """// Reference check of the SOFIE model {name}, written by jax2sofie: runs the Session on an embedded
// input and compares with the output JAX computed for it. Exit status 0: match; 1: mismatch.
//   make test            (or: {cxx_line})
#include "{name}.hxx"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {{
{arrays}
template <class T> struct is_vector : std::false_type {{}};
template <class T> struct is_vector<std::vector<T>> : std::true_type {{}};
template <class T> struct is_tuple : std::false_type {{}};
template <class... T> struct is_tuple<std::tuple<T...>> : std::true_type {{}};

const double kRtol = {rtol}, kAtol = {atol};
int failures = 0;
std::size_t output_index = 0;
const double *const kExpected[] = {{{expected_list}}};
const std::size_t kExpectedSize[] = {{{expected_sizes}}};
const char *const kOutputNames[] = {{{output_names}}};

template <class T> void Check(const std::vector<T> &got)
{{
   const std::size_t i = output_index++;
   if (i >= {n_outputs}) {{ std::printf("more outputs than expected\\n"); failures++; return; }}
   if (got.size() != kExpectedSize[i]) {{
      std::printf("%s: %zu values, expected %zu\\n", kOutputNames[i], got.size(), kExpectedSize[i]);
      failures++;
      return;
   }}
   double worst = 0;
   for (std::size_t k = 0; k < got.size(); k++) {{
      const double g = static_cast<double>(got[k]), e = kExpected[i][k];
      const bool exact = !std::is_floating_point<T>::value;
      // NaN must be NaN and an infinity the same infinity (inf - inf is NaN, which no tolerance admits)
      const bool ok = exact ? g == e : std::isnan(e) ? std::isnan(g) : std::isinf(e) ? g == e
                                     : std::fabs(g - e) <= kAtol + kRtol * std::fabs(e);
      if (std::isfinite(e)) worst = std::fmax(worst, std::fabs(g - e));
      if (!ok) {{
         std::printf("%s[%zu]: got %.9g, expected %.9g\\n", kOutputNames[i], k, g, e);
         failures++;
         return;
      }}
   }}
   std::printf("%s: %zu values match (max abs error %.3g)\\n", kOutputNames[i], got.size(), worst);
}}

template <class R> void CheckAll(const R &result)
{{
   if constexpr (is_tuple<R>::value)
      std::apply([](const auto &...outs) {{ (Check(outs), ...); }}, result);
   else if constexpr (is_vector<typename R::value_type>::value)
      for (const auto &out : result) Check(out);
   else
      Check(result);
}}
}} // namespace

int main(int argc, char **argv)
{{
   const std::string weights = argc > 1 ? argv[1] : "{weight_file}";
   SOFIE_{name}::Session session({session_args});
   CheckAll(session.infer({input_args}));
   if (output_index != {n_outputs}) {{ std::printf("%zu outputs, expected {n_outputs}\\n", output_index); failures++; }}
   std::printf(failures ? "{name}: MISMATCH\\n" : "{name}: OK\\n");
   return failures ? 1 : 0;
}}
"""

def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = values.ravel()
    if ctype == "double":
        body = ", ".join(repr(float(v)) if np.isfinite(v) else ("NAN" if np.isnan(v) else
                                                                  ("INFINITY" if v > 0 else "-INFINITY"))
                         for v in flat)
    elif ctype == "float":
        body = ", ".join(f"{float(v)!r}f" for v in flat)
    else:
        body = ", ".join(str(int(v)) for v in flat)
    return f"const {ctype} {name}[] = {{{body or '0'}}};\n"


def write_standalone_test(directory: Path, name: str, weight_file: str, input_names: Sequence[str],
                          inputs: Sequence[np.ndarray], output_names: Sequence[str],
                          expected: Sequence[np.ndarray], rtol: float, atol: float,
                          batch: int | None = None, max_batch: int | None = None) -> list[Path]:
    """Write `<name>_test.cpp` into `directory`; return its path.

    batch: for a dynamic-batch model, the batch size of the reference input (`infer` gets it as its
    first argument).
    max_batch: the maximum batch the Session is built for (default: `batch`); a larger one checks a
    Session run below its maximum, as it is used.
    """
    if batch is not None and max_batch is not None and max_batch < batch:
        raise ValueError(f"max_batch {max_batch} is smaller than the reference input's batch {batch}")
    arrays = []
    for input_name, array in zip(input_names, inputs):
        arrays.append(_c_array(_C_TYPES[np.dtype(array.dtype)], f"input_{input_name}", np.asarray(array)))
    for k, array in enumerate(expected):
        arrays.append(_c_array("double", f"expected_{k}", np.asarray(array, dtype=np.float64)))
    source = _TEST_TEMPLATE.format(
        name=name,
        cxx_line=f"g++ {' '.join(DEFAULT_CXXFLAGS)} -o {name}_test {name}_test.cpp -lopenblas",
        arrays="".join(arrays),
        rtol=repr(float(rtol)), atol=repr(float(atol)),
        expected_list=", ".join(f"expected_{k}" for k in range(len(expected))),
        expected_sizes=", ".join(str(int(np.asarray(e).size)) for e in expected),
        output_names=", ".join(f'"{n}"' for n in output_names),
        n_outputs=len(expected),
        weight_file=weight_file,
        input_args=", ".join(([f"{batch}"] if batch is not None else []) + [f"input_{n}" for n in input_names]),
        session_args="weights" + (f", {max_batch or batch}" if batch is not None else ""),
    )
    test_path = Path(directory) / f"{name}_test.cpp"
    test_path.write_text(source)
    return [test_path]
