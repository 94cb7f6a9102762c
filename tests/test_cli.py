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
    assert sorted(p.name for p in out.iterdir()) == ["Tagger.dat", "Tagger.hxx"]
    assert "PASSED" in capsys.readouterr().out


def test_convert_fn_params_pair_with_name(models_module, tmp_path):
    out = tmp_path / "out"
    assert main(["convert", f"{models_module}:fn_and_params", "--input-shape", "3,4", "--name", "dense",
                 "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dense.dat", "dense.hxx"]


def test_exit_codes(models_module, tmp_path, capsys):
    assert main(["convert", "no_colon_here", "--input-shape", "1", "-o", str(tmp_path)]) == 2
    assert "not of the form package.module:object" in capsys.readouterr().err
    assert main(["convert", f"{models_module}:broken_pair", "--input-shape", "1,4", "-o", str(tmp_path / "x")]) == 1
    assert "sort" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as usage:
        main(["convert"])
    assert usage.value.code == 2
