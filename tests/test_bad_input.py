"""Bad input through the command line: each case gives exit code 1 (or 2 for usage errors), a message
that names the problem and where it is, and leaves the output directory exactly as it was."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jax2sofie
from jax2sofie.cli import main
from jax2sofie.runtime.toolchain import clear_caches

MODELS = textwrap.dedent('''
    import jax, jax.numpy as jnp, numpy as np
    from flax import nnx

    class Tagger(nnx.Module):
        def __init__(self):
            self.dense = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
        def __call__(self, x):
            return jax.nn.softmax(self.dense(x))

    model = Tagger()

    def unsupported(p, x):
        y = jax.lax.rng_uniform(x[0, 0], x[0, 1], x.shape)
        z = jax.lax.complex(y, x)
        return jax.lax.real(z)

    def lookup(p, i):
        return p["table"][i]

    def half(p, x):
        return x.astype(jnp.float16) * 2

    def brain_float(p, x):
        return x @ p["w"].astype(jnp.bfloat16)

    def empty(p, x):
        return (x @ p["w"]) * 2.0

    def dense(p, x):
        return x @ p["w"]

    unsupported_pair = (unsupported, {})
    lookup_pair = (lookup, {"table": np.ones((4, 3), np.float32)})
    text_param_pair = (dense, {"w": "0.5"})
    half_pair = (half, {})
    bfloat16_pair = (brain_float, {"w": np.ones((8, 2), np.float32)})
    empty_pair = (empty, {"w": np.ones((8, 0), np.float32)})
    nan_weights = np.ones((8, 2), np.float32)
    nan_weights[3, 1] = np.inf
    nan_pair = (dense, {"w": nan_weights})
    not_a_model = 42
''')


@pytest.fixture
def models(tmp_path, monkeypatch):
    (tmp_path / "bad_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "bad_models", str(tmp_path / "bad_models.py")
    sys.modules.pop("bad_models", None)


@pytest.fixture
def out(tmp_path):
    """An output directory that already holds a file: it must be left exactly as it is."""
    directory = tmp_path / "out"
    directory.mkdir()
    (directory / "keep.txt").write_text("user data")
    return directory


def line_of(code: str) -> int:
    """The line number of `code` in the model file."""
    return next(n for n, line in enumerate(MODELS.splitlines(), start=1) if code in line)


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones too) with its contents."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()} \
        if directory.exists() else {}


def run_cli(argv, capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


FAILING_CONVERSIONS = {
    # case: (object, extra arguments, texts the message must hold; "@code" stands for file:line of `code`)
    "unsupported_primitives_all_at_once": ("unsupported_pair", ["--input-shape", "2,4"],
                                           ["3 JAX primitive(s)", "complex", "rng_uniform", "real",
                                            "@jax.lax.rng_uniform(x", "@jax.lax.complex(y"]),
    "input_shape_mismatch": ("model", ["--input-shape", "2,5"],
                             ["cannot be traced", "x: float32[2, 5]", "contracting dimensions", "shape or dtype"]),
    "input_dtype_mismatch": ("lookup_pair", ["--input-shape", "2"],
                             ["cannot be traced", "i: float32[2]", "integer", "@p[\"table\"][i]"]),
    "param_not_an_array": ("text_param_pair", ["--input-shape", "1,8"], ["param 'w' is a str, not an array"]),
    "float16_model": ("half_pair", ["--input-shape", "1,8"], ["computes in float16", "@x.astype(jnp.float16)", "float32"]),
    "bfloat16_model": ("bfloat16_pair", ["--input-shape", "1,8"], ["computes in bfloat16", "@p[\"w\"].astype(jnp.bfloat16)"]),
    "zero_size_input": ("model", ["--input-shape", "0,8"], ["shape (0, 8): zero-size dimensions"]),
    "zero_size_inside": ("empty_pair", ["--input-shape", "2,8"], ["@(x @ p[\"w\"]) * 2.0", "zero-size array of shape (2, 0)"]),
    "nan_weights_strict": ("nan_pair", ["--input-shape", "1,8", "--strict"],
                           ["weight 'w' has 1 NaN/Inf value(s) of 16", "strict"]),
}


@pytest.mark.parametrize("case", sorted(FAILING_CONVERSIONS))
def test_failed_conversion_names_the_problem_and_leaves_the_directory(case, models, out, capsys):
    module, path = models
    obj, extra, texts = FAILING_CONVERSIONS[case]
    before = snapshot(out)
    code, err = run_cli(["convert", f"{module}:{obj}", *extra, "-o", str(out)], capsys)
    assert code == 1, err
    for text in texts:
        if text.startswith("@"):
            text = f"{path}:{line_of(text[1:])}"
        assert text in err, (text, err)
    assert "Traceback" not in err
    assert snapshot(out) == before


def test_failed_conversion_does_not_create_the_directory(models, tmp_path, capsys):
    module, _ = models
    target = tmp_path / "new" / "out"
    code, err = run_cli(["convert", f"{module}:unsupported_pair", "--input-shape", "2,4", "-o", str(target)], capsys)
    assert code == 1 and "rng_uniform" in err
    assert not (tmp_path / "new").exists()


def test_nan_weights_warn_without_strict(models, tmp_path, capsys):
    module, _ = models
    with pytest.warns(RuntimeWarning, match=r"weight 'w' has 1 NaN/Inf value\(s\) of 16"):
        code, _ = run_cli(["convert", f"{module}:nan_pair", "--input-shape", "1,8", "-o", str(tmp_path / "o")], capsys)
    assert code == 0


USAGE_ERRORS = {
    "not_a_target": (["convert", "no_colon", "--input-shape", "1"], "nor of the form package.module:object"),
    "missing_module": (["convert", "no_such_module_xyz:model", "--input-shape", "1"], "No module named"),
    "missing_object": (["convert", "{module}:nothing", "--input-shape", "1"], "has no attribute 'nothing'"),
    "not_a_model": (["convert", "{module}:not_a_model", "--input-shape", "1"], "is a int: expected a Flax nnx module"),
    "bad_shape_text": (["convert", "{module}:model", "--input-shape", "2,x"], "not a comma-separated list"),
    "missing_example": (["convert", "{module}:model", "--example", "/no/such/x.npy"], "cannot read example input"),
    "missing_keras_file": (["convert", "/no/such/model.keras", "--input-shape", "1"], "no such file"),
}


@pytest.mark.parametrize("case", sorted(USAGE_ERRORS))
def test_usage_errors_exit_2_and_leave_the_directory(case, models, out, capsys):
    module, _ = models
    argv, text = USAGE_ERRORS[case]
    before = snapshot(out)
    code, err = run_cli([a.format(module=module) for a in argv] + ["-o", str(out)], capsys)
    assert code == 2 and text in err, err
    assert snapshot(out) == before


def test_existing_files_are_not_overwritten_without_force(models, out, capsys):
    module, _ = models
    argv = ["convert", f"{module}:model", "--input-shape", "1,8", "-o", str(out), "--name", "tagger"]
    assert run_cli(argv, capsys)[0] == 0
    (out / "tagger.hxx").write_text("edited by the user")
    before = snapshot(out)
    code, err = run_cli(argv, capsys)
    assert code == 1 and "not overwriting" in err and "tagger.hxx" in err, err
    assert snapshot(out) == before
    assert run_cli(argv + ["--force"], capsys)[0] == 0
    assert (out / "tagger.hxx").read_text() != "edited by the user"
    assert (out / "keep.txt").read_text() == "user data"


def test_output_directory_not_writable(models, tmp_path, capsys):
    module, _ = models
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    code, err = run_cli(["convert", f"{module}:model", "--input-shape", "1,8", "-o", str(blocker / "out")], capsys)
    assert code == 1 and "cannot write model 'Tagger' into" in err and "a_file/out" in err, err
    assert blocker.read_text() == "not a directory"


@pytest.fixture
def toolchain_env(monkeypatch):
    clear_caches()
    yield monkeypatch
    clear_caches()


def test_check_without_a_compiler_says_what_to_install(models, out, toolchain_env, capsys):
    module, _ = models
    toolchain_env.setenv("CXX", "/nonexistent/bin/g++")
    before = snapshot(out)
    code, err = run_cli(["convert", f"{module}:model", "--input-shape", "1,8", "-o", str(out), "--check"], capsys)
    assert code == 1 and "/nonexistent/bin/g++" in err and "apt-get install g++" in err, err
    assert snapshot(out) == before  # the toolchain is looked for before anything is written
    # `check DIR` of a directory written earlier says the same
    toolchain_env.delenv("CXX")
    clear_caches()
    assert run_cli(["convert", f"{module}:model", "--input-shape", "1,8", "-o", str(out / "m")], capsys)[0] == 0
    toolchain_env.setenv("CXX", "/nonexistent/bin/g++")
    code, err = run_cli(["check", str(out / "m")], capsys)
    assert code == 1 and "apt-get install g++" in err


def test_check_without_blas_says_what_to_install(models, out, toolchain_env, capsys):
    module, _ = models
    toolchain_env.setenv("JAX2SOFIE_BLAS", "-lno_such_blas_library")
    before = snapshot(out)
    code, err = run_cli(["convert", f"{module}:model", "--input-shape", "1,8", "-o", str(out), "--check"], capsys)
    assert code == 1 and "-lno_such_blas_library" in err and "libopenblas-dev" in err, err
    assert snapshot(out) == before


# -- atomic writes, through the API --------------------------------------------------------------------
def small_model():
    return jax2sofie.convert(lambda p, x: x * p["w"], {"w": np.full(3, 2.0, np.float32)}, np.ones(3, np.float32),
                             name="scale")


def test_failure_while_generating_leaves_nothing(out, monkeypatch):
    import jax2sofie.model as model_module

    model = small_model()

    def broken(directory, *args, **kwargs):
        (Path(directory) / "scale_test.cpp").write_text("half writ")
        raise RuntimeError("disk full")

    monkeypatch.setattr(model_module, "write_standalone_test", broken)
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="disk full"):
        model.write(out, test=True)
    assert snapshot(out) == before


def test_failure_between_renames_restores_the_directory(out, monkeypatch):
    import jax2sofie.model as model_module

    model = small_model()
    (out / "scale.dat").write_text("old weights")  # overwritten with force=True, restored on failure
    before = snapshot(out)
    real_replace = model_module.os.replace
    renamed_into_out = []

    def failing_replace(src, dst):
        if Path(dst).parent == out:
            renamed_into_out.append(dst)
            if len(renamed_into_out) == 2:  # the second new file
                raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(model_module.os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        model.write(out, force=True, test=True)
    assert snapshot(out) == before
