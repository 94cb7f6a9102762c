"""A C API for a written model: `<name>_c.h`, `<name>_c.cpp` and the version script `<name>_c.map`,
built by the Makefile's `lib<name>.so` target into a shared library that exports the C API only.

The C API wraps `SOFIE_<name>::Session` behind an opaque handle. Tensors are described per example:
the batch is dimension 0 of every input and output. A dynamic-batch model runs any batch from 1 up to
the maximum its handle was created for; a fixed-batch model runs the batch it was converted for, which
is the common size of dimension 0 of all its inputs and outputs, or 1 when they share none (then the
"per-example" shapes are the whole shapes). No C++ exception leaves a C function: each is caught and
turned into a NULL handle or a status code, with its message kept per thread (`<name>_last_error`).
"""
from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConversionError
from .toolchain import ToolchainError, find_blas, find_compiler

# element type codes of the C API (J2S_* in the header) and the C type each is passed as; booleans
# are one byte holding 0 or 1 (SOFIE's generated code stores them as uint8_t)
DTYPE_CODES = {np.dtype("float32"): 1, np.dtype("float64"): 2, np.dtype("int32"): 3, np.dtype("int64"): 4,
               np.dtype("bool"): 5}
_C_TYPES = {np.dtype("float32"): "float", np.dtype("float64"): "double", np.dtype("int32"): "int32_t",
            np.dtype("int64"): "int64_t", np.dtype("bool"): "uint8_t"}
_DTYPE_MACROS = {1: "J2S_FLOAT32", 2: "J2S_FLOAT64", 3: "J2S_INT32", 4: "J2S_INT64", 5: "J2S_BOOL"}

# the functions the library exports, after the model name: `mlp_create`, ...
API_FUNCTIONS = ("create", "infer", "destroy", "last_error", "max_batch", "dynamic_batch", "has_batch",
                 "default_weight_file", "num_inputs", "num_outputs", "input_name", "output_name", "input_dtype",
                 "output_dtype", "input_rank", "output_rank", "input_shape", "output_shape")


class LibraryInterfaceError(ConversionError):
    """The model's inputs and outputs cannot be described by the C API (see the module docstring)."""


@dataclass(frozen=True)
class TensorInfo:
    """An input or output as the C API describes it: its shape per example, without the batch."""

    name: str
    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        """Elements per example."""
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class Interface:
    """What the C API says about a model: its tensors and its batch."""

    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    dynamic_batch: bool
    has_batch: bool  # dimension 0 of every tensor is the batch (else: a fixed-shape model run at batch 1)
    batch: int  # a fixed-batch model's batch (1 without a batch dimension); 0 for a dynamic batch
    weight_file: str = ""  # the file name the weights are written to; "" when they are in the header


def interface(name: str, inputs, outputs, batch_param: str | None, weight_file: str = "") -> Interface:
    """The C API's description of a model, from its graph inputs and outputs (ir Values).

    Raises LibraryInterfaceError, naming the tensor, for what the C API cannot describe: a dynamic
    batch that is not dimension 0 of every input and output, or an element type without a code."""
    tensors = list(inputs) + list(outputs)
    for value in tensors:
        if np.dtype(value.dtype) not in DTYPE_CODES:
            raise LibraryInterfaceError(
                f"model '{name}': tensor '{value.name}' has dtype {np.dtype(value.dtype).name}; the C API passes "
                f"{', '.join(d.name for d in DTYPE_CODES)}")
    if batch_param is not None:
        for value in tensors:
            shape = tuple(value.shape)
            if not shape or shape[0] != batch_param or any(isinstance(d, str) for d in shape[1:]):
                raise LibraryInterfaceError(
                    f"model '{name}': tensor '{value.name}' has shape {shape}; the C API of a dynamic-batch model "
                    f"needs the batch '{batch_param}' as dimension 0 of every input and output, and nowhere else")
        has_batch, batch = True, 0
    else:
        leading = {tuple(v.shape)[0] if len(v.shape) else None for v in tensors}
        has_batch = len(leading) == 1 and None not in leading
        batch = int(leading.pop()) if has_batch else 1

    def info(value) -> TensorInfo:
        shape = tuple(int(d) for d in (value.shape[1:] if has_batch else value.shape))
        return TensorInfo(value.name, np.dtype(value.dtype), shape)

    return Interface(name, tuple(map(info, inputs)), tuple(map(info, outputs)), batch_param is not None, has_batch,
                     batch, weight_file)


