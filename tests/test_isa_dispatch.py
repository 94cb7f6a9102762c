"""Vector kernels chosen at run time (csrc/owned/codegen.hpp: KernelFunctions, KernelCall).

A header built with plain `-O2` (the Makefile's default) must carry the AVX-512 and AVX2 kernels and
run the widest one the CPU has; every level, and every build users make, must give JAX's numbers.
J2S_MAX_ISA caps the level, so each level is checked on any x86 machine that has it.
"""
from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
import numpy as np
import pytest

import jax2sofie
from jax2sofie.runtime.toolchain import find_blas, find_compiler

X86 = platform.machine() in ("x86_64", "AMD64", "i686")


class DenseConvNet(nn.Module):
    """Every kernel kind: J2S_ConvNHWC (padded, 12 output channels: a full vector and a partial one at
    AVX2/SSE width), J2S_ConvDepthwise (padded with ReLU6 over 12 channels, then over 6 channels, 2 + 4
    lanes, with a channel multiplier of 2), J2S_Elementwise (GELU), J2S_Dense inline rows at batch 1 and
    in panels past 4 rows, with three identical hidden layers (one shared kernel)."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(12, (3, 3), padding="SAME")(x))
        x = nn.relu6(nn.Conv(12, (3, 3), feature_group_count=12, padding="SAME")(x))
        x = nn.Conv(6, (1, 1))(x)
        x = nn.Conv(12, (3, 2), feature_group_count=6, padding="VALID")(x)
        x = x.reshape(x.shape[0], -1)
        x = nn.gelu(nn.Dense(64)(x))
        for _ in range(3):
            x = nn.relu(nn.Dense(64)(x))
        return nn.Dense(10)(x)


def _written(tmp_path: Path, batch: int) -> Path:
    x = np.random.default_rng(batch).standard_normal((batch, 6, 6, 3)).astype(np.float32)
    variables = DenseConvNet().init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(DenseConvNet().apply, variables, x, name=f"isa_b{batch}")
    model.write(tmp_path / model.name, test=True, test_inputs=[x])
    return tmp_path / model.name


def _build_and_run(directory: Path, flags: list[str]) -> None:
    name = directory.name
    binary = directory / ("test_" + re.sub(r"\W", "_", "".join(flags)))
    compiler = find_compiler()
    subprocess.run([*compiler.command, *flags, "-std=c++17", str(directory / f"{name}_test.cpp"), "-o", str(binary),
                    *find_blas(compiler)], check=True, capture_output=True, text=True)
    run = subprocess.run([str(binary)], cwd=directory, capture_output=True, text=True)
    assert run.returncode == 0, (flags, run.stdout, run.stderr)


def _build_and_run_at_every_level(directory: Path) -> None:
    """Each J2S_MAX_ISA cap at -O2, then the builds users make for a grid's baseline and for this CPU."""
    builds = [["-O2", f"-DJ2S_MAX_ISA={cap}"] for cap in (0, 1, 2)]
    if X86:
        builds += [["-O2", "-march=x86-64-v3"], ["-O3", "-march=native"]]
    for flags in builds:
        _build_and_run(directory, flags)


@pytest.mark.parametrize("batch", [1, 16])
def test_every_level_and_build_matches_jax(batch, tmp_path):
    directory = _written(tmp_path, batch)
    header = (directory / f"{directory.name}.hxx").read_text()
    assert header.count("jax2sofie J2S_ConvDepthwise") == 2
    for level in ("avx512", "avx2", "base"):
        assert re.search(rf"static void j2s_kernel_\w+_{level}\(", header), level
    _build_and_run_at_every_level(directory)


def test_identical_operators_share_one_kernel(tmp_path):
    header = (_written(tmp_path, 16) / "isa_b16.hxx").read_text()
    kernels = re.findall(r"static void (j2s_kernel_\w+)_base\(", header)
    assert len(kernels) == len(set(kernels)), kernels
    calls = re.findall(r"Session::(j2s_kernel_\w+)_base\(", header)
    assert len(calls) > len(set(calls)), "the three hidden layers should call one kernel"
    assert header.count("#define J2S_DISPATCH_PRELUDE") == 1


