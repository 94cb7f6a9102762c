"""The code jax2sofie writes builds with `-Wall -Wextra -Werror`: the header and `<name>_test.cpp` of
every catalog case give no warning with g++ and clang++, at -O2 and at -O3 -march=native; written with
a symbolic batch, with g++ at -O2 and clang++ at -O3 -march=native (each compiler and each level once:
all four would take about a third longer).

The cases of a shard are compiled together: one translation unit includes every header (each has its
own namespace SOFIE_<name>) and every `_test.cpp` inside a namespace of its own (its `main` renamed).
It is compiled to an object (`-c`), not only parsed: some warnings come from the optimiser
(-Wmaybe-uninitialized, -Warray-bounds, Clang's -Wpass-failed). It is compiled without -Werror and
must give no warning, which is what -Werror asks: with -Werror, one front-end warning would stop the
compilers before their optimisers run, and the optimisers' warnings of every other case in the unit
would go unseen.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie.header_fixes import silence_sofie_warnings
from jax2sofie.lowering.catalog import CASES
from jax2sofie.runtime import TensorSpec, compile_model

WARNINGS = ("-Wall", "-Wextra")
COMPILERS = ("g++", "clang++")
# (compiler, optimisation, whether the symbolic-batch variants are compiled too)
CONFIGURATIONS = (("g++", ("-O2",), True), ("g++", ("-O3", "-march=native"), False),
                  ("clang++", ("-O2",), False), ("clang++", ("-O3", "-march=native"), True))

# the catalog in shards (every N_SHARDS-th case name), one test each: they run in parallel under xdist
N_SHARDS = 4

# a case written with a symbolic batch is named <case>_dynbatch (its own namespace and folder)
_DYNAMIC_SUFFIX = "_dynbatch"
_WEIGHT_FORMATS = ("text", "safetensors", "embedded")  # each makes SOFIE write another Session constructor



@dataclass(frozen=True)
class Diagnostic:
    case: str  # the model whose file it is in ("" for a file outside the cases: a system header)
    flag: str  # the warning option without -W or -Werror ("unused-variable"); "" for a plain error
    line: str


# "path:line:col: warning|error: message [-Wflag]" (a fatal error may have no place); with -Werror, GCC
# writes [-Werror=flag] and Clang [-Werror,-Wflag]
_DIAGNOSTIC = re.compile(r"^(?:(?P<path>[^\s:][^:]*):\d+:\d+: )?(?:fatal )?(?:warning|error): (?P<message>.*)$",
                         re.MULTILINE)
_FLAG = re.compile(r"\[(?:-Werror,)?-W(?:error=)?(?P<flag>[\w+=-]+)\]$")

def parse_diagnostics(stderr: str) -> list[Diagnostic]:
    """The warnings and errors in a compiler's output (the cases' files are `<model>/<file>`, relative)."""
    diagnostics = []
    for match in _DIAGNOSTIC.finditer(stderr):
        path = Path(match["path"] or "")
        flag = _FLAG.search(match["message"])
        case = path.parts[-2] if not path.is_absolute() and len(path.parts) >= 2 else ""
        diagnostics.append(Diagnostic(case, flag["flag"] if flag else "", match[0]))
    return diagnostics


def write_case(directory: Path, name: str, index: int) -> list[str]:
    """Write catalog case `name` with its `_test.cpp`, and again with a symbolic batch when its inputs
    have a batch dimension; return the model names. The weight formats rotate with `index`."""
    case = CASES[name]
    variants = [(name, case.materialize(), False)]
    if case.batch:  # batch 2 for every input: the traced shapes are the example inputs'
        variants.append((name + _DYNAMIC_SUFFIX, case.materialize(batch=2), True))
    for k, (model_name, (params, inputs), dynamic) in enumerate(variants):
        model = jax2sofie.convert(case.fn, params, *inputs, name=model_name, dynamic_batch=dynamic)
        model.write(directory / model_name, weights=_WEIGHT_FORMATS[(index + k) % len(_WEIGHT_FORMATS)],
                    test=True, rtol=case.rtol, atol=case.atol, test_inputs=inputs)
    return [v[0] for v in variants]


def write_translation_unit(path: Path, models: list[str]) -> Path:
    """`path`: every model's header, then every `_test.cpp` in a namespace of its own (the models are
    folders next to it). The standard headers the tests include come first (inside a namespace they
    would declare nothing)."""
    directory = path.parent
    tests = [(directory / m / f"{m}_test.cpp").read_text() for m in models]
    standard = sorted({line for text in tests for line in text.splitlines() if re.fullmatch(r"#include <\w+>", line)})
    headers = [f'#include "{m}/{m}.hxx"\n' for m in models]
    bodies = [f'namespace case_{m} {{\n#define main run\n#include "{m}/{m}_test.cpp"\n#undef main\n}}\n'
              for m in models]
    path.write_text("\n".join(standard) + "\n" + "".join(headers) + "".join(bodies))
    return path


def require_compilers() -> None:
    missing = [c for c in COMPILERS if shutil.which(c) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: the warning checks need g++ and clang++ "
                    "(apt-get install g++ clang; ./install.sh installs both)")


def compile_unit(unit: Path, compiler: str, flags: tuple) -> tuple[subprocess.CompletedProcess, list[Diagnostic]]:
    command = [compiler, "-std=c++17", *WARNINGS, *flags, "-c", "-o", os.devnull, unit.name]
    build = subprocess.run(command, cwd=unit.parent, capture_output=True, text=True)
    return build, parse_diagnostics(build.stderr)


def _shard(index: int) -> list[str]:
    return sorted(CASES)[index::N_SHARDS]


def test_dynamic_batch_names_do_not_clash_with_cases():
    assert not any(name + _DYNAMIC_SUFFIX in CASES for name in CASES)


@pytest.mark.parametrize("index", range(N_SHARDS))
def test_catalog_compiles_without_warnings(tmp_path, index):
    require_compilers()
    models = [m for k, name in enumerate(_shard(index)) for m in write_case(tmp_path, name, k)]
    static = [m for m in models if not m.endswith(_DYNAMIC_SUFFIX)]
    units = {False: write_translation_unit(tmp_path / "static.cpp", static),
             True: write_translation_unit(tmp_path / "all.cpp", models)}
    failures = []
    for compiler, flags, with_dynamic in CONFIGURATIONS:
        build, diagnostics = compile_unit(units[with_dynamic], compiler, flags)
        if diagnostics or build.returncode != 0:
            lines = [d.line for d in diagnostics]
            failures.append(f"{compiler} {' '.join(flags)}:\n" + "\n".join(lines[:20] or [build.stderr[-3000:]]))
    assert not failures, "\n".join(failures)


# --- the changes to SOFIE's code (jax2sofie/header_fixes.py), on the text SOFIE 0.1.0 writes --------------

def test_do_infer_session_may_be_unused():
    code = ("inline void doInfer(Session const &session, float const* tensor_x, float *tensor_y );\n"
            "inline void doInfer(Session const &session, float const* tensor_x, float *tensor_y ) {\n"
            "   tensor_y[0] = tensor_x[0];\n}\n")
    assert silence_sofie_warnings(code) == code.replace("(Session const &session,",
                                                        "([[maybe_unused]] Session const &session,")


def test_do_infer_parameters_it_does_not_read_may_be_unused():
    """A model whose output is a constant never reads its input (nor, with a dynamic batch, bs)."""
    code = ("inline void doInfer(Session const &session, size_t bs,float const* tensor_x, float *tensor_y ) {\n"
            "   tensor_y[0] = 1.0f;\n}\n")
    assert silence_sofie_warnings(code) == (
        "inline void doInfer([[maybe_unused]] Session const &session, [[maybe_unused]] size_t bs, "
        "[[maybe_unused]] float const* tensor_x, float *tensor_y) {\n   tensor_y[0] = 1.0f;\n}\n")


def test_memory_pool_counter_is_dropped_only_when_unused():
    pool = "   fDynamicMemoryPool = std::vector<char>(memory_result.total_bytes);\n"
    unused = pool + "   int idx = 0;\n}\n"
    used = pool + ("   int idx = 0;\n"
                   "   tensor_h = reinterpret_cast<float *>(fDynamicMemoryPool.data() + memory_result.offsets[idx++]);"
                   "\n}\n")
    assert silence_sofie_warnings(unused) == pool + "}\n"
    assert silence_sofie_warnings(used) == used


def test_reduced_length_is_dropped_only_when_unused():
    sum_ = "   size_t reducedLength_op_0 = (bs * 15) / (bs * 3);\n   std::fill(tensor_y, tensor_y + bs * 3, 0);\n"
    mean = ("   size_t reducedLength_op_1 = (bs * 15) / (bs * 3);\n"
            "      tensor_z[i] /= static_cast<float>(reducedLength_op_1);\n")
    assert silence_sofie_warnings(sum_ + mean) == sum_.split("\n", 1)[1] + mean


def test_element_loops_count_with_size_t_except_split():
    cast = "   for (int id = 0; id < bs * 6 ; id++){\n"
    split = "   for (int id = 0; id < static_cast<int>(bs * 6) ; id++){\n"
    assert silence_sofie_warnings(cast + split) == cast.replace("int id", "size_t id") + split


# --- the classification above, on the diagnostics GCC 12 and Clang 14 write -------------------------

_GCC = """\
conv1d_nwc/conv1d_nwc.hxx:171:53: error: typedef ‘j2s_vf16’ locally defined but not used \
[-Werror=unused-local-typedefs]
add/add.hxx:107:36: warning: unused parameter ‘session’ [-Wunused-parameter]
/usr/include/c++/12/bits/stl_algobase.h:431:30: error: 'void* __builtin_memcpy(void*, const void*, long unsigned int)' \
forming offset [12, 15] is out of the bounds [0, 12] [-Werror=array-bounds]
"""
_CLANG = """\
./matmul_weight/matmul_weight.hxx:231:34: error: AVX vector argument of type '__attribute__((__vector_size__(8 * \
sizeof(float)))) float' (vector of 8 'float' values) without 'avx' enabled changes the ABI [-Werror,-Wpsabi]
./erf_erfc/erf_erfc_test.cpp:67:5: error: loop not vectorized: the optimizer was unable to perform the requested \
transformation [-Werror,-Wpass-failed=transform-warning]
./sub_dynbatch/sub_dynbatch.hxx:81:12: warning: unused variable 'idx' [-Wunused-variable]
all.cpp:3:10: fatal error: 'missing.hxx' file not found
fatal error: too many errors emitted, stopping now [-ferror-limit=]
"""


def test_diagnostics_are_read_with_their_case_and_flag():
    assert [(d.case, d.flag) for d in parse_diagnostics(_GCC + _CLANG)] == [
        ("conv1d_nwc", "unused-local-typedefs"), ("add", "unused-parameter"), ("", "array-bounds"),
        ("matmul_weight", "psabi"), ("erf_erfc", "pass-failed=transform-warning"),
        ("sub_dynbatch", "unused-variable"), ("", ""), ("", "")]


# --- check(): the harness around the header builds with both compilers, without warnings -------------

@pytest.mark.parametrize("compiler", COMPILERS)
def test_check_harness_compiles_without_warnings(tmp_path, monkeypatch, compiler):
    require_compilers()
    monkeypatch.setenv("CXX", compiler)

    def fn(p, x):  # a symbolic batch and outputs of two types: the harness's shape and tuple paths
        return x + p["b"], jnp.argmax(x, axis=-1)

    params = {"b": np.linspace(-1, 1, 5, dtype=np.float32)}
    x = np.linspace(-2, 2, 20, dtype=np.float32).reshape(4, 5)
    model = jax2sofie.convert(fn, params, x, name="harness", dynamic_batch=True)
    paths = model.write(tmp_path)
    header = next(p for p in paths if p.suffix == ".hxx")
    weights = next(p for p in paths if p.suffix == ".dat")
    specs = [[TensorSpec(v.name, v.dtype, v.shape) for v in values] for values in (model.graph.inputs,
                                                                                   model.graph.outputs)]
    compiled = compile_model(header, weights, model.name, *specs, extra_flags=(*WARNINGS, "-Werror"),
                             cache_dir=tmp_path / "cache")
    assert compiled.check(model.traced.reference(x), x).passed
