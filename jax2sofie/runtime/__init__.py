"""Runtime checker: compile SOFIE-generated C++ code, run it from Python, compare with references."""

from .toolchain import ToolchainError, find_blas, find_compiler
from .harness import TensorSpec
from .check import (
    CheckReport,
    CompiledModel,
    CompileError,
    InferenceError,
    OutputDetail,
    compare,
    compile_model,
    default_cache_dir,
)

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
