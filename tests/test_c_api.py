"""The C API and shared library of write(library=True): `make lib<name>.so` builds it, it exports only
the C API (its static OpenBLAS private), Python (jax2sofie.load_library) and a plain C program compiled
with gcc call it and match JAX, bad input gets clear errors, and it is picklable and thread-safe with one
session per thread. ThreadSanitizer: tests/test_c_api_threads.py."""
from __future__ import annotations

import os
import pickle
import re
import subprocess
import tempfile
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import numpy as np
import pytest

import jax2sofie
from c_api_support import (ATOL, RTOL, assert_matches, cnn_model, compile_client, mixed, mlp, mlp_params,
                           random_inputs, read_outputs, write_sets)
from conftest import package_root
from jax2sofie.cli import main
from jax2sofie.runtime import InferenceError
from jax2sofie.runtime.c_api import API_FUNCTIONS, LibraryInterfaceError, build_library

MAX_BATCH = 6


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Models written with library=True and built with their Makefile: name -> (model, directory, library)."""
    root = tmp_path_factory.mktemp("c-api")
    params = mlp_params()
    x = np.zeros((2, 16), np.float32)
    w = np.random.default_rng(1).standard_normal((8, 8)).astype(np.float32)
    models = {
        "mlp": (jax2sofie.convert(mlp, params, x, name="mlp"), "text"),
        "mlp_dynamic": (jax2sofie.convert(mlp, params, x, name="mlp_dynamic", dynamic_batch=True), "text"),
        "mlp_embedded": (jax2sofie.convert(mlp, params, x, name="mlp_embedded"), "embedded"),
        "mixed": (jax2sofie.convert(mixed, {"w": w}, np.zeros((2, 4, 8), np.float32), np.zeros((2, 3), np.int32),
                                    name="mixed", dynamic_batch=True), "safetensors"),
        "cnn": (cnn_model("cnn"), "text"),
    }
    result = {}
    for name, (model, weights) in models.items():
        directory = root / name
        model.write(directory, weights=weights, library=True)
        result[name] = SimpleNamespace(model=model, dir=directory, lib=build_library(directory, name))
    return result


# -- what is written and built ----------------------------------------------------------------------------

def test_write_library_writes_the_c_api_and_a_makefile_target(built):
    directory = built["mlp"].dir
    assert sorted(p.name for p in directory.iterdir()) == ["Makefile", "libmlp.so", "mlp.dat", "mlp.hxx", "mlp_c.cpp",
                                                          "mlp_c.h", "mlp_c.map"]
    makefile = (directory / "Makefile").read_text()
    assert "libmlp.so: mlp_c.cpp mlp_c.h mlp.hxx mlp_c.map" in makefile and "mlp_test:" not in makefile
    header = (directory / "mlp_c.h").read_text()
    assert "mlp_session *mlp_create(const char *weight_path, int64_t max_batch);" in header
    assert "Inputs:  x float32[16]" in header and "Outputs: output float32[4]" in header


@pytest.mark.parametrize("name", ["mlp", "mlp_dynamic", "mixed", "cnn"])
def test_the_library_exports_the_c_api_only_and_keeps_its_blas_private(built, name):
    library = built[name].lib
    defined = subprocess.run(["nm", "-D", "--defined-only", str(library)], capture_output=True, text=True, check=True)
    exported = sorted(line.split()[-1] for line in defined.stdout.splitlines())
    assert exported == sorted(f"{name}_{function}" for function in API_FUNCTIONS)
    # OpenBLAS linked in statically: no BLAS symbol left for the dynamic linker to resolve elsewhere
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(library)], capture_output=True, text=True,
                               check=True).stdout
    assert "gemm" not in undefined and "gemv" not in undefined
    needed = subprocess.run(["readelf", "-d", str(library)], capture_output=True, text=True, check=True).stdout
    assert "blas" not in needed.lower()


def test_the_mixed_model_calls_blas(built):
    # what the static BLAS protects: J2S_Dense calls sgemm_ over the rows of a batch (the small
    # per-example product is J2S_BatchedMatMul's own loop)
    assert "J2S_Dense" in built["mixed"].model.graph.op_counts()
    assert "BLAS::sgemm_(" in (built["mixed"].dir / "mixed.hxx").read_text()


# -- from Python ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["mlp", "mlp_embedded", "cnn"])
def test_a_fixed_batch_library_matches_jax(built, name):
    model = built[name].model
    run = jax2sofie.load_library(built[name].lib)
    assert (run.dynamic_batch, run.has_batch, run.max_batch) == (False, True, 2)
    assert run.inputs == [(v.name, np.dtype(v.dtype), tuple(v.shape[1:])) for v in model.graph.inputs]
    assert run.outputs == [(v.name, np.dtype(v.dtype), tuple(v.shape[1:])) for v in model.graph.outputs]
    for seed in range(3):
        inputs = random_inputs(model, 2, seed)
        assert_matches(run(*inputs), model.traced.reference(*inputs))


@pytest.mark.parametrize("name", ["mlp_dynamic", "mixed"])
def test_a_dynamic_batch_library_runs_every_batch_up_to_its_maximum(built, name):
    model = built[name].model
    run = jax2sofie.load_library(built[name].lib, max_batch=MAX_BATCH)
    assert (run.dynamic_batch, run.has_batch, run.max_batch) == (True, True, MAX_BATCH)
    for batch in (1, 3, MAX_BATCH):
        inputs = random_inputs(model, batch, seed=batch)
        assert_matches(run(*inputs), model.traced.reference(*inputs))


def test_the_library_is_right_when_numpy_has_loaded_its_own_blas_first(built, tmp_path):
    # a fresh process: numpy (with its bundled OpenBLAS) is imported and does a matrix product before
    # the library is loaded, and a poisoned sgemm_ is in the process's global symbol scope; the library's
    # own static OpenBLAS must still be the one it calls
    case = built["mixed"]
    inputs = random_inputs(case.model, 4, seed=7)
    np.save(tmp_path / "x.npy", inputs[0])
    np.save(tmp_path / "n.npy", inputs[1])
    np.save(tmp_path / "expected.npy", case.model.traced.reference(*inputs)[0])
    poison = _poisoned_blas(tmp_path)
    script = f"""
