"""Time a generated SOFIE header's `Session::infer` in a C++ loop (no Python in the timed path).

One small main() per header: it loads the weights, runs `infer` once to write the output (checked
against JAX by the caller), then calibrates a block of k calls lasting at least `min_block_us` and
prints the median over `repeats` blocks of the time per call in nanoseconds. Both our header and
the one SOFIE makes from ONNX go through the same program, flags and BLAS.
"""
from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path

import numpy as np

from jax2sofie.runtime.toolchain import find_blas, find_compiler

# One set of flags for every generated header. -O3 -march=native: the code is meant to be built for
# the machine it runs on (trigger farms do); SOFIE's own loops only vectorise with it.
CXX_FLAGS = ["-O3", "-march=native", "-std=c++17", "-DNDEBUG"]

_MAIN = r"""
#include "@HEADER@"
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

template <class V> static const std::vector<float> &first_output(const V &y) { return y; }
template <class V> static const std::vector<float> &first_output(const std::vector<std::vector<V>> &y) { return y[0]; }

int main(int argc, char **argv)
{
   // argv: weights input.bin n_inputs output.bin min_block_us repeats
   const long n = std::atol(argv[3]);
   std::vector<float> x(n);
   std::ifstream(argv[2], std::ios::binary).read(reinterpret_cast<char *>(x.data()), n * sizeof(float));
   SOFIE_@NS@::Session session(argv[1]);
   const auto result = session.infer(x.data());
   const std::vector<float> y = first_output(result);
   std::ofstream(argv[4], std::ios::binary).write(reinterpret_cast<const char *>(y.data()), y.size() * sizeof(float));
   const double min_block = std::atof(argv[5]) * 1e3;
   const int repeats = std::atoi(argv[6]);
   using clock = std::chrono::steady_clock;
   volatile float sink = 0;
   auto block = [&](long k) {
      auto t0 = clock::now();
      for (long i = 0; i < k; i++)
         sink = sink + session.infer(x.data())[0];
      return std::chrono::duration<double, std::nano>(clock::now() - t0).count();
   };
   long k = 1;
   while (block(k) < min_block)
      k *= 2;
   std::vector<double> per_call;
   for (int r = 0; r < repeats; r++)
      per_call.push_back(block(k) / k);
   std::sort(per_call.begin(), per_call.end());
   std::printf("%.1f %ld\n", per_call[per_call.size() / 2], k);
   return 0;
}
"""


def namespace_of(header: Path) -> str:
    match = re.search(r"\bnamespace\s+SOFIE_(\w+)\s*\{", header.read_text())
    if not match:
        raise RuntimeError(f"{header}: no SOFIE_<name> namespace")
    return match.group(1)


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


def build_timer(header: Path, build_dir: Path) -> Path:
    """Compile the timing program for `header` (cached by content hash of header + flags)."""
    compiler, blas = find_compiler(), find_blas()
    text = header.read_text()
    key = hashlib.sha256((text + " ".join(CXX_FLAGS) + " ".join(blas)).encode()).hexdigest()[:16]
    binary = build_dir / f"timer_{key}"
    if binary.exists():
        return binary
    source = build_dir / f"timer_{key}.cpp"
    source.write_text(_MAIN.replace("@HEADER@", str(header.resolve())).replace("@NS@", namespace_of(header)))
    cmd = list(compiler.command) + CXX_FLAGS + [str(source), "-o", str(binary)] + list(blas)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        first = next((line for line in result.stdout.splitlines() if "error" in line), result.stdout[:200])
        raise RuntimeError(f"generated code does not compile: {first.strip()}")
    return binary


def time_header(header: Path, weights: Path, x: np.ndarray, build_dir: Path, min_block_us: float,
                repeats: int, out_size: int) -> tuple[float, np.ndarray]:
    """Median seconds per `infer` call, and the output of the first call (flat float32)."""
    binary = build_timer(header, build_dir)
    stem = build_dir / binary.name
    x_path, y_path = stem.with_suffix(".in"), stem.with_suffix(".out")
    np.ascontiguousarray(x, np.float32).tofile(x_path)
    result = subprocess.run([str(binary), str(weights), str(x_path), str(x.size), str(y_path), str(min_block_us),
                             str(repeats)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"timing program failed (rc {result.returncode}): {result.stdout.strip()[:200]}")
    ns = float(result.stdout.split()[0])
    y = np.fromfile(y_path, np.float32)
    if y.size != out_size:
        raise RuntimeError(f"output has {y.size} values, expected {out_size}")
    return ns * 1e-9, y
