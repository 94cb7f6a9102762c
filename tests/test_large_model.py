"""A model with more than 50 MB of weights (generated, not trained) written as SOFIE's text weight file
and as safetensors; its standalone C++ reference check (`make test`) passes for both.

Embedded weights are tested on smaller models (tests/test_models.py): a 50 MB array literal in the
header takes g++ many minutes and gigabytes of memory to compile, which is not how such a model
should be shipped.
"""
from __future__ import annotations

import subprocess

import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie

N = 3620  # one 3620 x 3620 float32 kernel: 52.4 MB


@pytest.fixture(scope="module")
def large_model():
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal((N, N), dtype=np.float32) / np.float32(np.sqrt(N))
    bias = rng.standard_normal(N, dtype=np.float32)
    return jax2sofie.convert(lambda p, x: jnp.tanh(x @ p["kernel"] + p["bias"]), {"kernel": kernel, "bias": bias},
                             np.ones((1, N), np.float32), name="large")


@pytest.mark.parametrize("weights, weight_file", [("text", "large.dat"), ("safetensors", "large.safetensors")])
def test_large_model_reference_check_passes(large_model, weights, weight_file, tmp_path):
    weight_bytes = sum(v.const.nbytes for v in large_model.graph.constants() if v.is_weight)
    assert weight_bytes >= 50e6
    paths = large_model.write(tmp_path, weights=weights, test=True)
    assert sorted(p.name for p in paths) == sorted(["Makefile", "large.hxx", "large_test.cpp", weight_file])
    assert (tmp_path / weight_file).stat().st_size >= 50e6
    run = subprocess.run(["make", "-s", "test"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert f"output: {N} values match" in run.stdout and "large: OK" in run.stdout
