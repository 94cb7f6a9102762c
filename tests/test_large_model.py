"""A model with more than 50 MB of weights (generated, not trained) written as SOFIE's text weight file,
as safetensors and embedded in the header; its standalone C++ reference check (`make test`) passes for
each.

The embedded header holds one 13-million-element array literal (195 MB of text): g++ needs ~2 minutes
and ~7 GB to compile it even at -O0 (which the test uses: optimisation changes nothing in parsing the
literal), so a model this size is better shipped with a weight file; the test shows that it still works.
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


@pytest.mark.parametrize("weights, weight_file", [("text", "large.dat"), ("safetensors", "large.safetensors"),
                                                  ("embedded", "large.hxx")])
def test_large_model_reference_check_passes(large_model, weights, weight_file, tmp_path):
    weight_bytes = sum(v.const.nbytes for v in large_model.graph.constants() if v.is_weight)
    assert weight_bytes >= 50e6
    paths = large_model.write(tmp_path, weights=weights, test=True)
    assert sorted(p.name for p in paths) == sorted({"Makefile", "large.hxx", "large_test.cpp", weight_file})
    assert (tmp_path / weight_file).stat().st_size >= 50e6
    flags = ["CXXFLAGS=-O0 -std=c++17"] if weights == "embedded" else []
    run = subprocess.run(["make", "-s", "test", *flags], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    assert f"output: {N} values match" in run.stdout and "large: OK" in run.stdout
