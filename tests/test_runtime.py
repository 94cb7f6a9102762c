"""Tests of jax2sofie.runtime: real SOFIE headers, a real C++ compiler and BLAS (no mocks)."""

import os

import numpy as np
import pytest

sofie = pytest.importorskip("sofie")

from jax2sofie.runtime import (  # noqa: E402
    CheckReport,
    CompileError,
    InferenceError,
    TensorSpec,
    ToolchainError,
    compare,
    compile_model,
    find_blas,
    find_compiler,
)
from jax2sofie.runtime import toolchain  # noqa: E402
from jax2sofie.runtime.harness import parse_session_signature  # noqa: E402

F32 = sofie.ETensorType.FLOAT


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("j2s-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JAX2SOFIE_CACHE_DIR", str(d))
        yield d



def make_mlp(out_dir, name="mlp", batch=2, W=None, b=None, options=sofie.Options.kDefault):
    """x[batch,4] -> Relu(x @ W + b) [batch,3]; batch may be a symbolic name."""
    W = np.asarray(W if W is not None else np.arange(12).reshape(4, 3) / 10 - 0.5, np.float32)
    b = np.asarray(b if b is not None else [0.1, -0.2, 0.3], np.float32)
    m = sofie.RModel(name, "now")
    shape = [sofie.Dim(batch), sofie.Dim(4)] if isinstance(batch, str) else [batch, 4]
    m.add_input_tensor_info("x", F32, shape)
    m.add_input_tensor_name("x")
    m.add_initialized_tensor("W", F32, [4, 3], W)
    m.add_initialized_tensor("b", F32, [3], b)
    m.add_operator(sofie.ROperator_Gemm["float"](1.0, 1.0, 0, 0, "x", "W", "b", "y", sofie.EActivationType.RELU))
    m.add_output_tensor_name_list(["y"])
    m.generate(options)
    os.makedirs(out_dir, exist_ok=True)
    m.output_generated(os.path.join(out_dir, f"{name}.hxx"))
    return os.path.join(out_dir, f"{name}.hxx"), W, b


def mlp_ref(x, W, b):
    return np.maximum(x @ W + b, 0).astype(np.float32)


def mlp_specs(batch):
    return [TensorSpec("x", np.float32, (batch, 4))], [TensorSpec("y", np.float32, (batch, 3))]


# ------------------------------------------------------------------------------------------
# toolchain
# ------------------------------------------------------------------------------------------


def test_toolchain_found():
    comp = find_compiler()
    assert os.path.isfile(comp.path) and comp.version
    flags = find_blas(comp)
    assert flags and all(isinstance(f, str) for f in flags)
    assert find_blas(comp) is flags  # cached per process


def test_toolchain_error_missing_cxx(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/bin/g++-42")
    with pytest.raises(ToolchainError) as e:
        find_compiler()
    msg = str(e.value)
    assert "/nonexistent/bin/g++-42" in msg and "apt-get install g++" in msg
    assert isinstance(e.value, RuntimeError)


def test_toolchain_error_no_compiler_on_path(monkeypatch, tmp_path):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolchainError, match=r"no C\+\+ compiler found \(looked for \$CXX, c\+\+, g\+\+, clang\+\+\)"):
        find_compiler()


def test_toolchain_error_blas_env_cannot_link(monkeypatch):
    monkeypatch.setenv("JAX2SOFIE_BLAS", "-lj2s_no_such_blas")
    with pytest.raises(ToolchainError) as e:
        find_blas()
    msg = str(e.value)
    assert "JAX2SOFIE_BLAS" in msg and "-lj2s_no_such_blas" in msg and "libopenblas-dev" in msg


def test_toolchain_error_no_blas(monkeypatch):
    monkeypatch.delenv("JAX2SOFIE_BLAS", raising=False)
    monkeypatch.setattr(toolchain, "_CANDIDATE_BLAS", (("-lj2s_nope1",), ("-lj2s_nope2",)))
    toolchain.clear_caches()
    try:
        with pytest.raises(ToolchainError, match="no BLAS found to link the generated code") as e:
            find_blas()
        assert "-lj2s_nope1, -lj2s_nope2" in str(e.value) and "apt-get install libopenblas-dev" in str(e.value)
    finally:
        toolchain.clear_caches()


# ------------------------------------------------------------------------------------------
# compile + run
# ------------------------------------------------------------------------------------------


