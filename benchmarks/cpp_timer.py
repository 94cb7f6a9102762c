"""Time a generated SOFIE header's `Session::infer` in a C++ loop (no Python in the timed path).

One small program per (model, batch, build flags) that includes our header and the one SOFIE makes
from ONNX (their namespaces differ): it loads both Sessions, runs `infer` once each to write the outputs
(checked against JAX by the caller), calibrates for each a block of k calls lasting at least
`min_block_us`, then times `repeats` blocks of each, alternating between the models so that a
busy machine slows them alike (each block after one untimed call, so that neither starts on caches
the other filled), and prints the median and the minimum time per call. A time budget (run.py's
--cell-budget) cuts the blocks of slow models to fit, at least 3, and drops the untimed call before
a call of over 50 ms.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# the builds users make of a generated header (run.py's --builds) and their flags: jax2sofie.runtime.build
from jax2sofie.runtime.build import BUILDS, build_flags  # noqa: F401
from jax2sofie.runtime.toolchain import find_blas, find_compiler

BUILD_TITLES = {
    "O2": "the default build (the Makefile next to a standalone test)",
    "v3": "a build for a grid's baseline CPU",
    "native": "a build for the machine it runs on",
}


def compile_command(build: str) -> str:
    """The compile command of the timing program at `build`, as a user would type it."""
    compiler, blas = find_compiler(), find_blas()
    return " ".join(list(compiler.command) + build_flags(build) + ["timer.cpp", "-o", "timer"] + list(blas))


@dataclass(frozen=True)
class Timed:
    """One header to time: its weights file, and macros defined around its #include only (so a
    define meant for our header, such as J2S_MAX_ISA, never reaches SOFIE's): "NAME=VALUE" or
    "NAME" (defined as 1, as with -DNAME)."""
    header: Path
    weights: Path
    defines: tuple = ()

_MAIN = r"""
@INCLUDES@
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <vector>

template <class V> static const std::vector<float> &first_output(const V &y) { return y; }
template <class V> static const std::vector<float> &first_output(const std::vector<std::vector<V>> &y) { return y[0]; }

// one model under test: `call` runs infer once, on the next of the input sets in turn; `write` stores
// the first output of set 0
struct Subject {
   std::function<float()> call;
   std::function<void(const char *)> write;
};

// `infer(session, r)` calls session.infer on input set r of the program's `sets`: each call takes the
// next set, so that branches and caches see changing data as they would on a stream of events (with one
// input repeated, a top-k or sort would run on a branch predictor trained on that very input)
template <class S, class F> static Subject make_subject(const char *weights, long sets, F infer)
{
   auto session = std::make_shared<S>(weights);
   auto next = std::make_shared<long>(0);
   return {[session, infer, next, sets] {
              const long r = *next;
              *next = (r + 1) % sets;
              return first_output(infer(*session, r))[0];
           },
           [session, infer](const char *path) {
              const auto result = infer(*session, 0);
              const std::vector<float> y = first_output(result);
              std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char *>(y.data()), y.size() * sizeof(float));
           }};
}

template <class T> static std::vector<T> read_input(const char *path, long n)
{
   std::vector<T> x(n);
   std::ifstream(path, std::ios::binary).read(reinterpret_cast<char *>(x.data()), n * sizeof(T));
   return x;
}

