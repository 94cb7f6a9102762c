"""One session per thread under ThreadSanitizer: each model's library (built by its Makefile with
-fsanitize=thread) is called by tests/c_api_client.c, also built with it, from 4 threads at once,
each with its own session of the same model, 1,000 calls each over 4 input sets; every output must
be bit-identical to a single-threaded run (which matches JAX), and ThreadSanitizer must report
nothing. The threads start cold: their sessions and first calls are the process's first, so the
kernels' one-time instruction-set detection runs concurrently too. The negative control, threads
sharing one session (what the C API forbids), must be reported as a data race: it shows the
instrumentation sees the generated code.

ThreadSanitizer maps its shadow memory at fixed addresses; on kernels with more address
randomisation (vm.mmap_rnd_bits above 28) GCC 12's runtime stops with "unexpected memory mapping". The
run is then repeated with randomisation off for the process (`setarch -R`), the usual remedy.
OpenBLAS runs with OPENBLAS_NUM_THREADS=1: each application thread does its own BLAS work, the setting
to use with one session per thread (and OpenBLAS's own thread pool is not instrumented)."""
from __future__ import annotations

import os
import platform
import re
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest

import jax2sofie
from c_api_support import (assert_matches, cnn_model, compile_client, mixed, mlp, mlp_params, random_inputs,
                           read_outputs, write_sets)
from jax2sofie.runtime.c_api import build_library

TSAN = ("-O2", "-g", "-fno-omit-frame-pointer", "-fsanitize=thread")
THREADS, CALLS, SETS = 4, 1000, 4
TSAN_EXIT = 66  # the exit status ThreadSanitizer gives a run with a report


def _model(name: str):
    """(model, max_batch for create, batch run): a dynamic-batch MLP, a fixed-batch CNN with scratch
    buffers, and a model whose SOFIE Gemm calls the library's static OpenBLAS."""
    x = np.zeros((2, 16), np.float32)
    if name == "mlp_dynamic":
        return jax2sofie.convert(mlp, mlp_params(), x, name=name, dynamic_batch=True), 4, 3
    if name == "cnn":
        return cnn_model(name), 0, 2
    w = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    return jax2sofie.convert(mixed, {"w": w}, np.zeros((2, 4, 8), np.float32), np.zeros((2, 3), np.int32),
                             name=name, dynamic_batch=True), 4, 4


def _run(command: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", TSAN_OPTIONS=f"halt_on_error=1 exitcode={TSAN_EXIT}")
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if "unexpected memory mapping" in done.stderr:  # see the module docstring
        done = subprocess.run(["setarch", platform.machine(), "-R", *command], capture_output=True, text=True,
                              env=env, timeout=600)
    return done


@pytest.fixture(scope="module", params=["mlp_dynamic", "cnn", "mixed"])
def tsan_model(request, tmp_path_factory):
    """A model built with ThreadSanitizer, its client, input sets and the single-threaded outputs."""
    model, max_batch, batch = _model(request.param)
    directory = tmp_path_factory.mktemp(f"tsan-{model.name}")
    model.write(directory, library=True)
    build_library(directory, model.name, cxxflags=" ".join(("-std=c++17", *TSAN)))
    client = compile_client(directory, model.name, TSAN)
    sets = [random_inputs(model, batch, seed) for seed in range(SETS)]
    write_sets(directory, sets)
    command = [str(client), str(directory / f"{model.name}.dat"), str(max_batch), str(batch), str(directory)]
    single = _run(command)
    assert single.returncode == 0 and "ThreadSanitizer" not in single.stderr, single.stdout + single.stderr
    for k, inputs in enumerate(sets):  # the single-threaded outputs the threads must reproduce are right
        assert_matches(read_outputs(directory, model, k, batch), model.traced.reference(*inputs))
    return SimpleNamespace(name=model.name, command=command)


def test_one_session_per_thread_is_race_free_and_bit_identical(tsan_model):
    done = _run([*tsan_model.command, str(THREADS), str(CALLS)])
    assert "ThreadSanitizer" not in done.stderr, done.stderr[-6000:]
    assert done.returncode == 0, done.stdout + done.stderr
    reports = sorted(re.findall(r"thread \d+: \d+ calls, -?\d+ differ", done.stdout))
    assert reports == [f"thread {t}: {CALLS} calls, 0 differ" for t in range(THREADS)]


def test_a_session_shared_between_threads_is_reported_as_a_race(tsan_model):
    done = _run([*tsan_model.command, str(THREADS), str(CALLS), "shared"])
    assert done.returncode == TSAN_EXIT and "WARNING: ThreadSanitizer: data race" in done.stderr, \
        done.stdout + done.stderr[-3000:]
