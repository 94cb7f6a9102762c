"""Time a generated SOFIE header's `Session::infer` in a C++ loop (no Python in the timed path).

One small program per (model, batch) that includes our header and the one SOFIE makes from ONNX
(their namespaces differ): it loads both Sessions, runs `infer` once each to write the outputs
(checked against JAX by the caller), calibrates for each a block of k calls lasting at least
`min_block_us`, then times `repeats` blocks of each, alternating between the models so that a
busy machine slows them alike (each block after one untimed call, so that neither starts on caches
the other filled), and prints the median and the minimum time per call.
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

// one model under test: `call` runs infer once, `write` stores its first output
struct Subject {
   std::function<float()> call;
   std::function<void(const char *)> write;
};

template <class S> static Subject make_subject(const char *weights, const std::vector<float> &x)
{
   auto session = std::make_shared<S>(weights);
   return {[session, &x] { return first_output(session->infer(x.data()))[0]; },
           [session, &x](const char *path) {
              const auto result = session->infer(x.data());
              const std::vector<float> y = first_output(result);
              std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char *>(y.data()), y.size() * sizeof(float));
           }};
}

int main(int argc, char **argv)
{
   // argv: input.bin n_inputs min_block_us repeats, then per model: weights output.bin
   const long n = std::atol(argv[1]);
   std::vector<float> x(n);
   std::ifstream(argv[2], std::ios::binary).read(reinterpret_cast<char *>(x.data()), n * sizeof(float));
   const double min_block = std::atof(argv[3]) * 1e3;
   const int repeats = std::atoi(argv[4]);
   std::vector<Subject> subjects;
@SUBJECTS@
   for (std::size_t i = 0; i < subjects.size(); i++)
      subjects[i].write(argv[6 + 2 * i]);
   using clock = std::chrono::steady_clock;
   volatile float sink = 0;
   // each block starts with one untimed call: the other model's block ran just before and evicted
   // this one's tensors from the caches (a ResNet block at batch 64 moves 4 MB tensors), which a
   // program calling one model in a loop does not pay
   auto block = [&](Subject &s, long k) {
      sink = sink + s.call();
      auto t0 = clock::now();
      for (long i = 0; i < k; i++)
         sink = sink + s.call();
      return std::chrono::duration<double, std::nano>(clock::now() - t0).count();
   };
   std::vector<long> ks;
   for (auto &s : subjects) {
      long k = 1;
      while (block(s, k) < min_block)
         k *= 2;
      ks.push_back(k);
   }
   // blocks of the models alternate, so that a busy machine slows them alike
   std::vector<std::vector<double>> per_call(subjects.size());
   for (int r = 0; r < repeats; r++)
      for (std::size_t i = 0; i < subjects.size(); i++)
         per_call[i].push_back(block(subjects[i], ks[i]) / ks[i]);
   for (auto &times : per_call) {
      std::sort(times.begin(), times.end());
      std::printf("%.1f %.1f\n", times[times.size() / 2], times[0]);
   }
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


def build_timer(headers: list[Path], build_dir: Path) -> Path:
    """Compile the timing program for `headers` (cached by content hash of headers + flags)."""
    compiler, blas = find_compiler(), find_blas()
    texts = [h.read_text() for h in headers]
    key = hashlib.sha256(("\0".join(texts) + " ".join(CXX_FLAGS) + " ".join(blas)).encode()).hexdigest()[:16]
    binary = build_dir / f"timer_{key}"
    if binary.exists():
        return binary
    source = build_dir / f"timer_{key}.cpp"
    includes = "\n".join(f'#include "{h.resolve()}"' for h in headers)
    subjects = "\n".join(
        f"   subjects.push_back(make_subject<SOFIE_{namespace_of(h)}::Session>(argv[{5 + 2 * i}], x));"
        for i, h in enumerate(headers))
    source.write_text(_MAIN.replace("@INCLUDES@", includes).replace("@SUBJECTS@", subjects))
    cmd = list(compiler.command) + CXX_FLAGS + [str(source), "-o", str(binary)] + list(blas)
    result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        first = next((line for line in result.stdout.splitlines() if "error" in line), result.stdout[:200])
        raise RuntimeError(f"generated code does not compile: {first.strip()}")
    return binary


def time_headers(models: list[tuple[Path, Path]], x: np.ndarray, build_dir: Path, min_block_us: float,
                 repeats: int, out_size: int) -> list[tuple[float, float, np.ndarray]]:
    """Per (header, weights): median and minimum seconds per `infer` call, timed in alternating
    blocks in one process, and the output of one call (flat float32)."""
    binary = build_timer([h for h, _ in models], build_dir)
    stem = build_dir / binary.name
    x_path = stem.with_suffix(".in")
    np.ascontiguousarray(x, np.float32).tofile(x_path)
    args = [str(binary), str(x.size), str(x_path), str(min_block_us), str(repeats)]
    outs = [stem.with_suffix(f".out{i}") for i in range(len(models))]
    for (_, weights), out in zip(models, outs):
        args += [str(weights), str(out)]
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"timing program failed (rc {result.returncode}): {result.stdout.strip()[:200]}")
    lines = result.stdout.split("\n")
    measured = []
    for line, out in zip(lines, outs):
        median_ns, min_ns = (float(v) for v in line.split())
        y = np.fromfile(out, np.float32)
        if y.size != out_size:
            raise RuntimeError(f"output has {y.size} values, expected {out_size}")
        measured.append((median_ns * 1e-9, min_ns * 1e-9, y))
    return measured
