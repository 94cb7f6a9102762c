"""The command line on a Flax nnx module, a (fn, params) pair and a (linen module, variables) pair: files
written, progress and summary, check run, exit codes. Bad input: tests/test_bad_input.py."""
from __future__ import annotations

import sys
import textwrap

import pytest

from conftest import package_root
from jax2sofie.cli import main

MODELS = textwrap.dedent('''
    import jax, jax.numpy as jnp
    import flax.linen as nn
    from flax import nnx

    class Tagger(nnx.Module):
        def __init__(self):
            self.dense = nnx.Linear(8, 3, rngs=nnx.Rngs(0))
        def __call__(self, x):
            return jax.nn.softmax(self.dense(x))

    model = Tagger()
    linen = nn.Dense(5)
    fn_and_params = (linen.apply, linen.init(jax.random.PRNGKey(0), jnp.zeros((1, 4))))
    linen_and_variables = (linen, fn_and_params[1])
    def broken(params, x):
        return jax.lax.rng_uniform(x[0, 0], x[0, 1], x.shape)
    broken_pair = (broken, {})
    def sorted_weights(params, x):
        return x @ jax.lax.rng_uniform(params["w"][0, 0], params["w"][0, 1], (4, 2))
    folded_pair = (sorted_weights, {"w": jnp.ones((4, 2))})
''')


