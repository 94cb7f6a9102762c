"""The generated code under AddressSanitizer and UndefinedBehaviorSanitizer: reference checks compiled
into one program with -fsanitize=address,undefined must run clean (a sanitizer report makes the
process fail) and match JAX.

Every program is built with -DJ2S_SEPARATE_INTERMEDIATES (jax2sofie/header_fixes.py): each
intermediate tensor gets its own heap block of exactly its size, filled with NaN bytes, instead of an
offset in SOFIE's one memory pool, where a write past a tensor's end lands in its neighbour unseen.

- every catalog case, built for the compiler's baseline: the kernels' run-time dispatch then runs the
  widest level the CPU has (AVX-512 or AVX2), the baseline level never;
- a selection of catalog cases of every family, whole models (static batch) and dynamic-batch models
  (a Session built for batch 16, run at batch 1, 7 and 16), built for the baseline with the dispatch
  capped at AVX2 (the AVX2 kernels run) and with -march=native (the kernels compiled for the build's
  own level, the widest the machine has: AVX-512 here); with J2S_LONG_TESTS=1 also with
  J2S_NO_DISPATCH (the baseline's own SSE2 / NEON kernels). These builds are at -O0: AddressSanitizer's
  and UBSan's checks do not depend on the optimisation level, and -O1 compiles the whole models five
  times slower.
"""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from catalog_driver import N_SHARDS, DriverCase, catalog_cases, run_catalog_driver, run_driver, shard
from test_cnn_models import _resnet_block, _small_cnn
from test_models import JetTagger, LinenMLP, NnxMLP, layer_norm_mlp
from test_whole_models import EncoderBlock, NnxEncoderBlock, _deep_sets_params, _padding_mask, deep_sets

import jax2sofie

SANITIZE = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-DJ2S_SEPARATE_INTERMEDIATES"]
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")


@pytest.mark.parametrize("index", range(N_SHARDS))
def test_generated_code_of_the_catalog_is_sanitizer_clean(tmp_path, index):
    run_catalog_driver(tmp_path, shard(index), SANITIZE, ENV)


# catalog cases of every family: dense layers, convolutions (channels-last direct, im2col, transposed),
# pooling, elementwise chains, gather / scatter, control flow, sorting and scans
SELECTED_CATALOG_CASES = [
    "matmul_weight", "matmul_rank3_activation", "batched_matmul", "attention_scores",
    "conv2d_nhwc_same", "conv2d_nhwc_valid_strided", "conv2d_depthwise", "conv1d_nwc", "conv3d_ndhwc",
    "conv2d_grouped", "conv_transpose_2d",
    "pool_flax_2d_odd", "pool_max_1d_padded", "pool_sum_3d", "pool_sum_nchw_dilated",
    "gelu_tanh_and_exact", "softmax_family", "tanh_logistic", "silu_swish_mish", "clip_three_way_broadcast",
    "gather_embedding_lookup", "gather_take_fill_and_clip", "gather_windows", "scatter_add_mul_min_max",
    "scatter_segment_sum_into_zeros", "dynamic_update_slice",
    "fori_loop_static", "cond_traced", "switch_traced_index", "while_constant_counter", "scan_time_axis_batched",
    "sort_values", "cumsum_batch", "reduce_sum_middle",
]

MAX_BATCH = 16


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _dense_panels(params, x):
    """J2S_Dense's register-tiled path over weights in panels of 32 columns: 13 rows (not a multiple of
    the row tile), K = 37 (odd), N = 96 and 64, bias and relu fused."""
    h = jax.nn.relu(x @ params["w1"] + params["b1"])
    return jnp.tanh(h @ params["w2"] + params["b2"])


def _dense_panels_params():
    rng = np.random.default_rng(0)
    return {"w1": (rng.standard_normal((37, 96)) / 6).astype(np.float32), "b1": rng.standard_normal(96).astype(np.float32),
            "w2": (rng.standard_normal((96, 64)) / 10).astype(np.float32), "b2": rng.standard_normal(64).astype(np.float32)}


def _flax(module, *inputs):
    variables = module.init(jax.random.PRNGKey(0), *inputs)
    return module.apply, variables


def _nnx_mlp():
    module = NnxMLP(nnx.Rngs(0))
    module.eval()  # dropout off
    return module


