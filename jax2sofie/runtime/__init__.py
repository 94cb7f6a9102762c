"""Runtime checker: compile SOFIE-generated C++ code, run it from Python, compare with references.

One module per concern: toolchain (find the compiler and BLAS), build (flags and the compile command),
harness (the extern "C" wrapper of a Session; its C++ is templates/harness.cpp.in), loading (ctypes,
CompiledModel), compare (numbers against references), cache (where builds are kept), check
(compile_model, which puts them together).
"""

from .toolchain import ToolchainError, find_blas, find_compiler
from .harness import TensorSpec
from .build import CompileError
from .cache import default_cache_dir
from .compare import CheckReport, OutputDetail, compare
from .loading import CompiledModel, InferenceError
from .check import compile_model

__all__ = [
    "CheckReport",
    "CompiledModel",
    "CompileError",
    "InferenceError",
    "OutputDetail",
    "TensorSpec",
    "ToolchainError",
    "compare",
    "compile_model",
    "default_cache_dir",
    "find_blas",
    "find_compiler",
]
