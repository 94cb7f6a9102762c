"""The command line on a Flax nnx module and on a (fn, params) pair: files written, check run, exit codes."""
from __future__ import annotations

import sys
import textwrap

import pytest

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
    def broken(params, x):
        return jnp.sort(x)
    broken_pair = (broken, {})
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
    printed = capsys.readouterr().out
    assert "PASSED" in printed and "check: passed" in printed
    # the C++ user's re-check: compiles and runs Tagger_test.cpp
    assert main(["check", str(out)]) == 0
    assert "Tagger: OK" in capsys.readouterr().out
    (out / "Tagger.dat").write_text((out / "Tagger.dat").read_text().replace("tensor_dense_kernel 24\n",
                                                                               "tensor_dense_kernel 24\n9 "))
    assert main(["check", str(out)]) == 1


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
    assert "sort" in capsys.readouterr().err
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
    assert main(args) == 1  # files exist: not overwritten
    assert main(args + ["--force"]) == 0


def test_inspect_lists_primitives(models_module, capsys):
    assert main(["inspect", f"{models_module}:broken_pair", "--input-shape", "1,4"]) == 0
    printed = capsys.readouterr().out
    assert "UNSUPPORTED" in printed and "sort" in printed and "cli_models.py" in printed


def test_help_mentions_every_option(capsys):
    import pytest as _pytest

    with _pytest.raises(SystemExit):
        main(["convert", "--help"])
    text = capsys.readouterr().out
    for option in ("--input-shape", "--example", "--weights", "--dynamic-batch", "--check", "--strict", "--force",
                   "--name", "examples:"):
        assert option in text