def test_static_mlp_and_cache_hit(tmp_path):
    hdr, W, b = make_mlp(tmp_path / "a")
    ins, outs = mlp_specs(2)
    m1 = compile_model(hdr, str(tmp_path / "a" / "mlp.dat"), "mlp", ins, outs)
    x = np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)
    (y,) = m1.run(x)
    assert y.shape == (2, 3) and y.dtype == np.float32
    rep = compare([mlp_ref(x, W, b)], [y])
    assert isinstance(rep, CheckReport) and rep.passed and rep, str(rep)
    assert rep.max_abs_error < 1e-5
    mtime = os.stat(m1.library_path).st_mtime_ns

    # same header elsewhere with other weights: cache hit, no recompilation, new weights used
    hdr2, W2, b2 = make_mlp(tmp_path / "b", W=np.ones((4, 3)), b=[1, 2, 3])
    m2 = compile_model(hdr2, None, "mlp", ins, outs)  # weight file found next to the header
    assert m2.cached and not m1.cached
    assert m2.library_path == m1.library_path and os.stat(m2.library_path).st_mtime_ns == mtime
    assert m2.compile_seconds < m1.compile_seconds
    assert m2.weight_path == str(tmp_path / "b" / "mlp.dat")
    rep2 = m2.check([mlp_ref(x, W2, b2)], x)
    assert rep2.passed and rep2.cached, str(rep2)
    assert m1.check([mlp_ref(x, W, b)], x).passed  # the first model still reads its own weights
    assert not m1.with_weights(tmp_path / "b" / "mlp.dat").check([mlp_ref(x, W, b)], x).passed

    # a missing weight file is a clear error at Session creation
    with pytest.raises(InferenceError, match="failed to open file"):
        m1.with_weights(tmp_path / "nope.dat").run(x)
    with pytest.raises(TypeError, match="dtype float64, expected float32"):
        m1.run(x.astype(np.float64))
    with pytest.raises(ValueError, match=r"shape \(3, 4\), expected \(2, 4\)"):
        m1.run(np.zeros((3, 4), np.float32))


def test_embedded_weights_same_name_distinct_libraries(tmp_path):
    """kNoWeightFile: weights live in the header, so each header gets its own library; two libs
    defining SOFIE_mlp in one process must not clash (hidden visibility)."""
    ins, outs = mlp_specs(2)
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    models = []
    for k in range(2):
        hdr, W, b = make_mlp(tmp_path / f"nw{k}", W=np.full((4, 3), k + 1.0), b=[k, k, k],
                             options=sofie.Options.kNoWeightFile)
        assert not os.path.exists(tmp_path / f"nw{k}" / "mlp.dat")
        sig = parse_session_signature(open(hdr).read(), "mlp")
        assert sig.default_weight_file == "" and sig.ctor_shape_params == []
        models.append((compile_model(hdr, None, "mlp", ins, outs), W, b))
    assert models[0][0].library_path != models[1][0].library_path
    for m, W, b in models:
        assert m.check([mlp_ref(x, W, b)], x).passed


def test_safetensors_weights(tmp_path):
    hdr, W, b = make_mlp(tmp_path, name="mlpst", options=sofie.Options.kSafetensorsWeightFile)
    ins, outs = mlp_specs(2)
    m = compile_model(hdr, tmp_path / "mlpst.safetensors", "mlpst", ins, outs)
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    assert m.check([mlp_ref(x, W, b)], x).passed