# -- the header -----------------------------------------------------------------------------------------

_HEADER = """/* C API of the SOFIE model {name}, written by jax2sofie. Build the library with `make lib{name}.so`.
 *
 *   {name}_session *s = {name}_create("{weight_example}", {max_batch_example});
 *   if (!s) {{ fprintf(stderr, "%s\\n", {name}_last_error()); return 1; }}
 *   const void *inputs[] = {{{input_example}}};
 *   void *outputs[] = {{{output_example}}};
 *   if ({name}_infer(s, {batch_example}, inputs, outputs) != J2S_OK) fprintf(stderr, "%s\\n", {name}_last_error());
 *   {name}_destroy(s);
 *
 * Inputs:  {input_list}
 * Outputs: {output_list}
 * Shapes are per example; a buffer holds batch x per-example elements, row-major (C order).
 *
 * Threads: a session is not thread-safe. Use one session per thread (each holds its own weights and
 * scratch memory); different sessions may run {name}_infer at the same time. The query functions
 * and {name}_last_error may be called from any thread.
 */
#ifndef {guard}
#define {guard}

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#ifndef JAX2SOFIE_C_API_CODES
#define JAX2SOFIE_C_API_CODES
/* status codes of <model>_infer */
#define J2S_OK 0
#define J2S_INVALID_ARGUMENT 1 /* a NULL pointer or a batch out of range: nothing was computed */
#define J2S_INFERENCE_FAILED 2 /* an error during inference (e.g. out of memory): outputs undefined */
/* element types of inputs and outputs */
#define J2S_FLOAT32 1
#define J2S_FLOAT64 2
#define J2S_INT32 3
#define J2S_INT64 4
#define J2S_BOOL 5 /* one byte, 0 or 1 */
#endif

typedef struct {name}_session {name}_session; /* opaque */

/* A session reading its weights from `weight_path` ({weight_doc}).
 * max_batch: {max_batch_doc}
 * Returns NULL on failure ({name}_last_error() says why, naming a missing weight file). */
{name}_session *{name}_create(const char *weight_path, int64_t max_batch);

/* Runs the model on `batch` examples. inputs[i] points to batch x per-example elements of input i,
 * outputs[i] to room for as many of output i (see the query functions). Returns J2S_OK or an error
 * status ({name}_last_error() says why). */
int {name}_infer({name}_session *session, int64_t batch, const void *const *inputs, void *const *outputs);

/* Frees a session (NULL is allowed). */
void {name}_destroy({name}_session *session);

/* The message of the last failed call in the calling thread ("" if none); valid until this thread's
 * next call of this API. */
const char *{name}_last_error(void);

/* The largest batch `session` runs: the max_batch it was created with, or a fixed-batch model's batch. */
int64_t {name}_max_batch(const {name}_session *session);

/* 1 if the model runs any batch up to a session's maximum, 0 if it runs one fixed batch. */
int {name}_dynamic_batch(void);

/* 1 if dimension 0 of every input and output is the batch; 0 for a fixed-shape model without one,
 * which runs at batch 1 with the whole shapes as per-example shapes. */
int {name}_has_batch(void);

/* The name of the weight file written with the model ("" when the weights are in the library). */
const char *{name}_default_weight_file(void);

/* Inputs and outputs: count, name, element type (J2S_FLOAT32, ...), per-example rank and shape.
 * An index out of range gives NULL or -1. */
int {name}_num_inputs(void);
int {name}_num_outputs(void);
const char *{name}_input_name(int i);
const char *{name}_output_name(int i);
int {name}_input_dtype(int i);
int {name}_output_dtype(int i);
int {name}_input_rank(int i);
int {name}_output_rank(int i);
const int64_t *{name}_input_shape(int i);
const int64_t *{name}_output_shape(int i);

#ifdef __cplusplus
}}
#endif

#endif
"""


def _describe(tensors) -> str:
    return ", ".join(f"{t.name} {t.dtype.name}{list(t.shape)}" for t in tensors)