@pytest.fixture
def models_module(tmp_path, monkeypatch):
    (tmp_path / "cli_models.py").write_text(MODELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "cli_models"
    sys.modules.pop("cli_models", None)


def test_convert_nnx_module_and_check(models_module, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", f"{models_module}:model", "--input-shape", "2,8", "-o", str(out), "--check"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Makefile", "Tagger.dat", "Tagger.hxx", "Tagger_test.cpp"]
    captured = capsys.readouterr()
    # progress of each long step on stderr, with its time
    steps = ["looking for a C++ compiler and a BLAS", "tracing", "lowering", "generating", f"writing {out}",
             "compiling the C++ and comparing with JAX"]
    progress = captured.err.splitlines()
    assert [line.split(" ...")[0] for line in progress] == steps, captured.err
    assert all(line.endswith(" s") for line in progress)
    # the summary: operators, weights, files, check result
    printed = captured.out
    assert "PASSED" in printed and "check: passed" in printed
    assert "operators: " in printed and "J2S_Dense×1" in printed
    assert "weight data: 108 B (text)" in printed
    assert f"files: {out / 'Makefile'} (" in printed and "Tagger.hxx (" in printed
    # the C++ user's re-check: compiles and runs Tagger_test.cpp
    assert main(["check", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Tagger: OK" in printed and "check: 1 of 1 passed" in printed
    # a changed weight value: the numbers differ
    weights = (out / "Tagger.dat").read_text()
    head, values = weights.split("tensor_dense_kernel 24\n", 1)
    (out / "Tagger.dat").write_text(head + "tensor_dense_kernel 24\n9.5 " + values.split(" ", 1)[1])
    assert main(["check", str(out)]) == 1
    assert "MISMATCH" in capsys.readouterr().out
    # a value too many: the Session refuses the file, and the check says why
    (out / "Tagger.dat").write_text(weights.replace("tensor_dense_kernel 24\n", "tensor_dense_kernel 24\n9 "))
    assert main(["check", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "check: 0 of 1 passed" in printed and "weight file" in printed and "tensor_dense_kernel" in printed


def test_dynamic_batch_and_linen_module_with_variables(models_module, tmp_path, capsys):
    """--dynamic-batch: the C++ test runs the Session at the reference batch; a (linen module, variables)
    pair converts like (module.apply, variables)."""
    out = tmp_path / "dyn"
    assert main(["convert", f"{models_module}:model", "--input-shape", "3,8", "--dynamic-batch", "-o", str(out)]) == 0
    assert "inputs:  x float32['bs', 8]" in capsys.readouterr().out
    assert main(["check", str(out)]) == 0
    assert "Tagger: OK" in capsys.readouterr().out
    out = tmp_path / "linen"
    assert main(["convert", f"{models_module}:linen_and_variables", "--input-shape", "2,4", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "operators: 1 (J2S_Dense×1)" in printed and "check: not run" in printed
    assert (out / "Dense.hxx").exists()


def test_convert_fn_params_pair_with_name(models_module, tmp_path):
    out = tmp_path / "out"
    assert main(["convert", f"{models_module}:fn_and_params", "--input-shape", "3,4", "--name", "dense",
                 "-o", str(out)]) == 0
    assert {"dense.dat", "dense.hxx"} <= {p.name for p in out.iterdir()}


def test_exit_codes(models_module, tmp_path, capsys):
    assert main(["convert", "no_colon_here", "--input-shape", "1", "-o", str(tmp_path)]) == 2
    assert "nor of the form package.module:object" in capsys.readouterr().err
    assert main(["convert", f"{models_module}:model", "--input-shape", "2,x", "-o", str(tmp_path)]) == 2
    assert main(["check", str(tmp_path / "nothing")]) == 2
    assert main(["convert", f"{models_module}:broken_pair", "--input-shape", "1,4", "-o", str(tmp_path / "x")]) == 1
    assert "rng_uniform" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as usage:
        main(["convert"])
    assert usage.value.code == 2


def test_example_npy_weights_and_force(models_module, tmp_path):
    import numpy as np

    example = tmp_path / "x.npy"
    np.save(example, np.ones((2, 8), np.float32))
    out = tmp_path / "out"
    args = ["convert", f"{models_module}:model", "--example", str(example), "-o", str(out), "--weights", "embedded"]
    assert main(args) == 0
    assert not (out / "Tagger.dat").exists()
    assert "const float input_x[] = {1.0f, 1.0f," in (out / "Tagger_test.cpp").read_text()  # the C++ reference
    assert main(args) == 1  # files exist: not overwritten
    assert main(args + ["--force"]) == 0


def test_inspect_lists_primitives(models_module, capsys):
    assert main(["inspect", f"{models_module}:broken_pair", "--input-shape", "1,4"]) == 0
    printed = capsys.readouterr().out
    assert "UNSUPPORTED" in printed and "rng_uniform" in printed and "cli_models.py" in printed
    assert "1 unsupported" in printed
    assert main(["inspect", f"{models_module}:folded_pair", "--input-shape", "1,4"]) == 0
    printed = capsys.readouterr().out
    assert "folded (depends only on params)" in printed and "0 unsupported" in printed
    assert "dot_general" in printed and "lowered" in printed


def test_help_explains_every_option_with_examples(capsys):
    for command, options in {
        "convert": ("--input-shape", "--example", "--output", "--weights", "--dynamic-batch", "--check", "--strict",
                    "--force", "--name"),
        "check": ("directory",),
        "inspect": ("--input-shape", "--example"),
    }.items():
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0
        text = capsys.readouterr().out
        for option in options:
            assert option in text, (command, option)
        assert "examples:" in text and "exit codes: 0 ok, 1 conversion or check failure, 2 usage error" in text
        assert "(linen_module, variables)" in text


def test_process_exit_codes(tmp_path):
    """The exit status of the real process (what a shell script sees): 0 help, 2 usage, 1 failure."""
    import os
    import subprocess
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=package_root() + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def status(*argv):
        return subprocess.run([sys.executable, "-m", "jax2sofie.cli", *argv], env=env, cwd=tmp_path,
                              capture_output=True, text=True).returncode

    (tmp_path / "shell_models.py").write_text("import jax\npair = (lambda p, x: jax.lax.rng_uniform(x[0], x[1], x.shape), {})\n")
    assert status("--help") == 0
    assert status("convert", "shell_models:pair") == 2  # no --input-shape / --example: argparse
    assert status("convert", "shell_models:pair", "--input-shape", "3", "-o", "out") == 1  # rng_uniform: unsupported
    assert not (tmp_path / "out").exists()
