"""Models and helpers shared by the C API tests (tests/test_c_api.py, tests/test_c_api_threads.py):
small models whose outputs are compared with JAX, and tests/c_api_client.c compiled with gcc."""
from __future__ import annotations

import subprocess
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

import jax2sofie

HERE = Path(__file__).parent
RTOL, ATOL = 1e-4, 1e-5


def mlp(p, x):
    return jax.nn.softmax(jax.nn.relu(x @ p["w1"] + p["b1"]) @ p["w2"])


def mlp_params():
    rng = np.random.default_rng(0)
    return {"w1": rng.standard_normal((16, 32)).astype(np.float32), "b1": rng.standard_normal(32).astype(np.float32),
            "w2": rng.standard_normal((32, 4)).astype(np.float32)}


def mixed(p, x, n):
    """Two inputs and two outputs of different dtypes (SOFIE's infer returns a std::tuple); the dense
    layer over the batch's rows calls BLAS's sgemm_."""
    return jax.nn.tanh(x @ p["w"]) @ jnp.swapaxes(x, 1, 2), (n * 3 - 1).sum(axis=1)


class CNN(nn.Module):
    """Padded convolutions (J2S_ConvNHWC, with a scratch buffer member) and a dense layer."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(4, (3, 3))(x))
        x = nn.relu(nn.Conv(6, (3, 3))(x))
        return nn.Dense(5)(x.reshape(x.shape[0], -1))


def cnn_model(name: str, batch: int = 2, dynamic_batch: bool = False):
    image = np.zeros((batch, 8, 8, 2), np.float32)
    variables = CNN().init(jax.random.PRNGKey(0), image)
    return jax2sofie.convert(CNN().apply, variables, image, name=name, dynamic_batch=dynamic_batch)


def random_inputs(model, batch: int, seed: int) -> list[np.ndarray]:
    """Inputs of the model's per-example shapes at `batch` (normal floats, small integers)."""
    rng = np.random.default_rng(seed)
    arrays = []
    for value in model.graph.inputs:
        shape = (batch, *value.shape[1:])
        if np.issubdtype(value.dtype, np.integer):
            arrays.append(rng.integers(-5, 6, shape).astype(value.dtype))
        else:
            arrays.append(rng.standard_normal(shape).astype(value.dtype))
    return arrays


def assert_matches(outputs, expected):
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        if np.issubdtype(want.dtype, np.floating):
            np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)
        else:
            np.testing.assert_array_equal(got, want)


def compile_client(directory: Path, name: str, cflags: tuple[str, ...] = ("-O2",)) -> Path:
    """tests/c_api_client.c compiled with gcc (plain C) against lib<name>.so in `directory`."""
    client = directory / "c_api_client"
    build = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", *cflags, "-pthread",
                            f"-DMODEL={name}", f'-DMODEL_HEADER="{name}_c.h"', f"-I{directory}",
                            str(HERE / "c_api_client.c"), "-o", str(client), f"-L{directory}", f"-l{name}",
                            f"-Wl,-rpath,{directory}"], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    return client


def write_sets(directory: Path, sets: list[list[np.ndarray]]) -> None:
    for k, inputs in enumerate(sets):
        for i, array in enumerate(inputs):
            np.ascontiguousarray(array).tofile(directory / f"set{k}_input{i}.bin")


def read_outputs(directory: Path, model, k: int, batch: int) -> list[np.ndarray]:
    return [np.fromfile(directory / f"set{k}_output{i}.bin", np.dtype(v.dtype)).reshape((batch, *v.shape[1:]))
            for i, v in enumerate(model.graph.outputs)]