def c_header(api: Interface) -> str:
    name = api.name
    if api.dynamic_batch:
        max_batch_doc = "the largest batch the session will run (at least 1); its scratch memory is sized for it"
        max_batch_example, batch_example = "64", "batch"
    else:
        max_batch_doc = (f"0 or {api.batch}: the model runs the fixed batch {api.batch}"
                         + ("" if api.has_batch else " (it has no batch dimension)"))
        max_batch_example, batch_example = "0", str(api.batch)
    weight_doc = (f"the file {api.weight_file} written with the model" if api.weight_file
                  else "ignored: the weights are in the library; NULL is fine")
    return _HEADER.format(
        name=name, guard=f"SOFIE_{name.upper()}_C_H",
        weight_example=api.weight_file or "", max_batch_example=max_batch_example, batch_example=batch_example,
        input_example=", ".join(t.name for t in api.inputs), output_example=", ".join(t.name for t in api.outputs),
        input_list=_describe(api.inputs), output_list=_describe(api.outputs),
        weight_doc=weight_doc, max_batch_doc=max_batch_doc)


# -- the implementation ---------------------------------------------------------------------------------

_SOURCE = """// C API of the SOFIE model {name} (see {name}_c.h), written by jax2sofie. Build: make lib{name}.so
// Every function catches all C++ exceptions: none crosses the C boundary.
#pragma GCC visibility push(default) // the C API is what the library exports (with {name}_c.map)
#include "{name}_c.h"
#pragma GCC visibility pop

#include "{name}.hxx"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

struct {name}_session {{
   SOFIE_{name}::Session session;
   int64_t max_batch;
}};

namespace {{

struct TensorInfo {{
   const char *name;
   int dtype;
   int rank;
   int64_t shape[{max_rank}]; // per example
   int64_t size;             // elements per example
}};

const std::array<TensorInfo, {n_inputs}> kInputs = {{{{{inputs}}}}};
const std::array<TensorInfo, {n_outputs}> kOutputs = {{{{{outputs}}}}};
constexpr bool kDynamicBatch = {dynamic};
constexpr bool kHasBatch = {has_batch};
constexpr int64_t kFixedBatch = {fixed_batch}; // the batch of a fixed-batch model
const char *const kWeightFile = "{weight_file}";

// the message of the last failed call, per thread: sessions in other threads do not overwrite it
thread_local std::string last_error;

int Fail(int status, std::string message)
{{
   last_error = std::move(message);
   return status;
}}

template <class T>
void CopyOutput(std::vector<T> const &values, std::size_t index, int64_t batch, void *const *outputs)
{{
   const auto expected = static_cast<std::size_t>(batch * kOutputs[index].size);
   if (values.size() != expected)
      throw std::length_error(std::string("output ") + kOutputs[index].name + " has " +
                              std::to_string(values.size()) + " elements, expected " + std::to_string(expected));
   std::memcpy(outputs[index], values.data(), values.size() * sizeof(T));
}}

// Session::infer returns std::vector<T> (one output), std::vector<std::vector<T>> (several of one
// type) or std::tuple<std::vector<T>...> (several types)
template <class T>
void CopyOutputs(std::vector<T> const &one, int64_t batch, void *const *outputs)
{{
   CopyOutput(one, 0, batch, outputs);
}}

template <class T>
void CopyOutputs(std::vector<std::vector<T>> const &several, int64_t batch, void *const *outputs)
{{
   if (several.size() != kOutputs.size())
      throw std::length_error("Session::infer returned " + std::to_string(several.size()) + " outputs");
   for (std::size_t i = 0; i < several.size(); ++i)
      CopyOutput(several[i], i, batch, outputs);
}}

template <class... T>
void CopyOutputs(std::tuple<std::vector<T>...> const &mixed, int64_t batch, void *const *outputs)
{{
   std::size_t i = 0;
   std::apply([&](auto const &...values) {{ (CopyOutput(values, i++, batch, outputs), ...); }}, mixed);
}}

template <std::size_t N>
const TensorInfo *Find(std::array<TensorInfo, N> const &tensors, int i)
{{
   return i >= 0 && static_cast<std::size_t>(i) < N ? &tensors[i] : nullptr;
}}

}} // namespace

extern "C" {{

{name}_session *{name}_create(const char *weight_path, int64_t max_batch)
{{
   try {{
      const int64_t batch = kDynamicBatch ? max_batch : kFixedBatch;
      if (kDynamicBatch && max_batch < 1) {{
         Fail(J2S_INVALID_ARGUMENT, "{name}_create: max_batch is " + std::to_string(max_batch) +
                                        ", a dynamic-batch model needs at least 1");
         return nullptr;
      }}
      if (!kDynamicBatch && max_batch != 0 && max_batch != kFixedBatch) {{
         Fail(J2S_INVALID_ARGUMENT, "{name}_create: max_batch is " + std::to_string(max_batch) +
                                        ", the model runs the fixed batch " + std::to_string(kFixedBatch) +
                                        " (pass 0 or " + std::to_string(kFixedBatch) + ")");
         return nullptr;
      }}
      if (!weight_path && kWeightFile[0] != '\\0') {{
         Fail(J2S_INVALID_ARGUMENT, std::string("{name}_create: weight_path is NULL; give the path of ") + kWeightFile);
         return nullptr;
      }}
      const std::string path = weight_path ? weight_path : "";
      try {{
         return new {name}_session{{SOFIE_{name}::Session({session_args}), batch}};
      }} catch (std::exception const &e) {{
         Fail(J2S_INFERENCE_FAILED, "{name}_create: cannot create a session from the weight file '" + path +
                                        "': " + e.what());
      }}
   }} catch (...) {{
      Fail(J2S_INFERENCE_FAILED, "{name}_create: unknown C++ exception");
   }}
   return nullptr;
}}

int {name}_infer({name}_session *session, int64_t batch, const void *const *inputs, void *const *outputs)
{{
   try {{
      if (!session || !inputs || !outputs)
         return Fail(J2S_INVALID_ARGUMENT, "{name}_infer: session, inputs and outputs must not be NULL");
      for (std::size_t i = 0; i < kInputs.size(); ++i)
         if (!inputs[i])
            return Fail(J2S_INVALID_ARGUMENT, std::string("{name}_infer: input ") + kInputs[i].name + " is NULL");
      for (std::size_t i = 0; i < kOutputs.size(); ++i)
         if (!outputs[i])
            return Fail(J2S_INVALID_ARGUMENT, std::string("{name}_infer: output ") + kOutputs[i].name + " is NULL");
      if (kDynamicBatch && (batch < 1 || batch > session->max_batch))
         return Fail(J2S_INVALID_ARGUMENT, "{name}_infer: batch " + std::to_string(batch) +
                                               " is out of range: this session runs 1 to " +
                                               std::to_string(session->max_batch));
      if (!kDynamicBatch && batch != kFixedBatch)
         return Fail(J2S_INVALID_ARGUMENT, "{name}_infer: batch " + std::to_string(batch) +
                                               ", the model runs the fixed batch " + std::to_string(kFixedBatch));
      CopyOutputs(session->session.infer({infer_args}), batch, outputs);
      return J2S_OK;
   }} catch (std::exception const &e) {{
      return Fail(J2S_INFERENCE_FAILED, std::string("{name}_infer: ") + e.what());
   }} catch (...) {{
      return Fail(J2S_INFERENCE_FAILED, "{name}_infer: unknown C++ exception");
   }}
}}

void {name}_destroy({name}_session *session)
{{
   delete session; // the Session's destructor only frees memory: it does not throw
}}

const char *{name}_last_error(void)
{{
   return last_error.c_str();
}}

int64_t {name}_max_batch(const {name}_session *session)
{{
   return session ? session->max_batch : 0;
}}

int {name}_dynamic_batch(void) {{ return kDynamicBatch; }}
int {name}_has_batch(void) {{ return kHasBatch; }}
const char *{name}_default_weight_file(void) {{ return kWeightFile; }}
int {name}_num_inputs(void) {{ return static_cast<int>(kInputs.size()); }}
int {name}_num_outputs(void) {{ return static_cast<int>(kOutputs.size()); }}
const char *{name}_input_name(int i) {{ return Find(kInputs, i) ? kInputs[i].name : nullptr; }}
const char *{name}_output_name(int i) {{ return Find(kOutputs, i) ? kOutputs[i].name : nullptr; }}
int {name}_input_dtype(int i) {{ return Find(kInputs, i) ? kInputs[i].dtype : -1; }}
int {name}_output_dtype(int i) {{ return Find(kOutputs, i) ? kOutputs[i].dtype : -1; }}
int {name}_input_rank(int i) {{ return Find(kInputs, i) ? kInputs[i].rank : -1; }}
int {name}_output_rank(int i) {{ return Find(kOutputs, i) ? kOutputs[i].rank : -1; }}
const int64_t *{name}_input_shape(int i) {{ return Find(kInputs, i) ? kInputs[i].shape : nullptr; }}
const int64_t *{name}_output_shape(int i) {{ return Find(kOutputs, i) ? kOutputs[i].shape : nullptr; }}

}} // extern "C"
"""