int main(int argc, char **argv)
{
   // argv: min_block_us repeats budget_s sets, per input (their element types are compiled in):
   // input.bin (its `sets` input sets one after the other) n_values (of one set), then per model:
   // weights output.bin
   const double min_block = std::atof(argv[1]) * 1e3;
   int repeats = std::atoi(argv[2]);
   const double budget = std::atof(argv[3]) * 1e9;  // ns for all repeats together; 0: no limit
   const long sets = std::atol(argv[4]);
@INPUTS@
   std::vector<Subject> subjects;
@SUBJECTS@
   for (std::size_t i = 0; i < subjects.size(); i++)
      subjects[i].write(argv[@FIRST_MODEL_ARG@ + 1 + 2 * i]);
   using clock = std::chrono::steady_clock;
   volatile float sink = 0;
   // each block starts with one untimed call: the other model's block ran just before and evicted
   // this one's tensors from the caches (a ResNet block at batch 64 moves 4 MB tensors), which a
   // program calling one model in a loop does not pay
   auto block = [&](Subject &s, long k, bool warm = true) {
      if (warm)
         sink = sink + s.call();
      auto t0 = clock::now();
      for (long i = 0; i < k; i++)
         sink = sink + s.call();
      return std::chrono::duration<double, std::nano>(clock::now() - t0).count();
   };
   std::vector<long> ks;
   std::vector<bool> warms;
   double repeat_ns = 0;  // one repeat: every model's block and the untimed call before it
   for (auto &s : subjects) {
      long k = 1;
      double ns;
      while ((ns = block(s, k)) < min_block)
         k *= 2;
      ks.push_back(k);
      // under a budget, a call of over 50 ms goes without the untimed one: refilling the caches
      // costs it well under 1%, and the untimed call would double a slow model's time
      const bool warm = !(budget > 0 && ns / k > 50e6);
      warms.push_back(warm);
      repeat_ns += warm ? ns * (k + 1) / k : ns;
   }
   // a budget cuts the repeats of slow models (never below 3, so that the median means something)
   if (budget > 0 && repeat_ns * repeats > budget)
      repeats = std::max(3, std::min(repeats, static_cast<int>(budget / repeat_ns)));
   // blocks of the models alternate, so that a busy machine slows them alike
   std::vector<std::vector<double>> per_call(subjects.size());
   for (int r = 0; r < repeats; r++)
      for (std::size_t i = 0; i < subjects.size(); i++)
         per_call[i].push_back(block(subjects[i], ks[i], warms[i]) / ks[i]);
   for (auto &times : per_call) {
      std::sort(times.begin(), times.end());
      std::printf("%.1f %.1f %d\n", times[times.size() / 2], times[0], repeats);
   }
   return 0;
}
"""


def namespace_of(header: Path) -> str:
    """The model's namespace: SOFIE_<the header's stem> where there is one (a model with a while loop
    also holds its sub-models' SOFIE_<name>_while_cond/_body namespaces, before its own), else the
    only one."""
    names = re.findall(r"\bnamespace\s+SOFIE_(\w+)\s*\{", header.read_text())
    if header.stem in names:
        return header.stem
    if len(set(names)) != 1:
        raise RuntimeError(f"{header}: no SOFIE_{header.stem} namespace, and not one SOFIE_<name> namespace "
                           f"but {sorted(set(names)) or 'none'}")
    return names[0]


_ELEMENT_BYTES = {"float": 4, "char": 1, "int64_t": 8, "int32_t": 4, "uint8_t": 1, "bool": 1, "double": 8,
                  "int": 4}


def session_bytes(header: Path) -> tuple[int, int]:
    """(weight bytes, intermediate bytes) of a generated Session, read from its member declarations:
    `std::vector<T> fTensor_X = std::vector<T>(N)` (weights and non-pooled tensors) and SOFIE's
    `fIntermediateMemoryPool`."""
    text = header.read_text()
    weights = intermediates = 0
    for elem, name, count in re.findall(r"std::vector<\s*(\w+)\s*>\s+(f\w+)\s*=\s*std::vector<\s*\w+\s*>\((\d+)\)", text):
        size = _ELEMENT_BYTES.get(elem, 4) * int(count)
        if name == "fIntermediateMemoryPool" or f"ReadTensorFromStream(f, tensor_{name[len('fTensor_'):]}," not in text:
            intermediates += size
        else:
            weights += size
    return weights, intermediates


def _includes(models: list[Timed]) -> str:
    lines = []
    for m in models:
        names = [d.split("=", 1)[0] for d in m.defines]
        lines += [f"#define {d.replace('=', ' ', 1) if '=' in d else d + ' 1'}" for d in m.defines]
        lines.append(f'#include "{m.header.resolve()}"')
        lines += [f"#undef {name}" for name in names]
    return "\n".join(lines)


# the C++ element type of each input dtype the timing program can feed
_CPP_TYPES = {"float32": "float", "int32": "int32_t", "int64": "int64_t", "float64": "double"}


def _cpp_type(dtype) -> str:
    name = np.dtype(dtype).name
    if name not in _CPP_TYPES:
        raise ValueError(f"the timing program cannot feed a {name} input (it feeds {', '.join(_CPP_TYPES)})")
    return _CPP_TYPES[name]


def build_timer(models: list[Timed], build_dir: Path, flags: list[str], dtypes: tuple = ("float32",)
                ) -> tuple[Path, float]:
    """Compile the timing program for `models`, whose `infer` takes inputs of `dtypes` in this order,
    with `flags`; return it and the seconds its compile took. Cached by content (program, headers,
    flags, compiler, BLAS): a model is compiled once per flag set, and with a kept --work directory
    once across runs (the compile time is kept beside it)."""
    compiler, blas = find_compiler(), find_blas()
    inputs = "\n".join(f"   const long n{i} = std::atol(argv[{6 + 2 * i}]);\n"
                       f"   auto x{i} = read_input<{_cpp_type(d)}>(argv[{5 + 2 * i}], n{i} * sets);"
                       for i, d in enumerate(dtypes))
    pointers = ", ".join(f"x{i}.data() + r * n{i}" for i in range(len(dtypes)))
    first_model_arg = 5 + 2 * len(dtypes)
    subjects = "\n".join(
        f"   subjects.push_back(make_subject<SOFIE_{namespace_of(m.header)}::Session>(argv[{first_model_arg + 2 * i}], "
        f"sets, [&](auto &s, long r) {{ return s.infer({pointers}); }}));"
        for i, m in enumerate(models))
    program = (_MAIN.replace("@INCLUDES@", _includes(models)).replace("@INPUTS@", inputs)
               .replace("@SUBJECTS@", subjects).replace("@FIRST_MODEL_ARG@", str(first_model_arg)))
    texts = [program] + [m.header.read_text() for m in models] + flags + [compiler.identity] + list(blas)
    key = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    binary = build_dir / f"timer_{key}"
    seconds_file = binary.with_suffix(".seconds")
    if binary.exists() and seconds_file.exists():
        return binary, float(seconds_file.read_text())
    source = build_dir / f"timer_{key}.cpp"
    source.write_text(program)
    cmd = list(compiler.command) + flags + [str(source), "-o", str(binary)] + list(blas)
    t0 = time.perf_counter()
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t0
    if result.returncode != 0:
        first = next((line for line in result.stdout.splitlines() if "error" in line), result.stdout[:200])
        raise RuntimeError(f"generated code does not compile: {first.strip()}")
    seconds_file.write_text(f"{seconds:.3f}")
    return binary, seconds


def time_headers(models: list[Timed], input_sets: list[list[np.ndarray]], build_dir: Path, flags: list[str],
                 min_block_us: float, repeats: int, out_size: int, budget_s: float = 0.0
                 ) -> list[tuple[float, float, np.ndarray, int]]:
    """Per model: median and minimum seconds per `infer` call, timed in alternating blocks in one
    process built with `flags`, the output of one call on the first input set (flat float32) and the
    number of blocks timed: `repeats`, or fewer (at least 3) where `repeats` of them would take longer
    than `budget_s` seconds (0: no limit). `input_sets`: one or more sets of inputs (each in the order
    `infer` takes them; float32, int32, ..., the same shapes in every set), fed in turn, one per call."""
    xs = input_sets[0]
    if any([(x.shape, x.dtype) for x in other] != [(x.shape, x.dtype) for x in xs] for other in input_sets):
        raise ValueError("every input set must have the shapes and dtypes of the first")
    binary, _ = build_timer(models, build_dir, flags, tuple(np.dtype(x.dtype).name for x in xs))
    stem = build_dir / binary.name
    args = [str(binary), str(min_block_us), str(repeats), str(budget_s), str(len(input_sets))]
    for i, x in enumerate(xs):
        x_path = stem.with_suffix(f".in{i}")
        np.concatenate([np.ascontiguousarray(one[i]).ravel() for one in input_sets]).tofile(x_path)
        args += [str(x_path), str(x.size)]
    outs = [stem.with_suffix(f".out{i}") for i in range(len(models))]
    for m, out in zip(models, outs):
        args += [str(m.weights), str(out)]
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    if result.returncode == -4:  # SIGILL
        raise RuntimeError("illegal instruction: this CPU lacks instructions the -march of this build allows")
    if result.returncode != 0:
        raise RuntimeError(f"timing program failed (rc {result.returncode}): {result.stdout.strip()[:200]}")
    lines = result.stdout.split("\n")
    measured = []
    for line, out in zip(lines, outs):
        median_ns, min_ns, blocks = line.split()
        y = np.fromfile(out, np.float32)
        if y.size != out_size:
            raise RuntimeError(f"output has {y.size} values, expected {out_size}")
        measured.append((float(median_ns) * 1e-9, float(min_ns) * 1e-9, y, int(blocks)))
    return measured