@pytest.mark.skipif(not X86, reason="the x86 levels: other machines have only the build's own level")
def test_a_default_build_holds_and_picks_the_wide_kernels(tmp_path):
    directory = _written(tmp_path, 16)
    name = directory.name
    compiler = find_compiler()
    probe = directory / "probe.cpp"
    # prints the level the CPU gets; its infer() is never called, but compiled into the object
    probe.write_text(f'#include "{name}.hxx"\n#include <cstdio>\nint main(int argc, char **) {{\n'
                     f'   if (argc > 99) {{ SOFIE_{name}::Session s("{name}.dat"); return s.infer(nullptr).empty(); }}\n'
                     '   std::printf("%d\\n", J2S_CPU_ISA);\n}\n')
    subprocess.run([*compiler.command, "-O2", "-std=c++17", str(probe), "-o", str(directory / "probe"),
                    *find_blas(compiler)], check=True, capture_output=True, text=True)
    level = int(subprocess.run([str(directory / "probe")], capture_output=True, text=True, check=True).stdout)
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.MULTILINE).group(1).split())
    expected = 2 if {"avx512f", "avx512vl", "avx512bw", "avx512dq"} <= flags else 1 if {"avx2", "fma"} <= flags else 0
    assert level == expected, (level, sorted(flags))
    # the object of a plain -O2 build holds AVX-512 (zmm) and AVX2 (ymm) instructions
    if shutil.which("objdump") is None:
        pytest.fail("objdump is needed (binutils, installed with g++)")
    obj = directory / "probe.o"
    subprocess.run([*compiler.command, "-O2", "-std=c++17", "-c", str(probe), "-o", str(obj)], check=True)
    disassembly = subprocess.run(["objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout
    assert "%zmm" in disassembly and "%ymm" in disassembly


class ConvTransposeNet(nn.Module):
    """J2S_ConvTransposeNHWC's two kernel forms: 12 output channels (vectors over them, a full and a partial
    one at AVX2/SSE width) and one output channel (vectors over the 12 input channels, a partial one at
    AVX-512 and AVX2 width)."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.ConvTranspose(12, (3, 3), strides=(2, 2), padding="SAME")(x))
        return nn.sigmoid(nn.ConvTranspose(1, (4, 4), strides=(2, 2), padding="SAME")(x))


@pytest.mark.parametrize("batch", [1, 5])
def test_conv_transpose_every_level_and_build_matches_jax(batch, tmp_path):
    x = np.random.default_rng(batch).standard_normal((batch, 5, 6, 3)).astype(np.float32)
    variables = ConvTransposeNet().init(jax.random.PRNGKey(0), x)
    model = jax2sofie.convert(ConvTransposeNet().apply, variables, x, name=f"isa_convt_b{batch}")
    assert model.graph.op_counts() == {"J2S_ConvTransposeNHWC": 2, "J2S_Elementwise": 1}, model.graph.op_counts()
    model.write(tmp_path / model.name, test=True, test_inputs=[x])
    directory = tmp_path / model.name
    header = (directory / f"{directory.name}.hxx").read_text()
    for level in ("avx512", "avx2", "base"):  # the two convolutions' kernels and the sigmoid's
        assert len(re.findall(rf"static void j2s_kernel_\w+_{level}\(", header)) == 3, level
    _build_and_run_at_every_level(directory)


def _attention(p, x):
    """A layer norm and a 3-head attention core: the per-head products (J2S_BatchedMatMul, the context
    written back through a folded Transpose), the norm's row reductions (J2S_Reduce's vector rows of
    36 values) and the softmax over 7 keys (J2S_Softmax: a vector of 4 and 3 values one by one)."""
    x = (x - x.mean(-1, keepdims=True)) / jnp.sqrt(x.var(-1, keepdims=True) + 1e-5)
    q = (x @ p["wq"]).reshape(x.shape[0], 7, 3, 12)
    k = (x @ p["wk"]).reshape(x.shape[0], 7, 3, 12)
    weights = jax.nn.softmax(jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(12.0), axis=-1)
    return jnp.einsum("bhqk,bkhd->bqhd", weights, q).reshape(x.shape[0], 7, 36)


@pytest.mark.parametrize("batch", [1, 5])
def test_attention_kernels_match_jax_at_every_level_and_build(batch, tmp_path):
    rng = np.random.default_rng(batch)
    params = {w: (rng.standard_normal((36, 36)) / 6).astype(np.float32) for w in ("wq", "wk")}
    x = rng.standard_normal((batch, 7, 36)).astype(np.float32)
    model = jax2sofie.convert(_attention, params, x, name=f"isa_attention_b{batch}")
    counts = model.graph.op_counts()
    assert counts.get("J2S_BatchedMatMul") == 2 and "Transpose" not in counts, counts
    assert counts.get("J2S_Softmax") == 1, counts
    _write_and_run_kernels_at_every_level(model, x, tmp_path)


def _write_and_run_kernels_at_every_level(model, x, tmp_path):
    """Write `model` with its reference check on `x`, see a kernel compiled for every level in its header,
    and build and run the check at every level and build."""
    model.write(tmp_path / model.name, test=True, test_inputs=[x])
    directory = tmp_path / model.name
    header = (directory / f"{model.name}.hxx").read_text()
    for level in ("avx512", "avx2", "base"):
        assert re.search(rf"static void j2s_kernel_\w+_{level}\(", header), level
    _build_and_run_at_every_level(directory)


def _reductions(p, x):
    """J2S_Reduce's vector kernels: an edge convolution's max over 8 neighbours of 32 channels and mean
    over points (columns), and maxima and a sum over rows of 8, 12, 32 and 36 values (whole,
    part-filled and fewer than one vector; 7 rows per example: blocks and the rows after them); the
    softmax is one J2S_Softmax, whose row kernels are J2S_Reduce's."""
    h = jnp.max(x[:, :, :8, :32], axis=2)
    rows = [jnp.max(x[:, :, 0, :n], axis=-1) for n in (8, 12, 32)] + [jnp.sum(x[:, :, 0, :36], axis=-1)]
    return jnp.mean(h, axis=1), jnp.min(x, axis=1), jax.nn.softmax(x[:, :, 1, :32], axis=-1), rows


@pytest.mark.parametrize("batch", [1, 5])
def test_reduction_kernels_match_jax_at_every_level_and_build(batch, tmp_path):
    x = np.random.default_rng(batch).standard_normal((batch, 7, 9, 36)).astype(np.float32)
    model = jax2sofie.convert(_reductions, {}, x, name=f"isa_reduce_b{batch}")
    counts = model.graph.op_counts()
    assert counts.get("J2S_Reduce") == 7 and counts.get("J2S_Softmax") == 1, counts
    _write_and_run_kernels_at_every_level(model, x, tmp_path)


def _special_values(x):
    """Ties, -0.0 next to 0.0, +-inf and NaN: lax.top_k's total order -NaN < -inf < ... < -0.0 < 0.0 <
    ... < inf < NaN, ties to the lower index."""
    v = jnp.where(x > 1.2, jnp.nan, jnp.round(x * 0.7))
    v = jnp.where(x < -1.4, -jnp.inf, v)
    v = jnp.where(jnp.abs(x - 0.5) < 0.1, jnp.inf, v)
    return jnp.where(jnp.abs(x + 0.5) < 0.1, -0.0, v)


def _top_k(p, x, i):
    """J2S_TopK's kernels: the ranking in vectors of rows of 32 (k = 8, a k-nearest-neighbour graph's:
    two blocks at AVX-512 width), of 12 and 5 (part-filled blocks) and of int32 rows of 20, rows along a
    middle axis (strided), the sorted buffer of rows of 45 floats (largest and smallest first: vectors
    of keys, then the elements after the last full vector) and of 40 int32, and the selection of
    k = 40. The smallest are of floats without ties, NaN or -0.0, whose order in JAX's approx_min_k
    differs from lax.top_k's."""
    v = _special_values(x)
    return (lax.top_k(v[:, :32], 8), lax.top_k(v[:, :12], 6), lax.top_k(-v[:, :5], 5), lax.top_k(i[:, :20], 3),
            lax.top_k(jnp.swapaxes(v[:, :12].reshape(-1, 3, 4), 1, 2), 2), lax.top_k(v, 7),
            lax.approx_min_k(x, 4), lax.top_k(i, 5), lax.top_k(v, 40))


@pytest.mark.parametrize("batch", [1, 6])
def test_top_k_kernels_match_jax_at_every_level_and_build(batch, tmp_path):
    rng = np.random.default_rng(batch)
    x = rng.standard_normal((batch * 3, 45)).astype(np.float32)
    i = rng.integers(-4, 4, (batch * 3, 40)).astype(np.int32)
    model = jax2sofie.convert(_top_k, {}, x, i, name=f"isa_top_k_b{batch}")
    assert model.graph.op_counts().get("J2S_TopK") == 9, model.graph.op_counts()
    model.write(tmp_path / model.name, test=True, test_inputs=[x, i])
    directory = tmp_path / model.name
    header = (directory / f"{model.name}.hxx").read_text()
    for level in ("avx512", "avx2", "base"):  # one kernel per J2S_TopK
        assert len(re.findall(rf"static void j2s_kernel_\w+_{level}\(", header)) >= 9, level
    _build_and_run_at_every_level(directory)


def _layer_norms(p, x):
    """J2S_LayerNorm's kernels, both variance forms: Flax's (sum and sum of squares in vectors) over
    rows of 36 (whole vectors and a part at every level), Keras' (two-pass) over rows of 7 (one vector
    of 4 and 3 values one by one) and Flax's over rows of 3 (no vector)."""
    from jax2sofie.lowering.row_fusions import keras_layer_norm
    a = nn.LayerNorm().apply({"params": {"scale": p["scale"], "bias": p["bias"]}}, x)
    b = keras_layer_norm(x[:, :, :7] * 3.0, p["scale"][:7], p["bias"][:7])
    c = nn.LayerNorm(use_scale=False).apply({"params": {"bias": p["bias"][:3]}}, x[:, :, 7:10] + 1.0)
    return a, b, c


@pytest.mark.parametrize("batch", [1, 5])
def test_layernorm_kernels_match_jax_at_every_level_and_build(batch, tmp_path):
    rng = np.random.default_rng(batch)
    params = {"scale": rng.uniform(0.5, 2.0, 36).astype(np.float32), "bias": rng.standard_normal(36).astype(np.float32)}
    x = rng.standard_normal((batch, 9, 36)).astype(np.float32)
    model = jax2sofie.convert(_layer_norms, params, x, name=f"isa_layernorm_b{batch}")
    counts = model.graph.op_counts()
    assert counts.get("J2S_LayerNorm") == 3 and "J2S_Reduce" not in counts, counts
    _write_and_run_kernels_at_every_level(model, x, tmp_path)