def _tensor_initializer(tensor: TensorInfo) -> str:
    dims = ", ".join(str(d) for d in tensor.shape)
    dtype = _DTYPE_MACROS[DTYPE_CODES[tensor.dtype]]
    return f'{{"{tensor.name}", {dtype}, {len(tensor.shape)}, {{{dims}}}, {tensor.size}}}'


def c_source(api: Interface) -> str:
    name = api.name
    # SOFIE's Session(std::string weights[, size_t max batch]) and infer([size_t batch,] T const *input...)
    session_args = "path" + (", static_cast<std::size_t>(max_batch)" if api.dynamic_batch else "")
    pointers = [f"static_cast<{_C_TYPES[t.dtype]} const *>(inputs[{i}])" for i, t in enumerate(api.inputs)]
    infer_args = ", ".join((["static_cast<std::size_t>(batch)"] if api.dynamic_batch else []) + pointers)
    max_rank = max([1] + [len(t.shape) for t in api.inputs + api.outputs])
    return _SOURCE.format(
        name=name, max_rank=max_rank, n_inputs=len(api.inputs), n_outputs=len(api.outputs),
        inputs=", ".join(map(_tensor_initializer, api.inputs)),
        outputs=", ".join(map(_tensor_initializer, api.outputs)),
        dynamic="true" if api.dynamic_batch else "false", has_batch="true" if api.has_batch else "false",
        fixed_batch=api.batch, weight_file=api.weight_file, session_args=session_args, infer_args=infer_args)