def _whole_models() -> list[DriverCase]:
    """Whole models at a static batch of 5 (dense layers take the panel path from 5 rows)."""
    b = 5
    cases = []
    x16, x64 = _x((b, 16)), _x((b, 64))
    fn, variables = _flax(LinenMLP(), x16)
    cases.append(DriverCase("linen_mlp", jax2sofie.convert(fn, variables, x16, name="linen_mlp"), [x16]))
    fn, variables = _flax(JetTagger(), x64)
    cases.append(DriverCase("jet_tagger", jax2sofie.convert(fn, variables, x64, name="jet_tagger"), [x64]))
    cases.append(DriverCase("nnx_mlp", jax2sofie.convert(_nnx_mlp(), x16, name="nnx_mlp"), [x16]))
    rng = np.random.default_rng(3)
    ln_params = {
        "ln": {"scale": rng.uniform(0.5, 1.5, 32).astype(np.float32), "bias": rng.normal(size=32).astype(np.float32)},
        "dense": {"w": rng.normal(size=(32, 48)).astype(np.float32) / 6, "b": rng.normal(size=48).astype(np.float32)},
        "head": {"w": rng.normal(size=(48, 10)).astype(np.float32) / 7},
    }
    x32 = _x((b, 32))
    cases.append(DriverCase("layer_norm_mlp", jax2sofie.convert(layer_norm_mlp, ln_params, x32, name="layer_norm_mlp"),
                            [x32]))
    x13 = _x((13, 37))
    cases.append(DriverCase("dense_panels", jax2sofie.convert(_dense_panels, _dense_panels_params(), x13,
                                                              name="dense_panels"), [x13]))
    xs, key_mask = _x((b, 16, 64)), _padding_mask(b, 16)
    fn, variables = _flax(EncoderBlock(), xs, key_mask)
    cases.append(DriverCase("encoder_block", jax2sofie.convert(fn, variables, xs, key_mask, name="encoder_block"),
                            [xs, key_mask]))
    xe = _x((1, 8, 32))  # batch 1: at larger batches its causal mask is refused by emit (a constant bool Reshape)
    cases.append(DriverCase("nnx_encoder_block", jax2sofie.convert(NnxEncoderBlock(32, 4, nnx.Rngs(0)), xe,
                                                                   name="nnx_encoder_block"), [xe]))
    particles, mask = _x((b, 30, 4)), _padding_mask(b, 30)
    cases.append(DriverCase("deep_sets", jax2sofie.convert(deep_sets, _deep_sets_params(), particles, mask,
                                                           name="deep_sets"), [particles, mask]))
    fn, variables = _small_cnn()
    xc = _x((b, 28, 28, 1))
    cases.append(DriverCase("small_cnn", jax2sofie.convert(fn, variables, xc, name="small_cnn"), [xc]))
    xr = _x((2, 32, 32, 16))
    cases.append(DriverCase("resnet_block", jax2sofie.convert(_resnet_block(), xr, name="resnet_block"), [xr]))
    return cases


def _dynamic_models() -> list[DriverCase]:
    """Dynamic-batch models, each Session built for MAX_BATCH and run at batch 1, 7 and MAX_BATCH."""
    fn, variables = _flax(JetTagger(), _x((2, 64)))
    models = [  # (model, inputs at a batch)
        (jax2sofie.convert(fn, variables, _x((2, 64)), name="jet_tagger_dyn", dynamic_batch=True),
         lambda b: [_x((b, 64), b)]),
        (jax2sofie.convert(_dense_panels, _dense_panels_params(), _x((2, 37)), name="dense_panels_dyn",
                           dynamic_batch=True), lambda b: [_x((b, 37), b)]),
        (jax2sofie.convert(deep_sets, _deep_sets_params(), _x((2, 30, 4)), _padding_mask(2, 30),
                           name="deep_sets_dyn", dynamic_batch=True),
         lambda b: [_x((b, 30, 4), b), _padding_mask(b, 30, b)]),
    ]
    fn, variables = _flax(EncoderBlock(), _x((2, 16, 64)), _padding_mask(2, 16))
    models.append((jax2sofie.convert(fn, variables, _x((2, 16, 64)), _padding_mask(2, 16), name="encoder_block_dyn",
                                     dynamic_batch=True), lambda b: [_x((b, 16, 64), b), _padding_mask(b, 16, b)]))
    fn, variables = _small_cnn()
    models.append((jax2sofie.convert(fn, variables, _x((2, 28, 28, 1)), name="small_cnn_dyn", dynamic_batch=True),
                   lambda b: [_x((b, 28, 28, 1), b)]))
    models.append((jax2sofie.convert(_resnet_block(), _x((2, 8, 8, 16)), name="resnet_block_dyn",
                                     dynamic_batch=True), lambda b: [_x((b, 8, 8, 16), b)]))
    return [DriverCase(f"{model.name}_b{batch}", model, inputs(batch), max_batch=MAX_BATCH)
            for model, inputs in models for batch in (1, 7, MAX_BATCH)]