def test_dynamic_batch(tmp_path):
    hdr, W, b = make_mlp(tmp_path, name="mlpdyn", batch="bs")
    ins, outs = mlp_specs("bs")
    m = compile_model(hdr, None, "mlpdyn", ins, outs, shape_params=["bs"])
    assert m.shape_params == ("bs",)
    rng = np.random.default_rng(3)
    for bs in (1, 7, 4096):
        x = rng.standard_normal((bs, 4)).astype(np.float32)
        rep = m.check([mlp_ref(x, W, b)], x)  # bs read from x.shape
        assert rep.passed and rep.outputs[0].shape == (bs, 3), str(rep)
        (y,) = m.run(x, bs=bs)
        np.testing.assert_allclose(y, mlp_ref(x, W, b), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        m.run(np.zeros((3, 4), np.float32), bs=5)
    with pytest.raises(TypeError, match="unknown shape parameter"):
        m.run(np.zeros((3, 4), np.float32), batch=3)
    with pytest.raises(ValueError, match="has shape parameters"):
        compile_model(hdr, None, "mlpdyn", ins, outs, shape_params=["n"])


def test_two_outputs_same_type(tmp_path):
    m = sofie.RModel("two", "now")
    m.add_input_tensor_info("x", F32, [sofie.Dim("bs"), sofie.Dim(5)])
    m.add_input_tensor_name("x")
    m.add_operator(sofie.ROperator_Relu["float"]("x", "r"))
    m.add_operator(sofie.ROperator_Sigmoid["float"]("x", "s"))
    m.add_output_tensor_name_list(["r", "s"])
    m.generate()
    m.output_generated(str(tmp_path / "two.hxx"))
    cm = compile_model(tmp_path / "two.hxx", None, None,
                       [TensorSpec("x", np.float32, ("bs", 5))],
                       [TensorSpec("r", np.float32, ("bs", 5)), TensorSpec("s", np.float32, ("bs", 5))])
    assert cm.name == "two"
    x = np.random.default_rng(4).standard_normal((3, 5)).astype(np.float32) * 4
    r, s = cm.run(x)
    rep = compare([np.maximum(x, 0), (1 / (1 + np.exp(-x))).astype(np.float32)], [r, s])
    assert rep.passed and [o.name for o in rep.outputs] == ["output0", "output1"], str(rep)
    assert [o.name for o in cm.check([np.maximum(x, 0), 1 / (1 + np.exp(-x))], x, rtol=1e-5).outputs] == ["r", "s"]


def test_mixed_outputs_and_interleaved_shape_params(tmp_path):
    """Outputs bool (uint8 in C++), float and int64 -> std::tuple; two inputs with dims n,bs / bs,m:
    infer(n, bs, x, m, z) but Session(path, bs, m, n)."""
    m = sofie.RModel("mixed", "now")
    m.add_input_tensor_info("x", F32, [sofie.Dim("n"), sofie.Dim("bs")])
    m.add_input_tensor_name("x")
    m.add_input_tensor_info("z", F32, [sofie.Dim("bs"), sofie.Dim("m")])
    m.add_input_tensor_name("z")
    m.add_operator(sofie.ROperator_Gemm["float"](1.0, 0.0, 0, 0, "x", "z", "", "y", sofie.EActivationType.UNDEFINED))
    m.add_operator(sofie.ROperator_Comparison_float_Greater("z", "z2", "g"))
    m.add_initialized_tensor("z2", F32, [1], np.zeros(1, np.float32))
    m.add_operator(sofie.ROperator_Cast(sofie.ETensorType.INT64, "y", "c"))
    m.add_output_tensor_name_list(["g", "y", "c"])
    m.generate()
    m.output_generated(str(tmp_path / "mixed.hxx"))
    sig = parse_session_signature((tmp_path / "mixed.hxx").read_text(), "mixed")
    assert sig.ctor_shape_params == ["bs", "m", "n"] and sig.infer_shape_params == ["n", "bs", "m"]

    cm = compile_model(tmp_path / "mixed.hxx", None, "mixed",
                       [TensorSpec("x", np.float32, ("n", "bs")), TensorSpec("z", np.float32, ("bs", "m"))],
                       [TensorSpec("g", np.bool_, ("bs", "m")), TensorSpec("y", np.float32, ("n", "m")),
                        TensorSpec("c", np.int64, ("n", "m"))])
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((3, 5)) * 3).astype(np.float32)
    z = rng.standard_normal((5, 2)).astype(np.float32)
    y = x @ z
    g_ref = z > 0
    rep = cm.check([g_ref, y, y.astype(np.int64)], x, z)
    assert rep.passed, str(rep)

    # integer/bool outputs are compared exactly
    g_bad = g_ref.copy()
    g_bad[4, 1] = ~g_bad[4, 1]
    rep = cm.check([g_bad, y, y.astype(np.int64)], x, z)
    assert not rep.passed and rep.outputs[0].worst_index == (4, 1) and rep.outputs[0].n_mismatched == 1
    assert rep.outputs[1].passed and rep.outputs[2].passed

    with pytest.raises(ValueError, match="spec dtype int32"):
        compile_model(tmp_path / "mixed.hxx", None, "mixed", cm.inputs,
                      [cm.outputs[0], cm.outputs[1], TensorSpec("c", np.int32, ("n", "m"))])


def test_compile_error_broken_header(tmp_path):
    hdr = tmp_path / "broken.hxx"
    hdr.write_text(
        "#include <string>\n#include <vector>\n"
        "namespace SOFIE_broken {\nstruct Session {\n   Session(std::string = \"\") {}\n"
        "   std::vector<float> infer(float const* tensor_x) {\n"
        "      return this_symbol_does_not_exist(tensor_x);\n   }\n};   // end of Session\n}\n")
    with pytest.raises(CompileError) as e:
        compile_model(hdr, None, "broken", [TensorSpec("x", np.float32, (2,))], [TensorSpec("y", np.float32, (2,))])
    msg = str(e.value)
    assert str(hdr) in msg and "this_symbol_does_not_exist" in msg
    assert e.value.header_path == str(hdr) and "error" in e.value.stderr
    assert len(msg.splitlines()) < 60