def version_script(api: Interface) -> str:
    """The linker's version script: the C API is global, every other symbol local (not exported)."""
    names = "".join(f"    {api.name}_{function};\n" for function in API_FUNCTIONS)
    return f"/* symbols lib{api.name}.so exports: its C API only */\n{{\n  global:\n{names}  local: *;\n}};\n"


def write_c_api(directory: Path, api: Interface) -> list[Path]:
    """Write `<name>_c.h`, `<name>_c.cpp` and `<name>_c.map` into `directory`; return their paths."""
    files = {f"{api.name}_c.h": c_header(api), f"{api.name}_c.cpp": c_source(api),
             f"{api.name}_c.map": version_script(api)}
    paths = []
    for file_name, text in files.items():
        path = Path(directory) / file_name
        path.write_text(text)
        paths.append(path)
    return paths


# -- building -------------------------------------------------------------------------------------------

def build_library(directory: str | Path, name: str, cxxflags: str | None = None, blas_static: bool = True,
                  timeout: float = 1800) -> Path:
    """Build `lib<name>.so` in a directory written with `library=True`, with its Makefile (so the build
    is the one a C user gets), the compiler of find_compiler() and, when the Makefile falls back to a
    shared BLAS, find_blas()'s flags. cxxflags: replaces the Makefile's CXXFLAGS (e.g. for sanitizers).
    blas_static=False: link the shared BLAS even where a static one exists.
    Returns the library's path; raises ToolchainError when the build fails."""
    directory = Path(directory)
    if not (directory / f"{name}_c.cpp").is_file():
        raise FileNotFoundError(f"{directory / (name + '_c.cpp')} does not exist: write the model with library=True")
    compiler = find_compiler()
    variables = [f"CXX={shlex.join(compiler.command)}", f"BLAS={shlex.join(find_blas(compiler))}"]
    if cxxflags is not None:
        variables.append(f"CXXFLAGS={cxxflags}")
    if not blas_static:
        variables.append("STATIC_BLAS=")
    command = ["make", "--no-print-directory", "-C", str(directory), *variables, f"lib{name}.so"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ToolchainError("`make` is not installed: install it, e.g. `apt-get install make`") from None
    if done.returncode != 0:
        raise ToolchainError(f"building lib{name}.so failed ({shlex.join(command)}):\n"
                             f"{(done.stdout + done.stderr)[-4000:]}")
    return directory / f"lib{name}.so"