import ctypes, os, sys
import numpy as np
a = np.random.default_rng(0).standard_normal((64, 64)).astype(np.float32)
assert np.allclose(a @ a, (a.astype(np.float64) @ a).astype(np.float32), rtol=1e-3, atol=1e-3)
ctypes.CDLL({str(poison)!r}, mode=os.RTLD_NOW | os.RTLD_GLOBAL)  # exports sgemm_ to everything loaded later
from jax2sofie.library import load_library
run = load_library({str(case.lib)!r}, max_batch=8)
y, _ = run(np.load({str(tmp_path / 'x.npy')!r}), np.load({str(tmp_path / 'n.npy')!r}))
np.testing.assert_allclose(y, np.load({str(tmp_path / 'expected.npy')!r}), rtol={RTOL}, atol={ATOL})
print("OK")
"""
    done = _python(script)
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stdout + done.stderr

    # the hazard itself: the same library linked with a shared OpenBLAS binds to the poisoned sgemm_
    shared = tmp_path / "shared"
    case.model.write(shared, weights="safetensors", library=True)
    build_library(shared, "mixed", blas_static=False)
    undefined = subprocess.run(["nm", "-D", "--undefined-only", str(shared / "libmixed.so")],
                               capture_output=True, text=True, check=True).stdout
    assert "sgemm_" in undefined
    done = _python(script.replace(str(case.lib), str(shared / "libmixed.so")))
    assert done.returncode != 0 and "Mismatched elements" in done.stderr, done.stdout + done.stderr


def _poisoned_blas(directory: Path) -> Path:
    """A shared library whose sgemm_ writes 42 into C: a wrong BLAS a process might hold."""
    source = directory / "poison.c"
    source.write_text("void sgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,\n"
                      "            const float *alpha, const float *a, const int *lda, const float *b,\n"
                      "            const int *ldb, const float *beta, float *c, const int *ldc)\n"
                      "{ for (int j = 0; j < *n; ++j) for (int i = 0; i < *m; ++i) c[i + j * *ldc] = 42.f; }\n")
    library = directory / "libpoison.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library


def _python(script: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([package_root(), *sys.path[1:]]))
    # not from the checkout's root: `python -c` puts the working folder first on sys.path, and the
    # checkout's jax2sofie/ sources (no built module) would shadow the installed package
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600,
                          cwd=tempfile.gettempdir())


def test_bad_input_gets_clear_errors(built, tmp_path):
    fixed = jax2sofie.load_library(built["mlp"].lib)
    x = np.zeros((2, 16), np.float32)
    with pytest.raises(TypeError, match="input 'x' of model 'mlp' has dtype float64, the library takes float32"):
        fixed(x.astype(np.float64))
    with pytest.raises(ValueError, match="batch 3: model 'mlp' runs the fixed batch 2"):
        fixed(np.zeros((3, 16), np.float32))
    with pytest.raises(ValueError, match=r"input 'x' of model 'mlp' has shape \(2, 15\), expected \('batch', 16\)"):
        fixed(np.zeros((2, 15), np.float32))
    with pytest.raises(TypeError, match=r"model 'mlp' takes 1 input\(s\) \(x\), got 2"):
        fixed(x, x)
    dynamic = jax2sofie.load_library(built["mixed"].lib, max_batch=MAX_BATCH)
    n = np.zeros((MAX_BATCH + 1, 3), np.int32)
    with pytest.raises(ValueError, match=f"batch {MAX_BATCH + 1} is out of range: model 'mixed' was loaded for "
                                         f"batches 1 to {MAX_BATCH}"):
        dynamic(np.zeros((MAX_BATCH + 1, 4, 8), np.float32), n)
    with pytest.raises(ValueError, match="input 'n' of model 'mixed' has batch 2, the inputs before it 3"):
        dynamic(np.zeros((3, 4, 8), np.float32), n[:2])
    with pytest.raises(TypeError, match="input 'n' of model 'mixed' has dtype int64, the library takes int32"):
        dynamic(np.zeros((3, 4, 8), np.float32), n[:3].astype(np.int64))
    with pytest.raises(ValueError, match=r"input 'x' of model 'mixed' has shape \(3, 8, 4\), expected "
                                         r"\('batch', 4, 8\)"):
        dynamic(np.zeros((3, 8, 4), np.float32), n[:3])
    with pytest.raises(TypeError, match="model 'mixed' has a dynamic batch: pass max_batch="):
        jax2sofie.load_library(built["mixed"].lib)
    with pytest.raises(InferenceError, match="mlp_create: max_batch is 5, the model runs the fixed batch 2"):
        jax2sofie.load_library(built["mlp"].lib, max_batch=5)
    with pytest.raises(InferenceError, match="mixed_create: max_batch is -1, a dynamic-batch model needs at least 1"):
        jax2sofie.load_library(built["mixed"].lib, max_batch=-1)
    missing = tmp_path / "nowhere" / "mlp.dat"
    with pytest.raises(FileNotFoundError, match=f"the weight file {missing} of model 'mlp' does not exist"):
        jax2sofie.load_library(built["mlp"].lib, weights=missing)
    with pytest.raises(FileNotFoundError, match="no library .*libnothing.so"):
        jax2sofie.load_library(tmp_path / "libnothing.so")
    with pytest.raises(ValueError, match="has no function other_create: it is not the C API library of a model "
                                         "named 'other'"):
        jax2sofie.load_library(built["mlp"].lib, name="other")


def test_a_weight_file_that_cannot_be_read_is_reported_by_create(built, tmp_path):
    broken = tmp_path / "mlp.dat"
    broken.write_text("not weights\n")
    with pytest.raises(InferenceError, match=re.escape(f"mlp_create: cannot create a session from the weight file "
                                                       f"'{broken}': jax2sofie: weight file '{broken}', tensor ")
                       + r"tensor_\w+: found tensor 'not' in its place"):
        jax2sofie.load_library(built["mlp"].lib, weights=broken)


def test_a_model_the_c_api_cannot_describe_is_refused_before_writing(tmp_path):
    def transposed(p, x):
        return x.T @ p["w"]  # the output's dimension 0 is not the batch

    model = jax2sofie.convert(transposed, {"w": np.ones((4, 3), np.float32)},
                              jax.ShapeDtypeStruct(jax.export.symbolic_shape("4, b"), np.float32), name="transposed")
    with pytest.raises(LibraryInterfaceError, match=r"tensor 'x' has shape \(4, 'bs'\); the C API of a dynamic-batch "
                                                    "model needs the batch 'bs' as dimension 0"):
        model.write(tmp_path / "out", library=True)
    assert not (tmp_path / "out").exists()


def test_a_model_without_a_common_batch_dimension_runs_whole_tensors(tmp_path):
    def total(p, x):
        return (x @ p["w"]).sum()  # a scalar output: no dimension shared with the input

    model = jax2sofie.convert(total, {"w": np.ones((16, 3), np.float32)}, np.zeros((2, 16), np.float32), name="total")
    model.write(tmp_path, library=True)
    run = jax2sofie.load_library(build_library(tmp_path, "total"))
    assert (run.has_batch, run.max_batch, run.inputs, run.outputs) == (
        False, 1, [("x", np.dtype(np.float32), (2, 16))], [("output", np.dtype(np.float32), ())])
    x = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    assert_matches(run(x), model.traced.reference(x))


# -- pickling and threads ---------------------------------------------------------------------------------

def test_pickling_keeps_the_paths_and_loads_the_library_on_the_first_call(built):
    case = built["mixed"]
    run = jax2sofie.load_library(case.lib, max_batch=MAX_BATCH)
    state = pickle.dumps(run)
    assert len(state) < 1000  # paths and options, no library or session
    copy = pickle.loads(state)
    assert copy._lib is None
    inputs = random_inputs(case.model, 3, seed=11)
    assert_matches(copy(*inputs), case.model.traced.reference(*inputs))
    assert copy._lib is not None and copy.max_batch == MAX_BATCH
    # in another process, as a Dask worker would unpickle it
    expected = case.model.traced.reference(*inputs)
    done = _python(f"""
