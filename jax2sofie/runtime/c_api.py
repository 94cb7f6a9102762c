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
from .templates import fill_template
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
    return fill_template("c_api.h.in", dict(
        name=name, guard=f"SOFIE_{name.upper()}_C_H",
        weight_example=api.weight_file or "", max_batch_example=max_batch_example, batch_example=batch_example,
        input_example=", ".join(t.name for t in api.inputs), output_example=", ".join(t.name for t in api.outputs),
        input_list=_describe(api.inputs), output_list=_describe(api.outputs),
        weight_doc=weight_doc, max_batch_doc=max_batch_doc))


# -- the implementation ---------------------------------------------------------------------------------


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
    return fill_template("c_api.cpp.in", dict(
        name=name, max_rank=max_rank, n_inputs=len(api.inputs), n_outputs=len(api.outputs),
        inputs=", ".join(map(_tensor_initializer, api.inputs)),
        outputs=", ".join(map(_tensor_initializer, api.outputs)),
        dynamic="true" if api.dynamic_batch else "false", has_batch="true" if api.has_batch else "false",
        fixed_batch=api.batch, weight_file=api.weight_file, session_args=session_args, infer_args=infer_args))


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
