"""The generated code under AddressSanitizer and UndefinedBehaviorSanitizer: the standalone reference
check of a subset of catalog cases and models is compiled with -fsanitize=address,undefined and must
run clean (a sanitizer report makes the process fail)."""
from __future__ import annotations

import os
import subprocess

import pytest

import jax2sofie
from jax2sofie.lowering.catalog import CASES
from jax2sofie.runtime import find_blas, find_compiler

SUBSET = ["matmul_weight", "batched_matmul", "attention_scores", "mul_broadcast_row", "reduce_sum_all_to_scalar",
          "mean_keepdims", "transpose", "broadcast_in_dim", "select_n_mask", "comparison_output_bool",
          "convert_int_to_float", "placement_annotations_outputs_alias_input"]


@pytest.mark.parametrize("name", SUBSET)
def test_generated_code_is_sanitizer_clean(name, tmp_path):
    case = CASES[name]
    params, inputs = case.materialize()
    model = jax2sofie.convert(case.fn, params, *inputs, name=name)
    model.write(tmp_path, test=True)
    compiler = find_compiler()
    binary = tmp_path / "check"
    build = subprocess.run([*compiler.command, "-std=c++17", "-O1", "-g", "-fno-omit-frame-pointer",
                            "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-o", str(binary),
                            str(tmp_path / f"{name}_test.cpp"), *find_blas(compiler)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0", UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(binary)], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert f"{name}: OK" in run.stdout