def test_compiled_libraries_and_rdf_files_share_one_cache_root(tmp_path, cache_dir, monkeypatch):
    """$JAX2SOFIE_CACHE_DIR (else ~/.cache/jax2sofie) is the root of every cache: compiled/ for these
    libraries, rdf/ for jax2sofie.rdf, as the SOFIE headers the build fetches sit in it too."""
    from jax2sofie.runtime.cache import cache_dir as kind_dir
    from jax2sofie.runtime.cache import default_cache_dir

    hdr, _, _ = make_mlp(tmp_path / "a", name="cached_where")
    ins, outs = mlp_specs(2)
    model = compile_model(hdr, None, "cached_where", ins, outs)
    assert os.path.dirname(model.library_path) == str(cache_dir / "compiled")
    monkeypatch.delenv("JAX2SOFIE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "jax2sofie" / "compiled"
    assert kind_dir("rdf") == tmp_path / "xdg" / "jax2sofie" / "rdf"


def test_the_harness_template_is_package_data_of_the_imported_package():
    """The harness's C++ is runtime/templates/harness.cpp.in: the imported package (the installed one
    in CI) must carry it, and every placeholder is filled in."""
    from importlib import resources

    from jax2sofie.runtime.harness import conventional_signature, generate_harness_source

    template = resources.files("jax2sofie.runtime.templates").joinpath("harness.cpp.in")
    assert template.is_file() and "j2s_infer" in template.read_text()
    spec = TensorSpec("x", np.float32, ("bs", 4))
    source = generate_harness_source("mlp", "sofie_model.hxx", ["bs"], conventional_signature([spec], ["bs"]), 1)
    assert "@" not in source and "SOFIE_mlp::Session" in source and '#include "sofie_model.hxx"' in source


@pytest.mark.parametrize("name", ["harness.cpp.in", "c_api.h.in", "c_api.cpp.in", "standalone_test.cpp.in"])
def test_every_cpp_template_is_package_data(name):
    """The C API and the standalone test are written from templates too: each must be in the package."""
    from importlib import resources

    assert resources.files("jax2sofie.runtime.templates").joinpath(name).is_file()


def test_fill_template_refuses_a_placeholder_without_a_value():
    from jax2sofie.runtime.templates import fill_template

    with pytest.raises(KeyError, match="placeholders without a value.*'ninfer'"):
        fill_template("harness.cpp.in", {"abi": 1, "header": "h.hxx", "model": "m", "nshape": 0, "nin": 1,
                                         "nctor": 0, "ctor": "", "infer": ""})


def test_one_place_for_the_flags_of_generated_code(tmp_path):
    """The Makefile, the standalone test's build line and the default build use runtime/build.py's flags."""
    from jax2sofie.runtime.build import BUILDS, DEFAULT_CXXFLAGS, SHARED_LIBRARY_FLAGS, build_flags
    from jax2sofie.runtime.makefile import write_makefile

    assert list(DEFAULT_CXXFLAGS) == build_flags("O2") == ["-O2", "-std=c++17"]
    assert set(BUILDS) == {"O2", "v3", "native"}
    text = write_makefile(tmp_path, "m", test=True, library=True).read_text()
    assert f"CXXFLAGS ?= {' '.join(DEFAULT_CXXFLAGS)}\n" in text
    assert f"LIBRARY_FLAGS = {' '.join(SHARED_LIBRARY_FLAGS)} " in text
    with pytest.raises(ValueError, match="unknown build 'O9'"):
        build_flags("O9")


def test_compare_reports_worst_index_and_reasons():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((4, 5)).astype(np.float32)
    e = a.copy()
    e[2, 3] += 0.5
    e[0, 0] += 1e-6  # within tolerance
    rep = compare([e], [a])
    assert not rep and not rep.passed
    d = rep.outputs[0]
    assert d.worst_index == (2, 3) and d.n_mismatched == 1 and not d.passed
    assert abs(rep.max_abs_error - 0.5) < 1e-5
    assert "(2, 3)" in str(rep) and "FAIL" in str(rep)

    assert compare([a], [a.copy()]).passed
    # shape / dtype / NaN pattern mismatches
    assert "shape mismatch" in compare([a], [a[:2]]).outputs[0].reason
    assert "dtype mismatch" in compare([a.astype(np.float64)], [a]).outputs[0].reason
    n = a.copy()
    n[1, 1] = np.nan
    assert compare([n], [n.copy()]).passed  # NaN where NaN is expected is fine
    r = compare([n], [a])
    assert not r.passed and "NaN pattern" in r.outputs[0].reason and r.outputs[0].worst_index == (1, 1)
    inf = a.copy()
    inf[0, 1] = np.inf
    assert compare([inf], [inf.copy()]).passed and not compare([inf], [a]).passed
    # missing output
    r = compare([a, a], [a])
    assert not r.passed and "missing" in r.outputs[1].reason