@pytest.fixture(scope="module")
def selected_cases() -> list[DriverCase]:
    return catalog_cases(SELECTED_CATALOG_CASES) + _whole_models() + _dynamic_models()


# the builds that run each kernel level this machine has: AVX2 through the run-time dispatch of a baseline
# build (capped at AVX2), the widest level compiled for the machine itself, and the baseline level alone
BUILDS = {"baseline_avx2": ["-DJ2S_MAX_ISA=1"], "native": ["-march=native"], "baseline_only": ["-DJ2S_NO_DISPATCH"]}
# J2S_LONG_TESTS=1 adds a third build (the baseline's own SSE2 kernels); not collected otherwise
BUILD_NAMES = ["baseline_avx2", "native"] + (["baseline_only"] if os.environ.get("J2S_LONG_TESTS") else [])


@pytest.mark.parametrize("build", BUILD_NAMES)
def test_selected_cases_whole_and_dynamic_models_are_sanitizer_clean(tmp_path, selected_cases, build):
    flags = ["-O0" if flag == "-O1" else flag for flag in SANITIZE] + BUILDS[build]
    output = run_driver(tmp_path, selected_cases, flags, ENV)
    assert "resnet_block_dyn: OK" in output  # the last check ran


def test_separate_intermediates_show_an_overrun_the_pool_hides(tmp_path):
    """A write one element past an intermediate tensor lands in the next tensor of SOFIE's pool, unseen;
    with -DJ2S_SEPARATE_INTERMEDIATES AddressSanitizer reports it."""
    import re
    import subprocess

    from jax2sofie.runtime import find_blas, find_compiler

    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((16, 64)).astype(np.float32), "b": rng.standard_normal(64).astype(np.float32)}
    x = _x((3, 16))
    model = jax2sofie.convert(lambda p, x: jax.nn.softmax(jnp.tanh(x @ p["w"] + p["b"])), params, x, name="overrun")
    model.write(tmp_path, test=True, test_inputs=[x])
    header = tmp_path / "overrun.hxx"
    code = header.read_text()
    pooled = re.search(r"// Allocating memory for intermediate tensor (\w+) with size (\d+) bytes\nfloat\*", code)
    assert pooled, "no intermediate tensor in the pool"
    name, size = pooled[1], int(pooled[2])
    # the bug: right after the first operator, one float written past the tensor's end
    first_op = code.index("//------ ", code.rindex("inline void doInfer("))  # in the definition, after the declaration
    header.write_text(code[:first_op] + f"tensor_{name}[{size // 4}] = 1.0f;\n   " + code[first_op:])
    compiler = find_compiler()

    def run(flags):
        exe = tmp_path / ("t" + str(len(flags)))
        build = subprocess.run([*compiler.command, "-std=c++17", *flags, "-o", str(exe), str(tmp_path / "overrun_test.cpp"),
                                *find_blas(compiler)], capture_output=True, text=True)
        assert build.returncode == 0, build.stderr[-3000:]
        return subprocess.run([str(exe)], cwd=tmp_path, capture_output=True, text=True, env=ENV)

    pool = run([f for f in SANITIZE if f != "-DJ2S_SEPARATE_INTERMEDIATES"])
    assert "AddressSanitizer" not in pool.stderr  # inside the pool: nothing to see
    separate = run(SANITIZE)
    assert separate.returncode != 0 and "heap-buffer-overflow" in separate.stderr, separate.stderr[-3000:]
    assert f"j2s_separate_{name}" in separate.stderr or "doInfer" in separate.stderr, separate.stderr[-3000:]