import pickle, numpy as np
run = pickle.loads({state!r})
outputs = run(*pickle.loads({pickle.dumps(inputs)!r}))
for got, want in zip(outputs, pickle.loads({pickle.dumps(expected)!r})):
    np.testing.assert_allclose(got, want, rtol={RTOL}, atol={ATOL})
print("OK")
""")
    assert done.returncode == 0 and done.stdout.strip() == "OK", done.stdout + done.stderr


def test_python_threads_share_a_model_with_one_session_each(built):
    case = built["cnn"]
    run = jax2sofie.load_library(case.lib)
    sets = [random_inputs(case.model, 2, seed) for seed in range(4)]
    expected = [run(*inputs) for inputs in sets]
    differ, handles = [], set()

    def work(thread: int):
        handles.add(run._session())
        for call in range(50):
            k = (thread + call) % len(sets)
            outputs = run(*sets[k])
            differ.extend(i for i, (a, b) in enumerate(zip(outputs, expected[k])) if a.tobytes() != b.tobytes())

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert differ == [] and len(handles) == 4  # bit-identical results, four sessions


def test_inference_releases_the_gil(tmp_path):
    # one long call (large batch, wide layers); another thread must make progress while it runs
    rng = np.random.default_rng(0)
    params = {f"w{i}": (rng.standard_normal((512, 512)) / 23).astype(np.float32) for i in range(4)}

    def deep(p, x):
        for i in range(4):
            x = jax.nn.relu(x @ p[f"w{i}"])
        return x

    model = jax2sofie.convert(deep, params, np.zeros((2, 512), np.float32), name="deep", dynamic_batch=True)
    model.write(tmp_path, library=True)
    batches = (2048, 8192, 16384)  # the first whose one call lasts long enough to tell (OpenBLAS is fast)
    run = jax2sofie.load_library(build_library(tmp_path, "deep"), max_batch=batches[-1])
    inputs = [rng.standard_normal((batch, 512)).astype(np.float32) for batch in batches]
    ticks, stop = [], threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())

    counter = threading.Thread(target=count)
    counter.start()
    try:
        for x in inputs:
            start = time.perf_counter()
            run(x)
            end = time.perf_counter()
            if end - start > 0.05:
                break
    finally:
        stop.set()
        counter.join()
    assert end - start > 0.05, f"one call took {end - start:.3f} s: too short to tell"
    inside = [t for t in ticks if start + 0.01 < t < end - 0.01]
    assert len(inside) > 100, f"the other thread ran {len(inside)} times during a {end - start:.3f} s call"


# -- from C -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, max_batch, batch", [("mlp", 0, 2), ("mixed", MAX_BATCH, 5)])
def test_a_c_program_built_with_gcc_calls_the_library(built, tmp_path, name, max_batch, batch):
    case = built[name]
    client = compile_client(case.dir, name)
    sets = [random_inputs(case.model, batch, seed) for seed in range(2)]
    write_sets(tmp_path, sets)
    weights = next(p for p in case.dir.iterdir() if p.suffix in (".dat", ".safetensors"))
    done = subprocess.run([str(client), str(weights), str(max_batch), str(batch), str(tmp_path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    if name == "mlp":
        assert lines == ["dynamic_batch 0 has_batch 1 weight_file 'mlp.dat'", "input 0 x dtype 1 shape 16",
                         "output 0 output dtype 1 shape 4", "sets 2", "max_batch 2"]
    else:
        assert lines == ["dynamic_batch 1 has_batch 1 weight_file 'mixed.safetensors'",
                         "input 0 x dtype 1 shape 4 8", "input 1 n dtype 3 shape 3",
                         "output 0 output_0 dtype 1 shape 4 4", "output 1 output_1 dtype 3 shape", "sets 2",
                         f"max_batch {MAX_BATCH}"]
    for k, inputs in enumerate(sets):
        assert_matches(read_outputs(tmp_path, case.model, k, batch), case.model.traced.reference(*inputs))


def test_the_c_api_reports_bad_calls(built, tmp_path):
    case = built["mixed"]
    client = compile_client(case.dir, "mixed")
    write_sets(tmp_path, [random_inputs(case.model, 5, seed=0)])
    weights = case.dir / "mixed.safetensors"

    def run(*args: str):
        return subprocess.run([str(client), *args], capture_output=True, text=True, timeout=120)

    missing = tmp_path / "no such dir" / "mixed.safetensors"
    done = run(str(missing), "4", "4", str(tmp_path))
    assert done.returncode == 2  # create returned NULL
    assert f"create failed: mixed_create: cannot create a session from the weight file '{missing}'" in done.stderr
    done = run(str(weights), "4", "5", str(tmp_path))  # batch 5 > max_batch 4
    assert done.returncode == 3
    assert "infer failed: mixed_infer: batch 5 is out of range: this session runs 1 to 4" in done.stderr
    done = run(str(weights), "0", "5", str(tmp_path))
    assert done.returncode == 2
    assert "mixed_create: max_batch is 0, a dynamic-batch model needs at least 1" in done.stderr


def test_the_embedded_weights_library_needs_no_weight_file(built, tmp_path):
    case = built["mlp_embedded"]
    client = compile_client(case.dir, "mlp_embedded")
    inputs = random_inputs(case.model, 2, seed=3)
    write_sets(tmp_path, [inputs])
    done = subprocess.run([str(client), "", "0", "2", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "weight_file ''" in done.stdout
    assert_matches(read_outputs(tmp_path, case.model, 0, 2), case.model.traced.reference(*inputs))


# -- the command line -------------------------------------------------------------------------------------

def test_convert_library_on_the_command_line(tmp_path, monkeypatch):
    (tmp_path / "lib_models.py").write_text(
        "import jax\nimport numpy as np\n"
        "def forward(p, x):\n    return jax.nn.relu(x @ p['w'])\n"
        "fn_and_params = (forward, {'w': np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    try:
        assert main(["convert", "lib_models:fn_and_params", "--input-shape", "2,4", "--name", "small", "--library",
                     "-o", str(out)]) == 0
    finally:
        sys.modules.pop("lib_models", None)
    assert {"small_c.h", "small_c.cpp", "small_c.map", "small_test.cpp", "Makefile"} <= {p.name for p in out.iterdir()}
    makefile = (out / "Makefile").read_text()
    assert "test: small_test" in makefile and "libsmall.so:" in makefile
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    (y,) = jax2sofie.load_library(build_library(out, "small"))(x)
    np.testing.assert_allclose(y, np.maximum(x @ np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3), 0),
                               rtol=RTOL, atol=ATOL)
