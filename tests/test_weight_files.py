"""Damaged weight files: a missing, truncated or corrupted `.dat` / `.safetensors` file, or one of another
model (same tensor names, other shapes), makes the Session constructor throw a std::runtime_error whose
message names the file and the tensor (jax2sofie/header_fixes.py, checked_weight_reading): never a
crash, never a Session that runs on zeros or on half-read values.

One C++ program per weight format, built with AddressSanitizer and UndefinedBehaviorSanitizer, loads the
file given on its command line and prints the model's output or the exception's message; any other
exception (SOFIE's text reader threw std::invalid_argument("stof")) aborts it and fails the test."""
from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie.runtime import find_blas, find_compiler

FLAGS = ["-std=c++17", "-O0", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]

_PROGRAM = """#include "mlp.hxx"
#include <cstdio>
#include <stdexcept>
int main(int argc, char **argv)
{
   const float x[2 * 16] = {%s};
   try {
      SOFIE_mlp::Session session(argv[1]);
      for (float v : session.infer(x))
         std::printf("%%.9g ", v);
      std::printf("\\n");
      return 0;
   } catch (std::runtime_error const &error) {
      std::printf("runtime_error: %%s\\n", error.what());
      return 3;
   }
}
"""


def _mlp(p, x):
    return jax.nn.softmax(jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"])


def _params(hidden=64, seed=0):
    rng = np.random.default_rng(seed)
    return {"w1": rng.standard_normal((16, hidden)).astype(np.float32) / 4,
            "b1": rng.standard_normal(hidden).astype(np.float32),
            "w2": rng.standard_normal((hidden, 4)).astype(np.float32) / 8}


X = np.random.default_rng(1).standard_normal((2, 16)).astype(np.float32)


@pytest.fixture(scope="module", params=["text", "safetensors"])
def program(request, tmp_path_factory):
    """(format, folder with the model's weight file, the built program, the JAX output)."""
    weights = request.param
    directory = tmp_path_factory.mktemp(weights)
    params = _params()
    model = jax2sofie.convert(_mlp, params, X, name="mlp")
    model.write(directory, weights=weights)
    (directory / "main.cpp").write_text(_PROGRAM % ", ".join(f"{v!r}f" for v in X.ravel().tolist()))
    compiler = find_compiler()
    build = subprocess.run([*compiler.command, *FLAGS, "-o", str(directory / "main"), str(directory / "main.cpp"),
                            *find_blas(compiler)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    return weights, directory, directory / "main", np.asarray(_mlp(params, X)).ravel()


def _run(program: Path, weight_file: Path) -> tuple[int, str]:
    run = subprocess.run([str(program), str(weight_file)], capture_output=True, text=True, timeout=120)
    assert run.returncode in (0, 3), f"crashed (exit {run.returncode}):\n{run.stdout}{run.stderr[-3000:]}"
    return run.returncode, run.stdout


def _error(program: Path, weight_file: Path) -> str:
    code, output = _run(program, weight_file)
    assert code == 3, f"loaded a bad weight file without an error; output {output}"
    assert output.startswith("runtime_error: "), output
    assert str(weight_file) in output, output  # names the file
    return output


# -- writing weight files as SOFIE writes them ----------------------------------------------------------------

def _dat(tensors: dict[str, np.ndarray]) -> str:
    return "".join(f"{name} {a.size}\n" + " ".join(f"{v:.9g}" for v in a.ravel()) + "\n" for name, a in tensors.items())


def _safetensors(tensors: dict[str, np.ndarray], dtype: str = "F32") -> bytes:
    header, data = {}, b""
    for name, a in tensors.items():
        raw = np.ascontiguousarray(a, np.float64 if dtype == "F64" else np.float32).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _tensors(params) -> dict[str, np.ndarray]:
    """The model's weights under their names in the file, in the order the Session reads them."""
    return {"tensor_w2": params["w2"], "tensor_b1": params["b1"], "tensor_w1": params["w1"]}


def _write(directory: Path, weights: str, tensors: dict[str, np.ndarray], name: str) -> Path:
    path = directory / (name + (".dat" if weights == "text" else ".safetensors"))
    if weights == "text":
        path.write_text(_dat(tensors))
    else:
        path.write_bytes(_safetensors(tensors))
    return path


def test_the_written_file_and_a_rewritten_one_load_and_match_jax(program):
    weights, directory, main, expected = program
    written = directory / ("mlp.dat" if weights == "text" else "mlp.safetensors")
    for path in (written, _write(directory, weights, _tensors(_params()), "rewritten")):
        code, output = _run(main, path)
        assert code == 0, output
        np.testing.assert_allclose(np.array(output.split(), np.float32), expected, rtol=1e-4, atol=1e-5)


def test_a_missing_file(program):
    _, directory, main, _ = program
    assert "failed to open" in _error(main, directory / "no_such_file.dat")


def test_a_weight_file_of_another_model_with_other_shapes(program):
    weights, directory, main, _ = program
    other = _write(directory, weights, _tensors(_params(hidden=32)), "other")
    output = _error(main, other)
    assert "tensor_w2" in output, output  # the first tensor read, (32, 4) in the file, (64, 4) in the model
    assert ("holds 128 values, the model needs 256" if weights == "text" else "has 512 bytes , expected 1024") in output


def test_same_names_and_sizes_other_shapes(program):
    """(16, 64) and (64, 16) hold as many values: the text format stores only the length, a safetensors
    file the shape, which the Session now checks."""
    weights, directory, main, _ = program
    tensors = _tensors(_params())
    tensors["tensor_w1"] = tensors["tensor_w1"].reshape(64, 16)
    path = _write(directory, weights, tensors, "transposed")
    if weights == "text":
        assert _run(main, path)[0] == 0  # cannot be told apart: same names, same lengths
    else:
        output = _error(main, path)
        assert "tensor tensor_w1 has shape (64, 16) in the file, the model needs (16, 64)" in output, output


def _truncations(weights: str, data: bytes) -> dict[str, tuple[bytes, str]]:
    """Truncated copies of the written file: {what: (content, the tensor the message must name)}."""
    if weights == "text":
        text = data.decode()
        last_line = text.rstrip("\n").rfind("\n")
        w1_header = text.index("tensor_w1 ")
        return {
            "empty": (b"", "tensor_w2"),
            "inside the last value": (data[:-4], "tensor_w1"),
            "after a value": (text[:text.rindex(" ")].encode(), "tensor_w1"),
            "after the last tensor's length": (text[:last_line + 1].encode(), "tensor_w1"),
            "inside a tensor name": (text[:w1_header + 5].encode(), "tensor_w1"),
            "before the last tensor": (text[:w1_header].encode(), "tensor_w1"),
        }
    header_size = struct.unpack("<Q", data[:8])[0]
    return {
        "empty": (b"", ""),
        "inside the header size": (data[:5], ""),
        "inside the JSON header": (data[:8 + header_size // 2], ""),
        "inside the data": (data[:-10], "tensor_w1"),  # written last, as _safetensors orders them
    }


TRUNCATIONS = {"text": ["empty", "inside the last value", "after a value", "after the last tensor's length",
                        "inside a tensor name", "before the last tensor"],
               "safetensors": ["empty", "inside the header size", "inside the JSON header", "inside the data"]}


@pytest.mark.parametrize("program, where", [(f, w) for f, places in TRUNCATIONS.items() for w in places],
                         indirect=["program"])
def test_a_truncated_file(program, where):
    weights, directory, main, _ = program
    data = _write(directory, weights, _tensors(_params()), "full").read_bytes()
    content, tensor = _truncations(weights, data)[where]
    path = directory / f"truncated_{where.replace(' ', '_').replace(chr(39), '')}"
    path.write_bytes(content)
    output = _error(main, path)
    assert tensor in output, output


def _corruptions(weights: str, data: bytes) -> dict[str, tuple[bytes, str]]:
    if weights == "text":
        text = data.decode()
        lines = text.splitlines(keepends=True)
        values = lines[1].split(" ")  # tensor_w2's values
        bad = {}
        for what, token in (("letters", "abc"), ("a number with a tail", "0.5x3"), ("an overflow", "1e99")):
            changed = list(lines)
            changed[1] = " ".join([values[0], token] + values[2:])
            bad[what] = ("".join(changed).encode(), "tensor_w2")
        bad["a length that is not a number"] = (text.replace("tensor_b1 64", "tensor_b1 6x4").encode(), "tensor_b1")
        bad["another tensor name"] = (text.replace("tensor_b1 64", "tensor_bias 64").encode(), "tensor_b1")
        bad["more after the last tensor"] = ((text + "tensor_extra 1\n0.5\n").encode(), "tensor_w1")
        return bad
    header_size = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + header_size].decode()
    return {
        "a header size past the end": (struct.pack("<Q", 1 << 20) + data[8:], ""),
        "damaged JSON": ((data[:8] + header.replace('"dtype"', '"dtype}', 1).encode() + data[8 + header_size:]), ""),
        "offsets past the data": ((data[:8] + header.replace('"data_offsets": [0, 1024]', '"data_offsets": [0, 9999]')
                                   .encode() + data[8 + header_size:]), "tensor_w2"),
        "another dtype": (_safetensors(_tensors(_params()), dtype="F64"), "tensor_w2"),
        "a tensor missing": (_safetensors({k: v for k, v in _tensors(_params()).items() if k != "tensor_b1"}),
                             "tensor_b1"),
    }


CORRUPTIONS = {"text": ["letters", "a number with a tail", "an overflow", "a length that is not a number",
                        "another tensor name", "more after the last tensor"],
               "safetensors": ["a header size past the end", "damaged JSON", "offsets past the data", "another dtype",
                               "a tensor missing"]}


@pytest.mark.parametrize("program, what", [(f, w) for f, kinds in CORRUPTIONS.items() for w in kinds],
                         indirect=["program"])
def test_a_corrupted_file(program, what):
    weights, directory, main, _ = program
    data = _write(directory, weights, _tensors(_params()), "full").read_bytes()
    content, tensor = _corruptions(weights, data)[what]
    if weights == "safetensors" and what == "offsets past the data":
        assert content != data  # the replaced offsets were there
    path = directory / f"corrupted_{what.replace(' ', '_')}"
    path.write_bytes(content)
    output = _error(main, path)
    assert tensor in output, output


def test_embedded_weights_of_another_length_stop_the_write(tmp_path):
    """Embedded weights cannot be damaged after the fact (they are compiled in); the header is checked when
    written: an initializer that does not hold its weight's number of values would make a vector the
    kernels read past."""
    from jax2sofie.header_fixes import HeaderFixError, checked_weight_reading

    model = jax2sofie.convert(_mlp, _params(), X, name="mlp")
    model.write(tmp_path, weights="embedded")
    code = (tmp_path / "mlp.hxx").read_text()
    shapes = {f"tensor_{v.name}": tuple(v.shape) for v in model.graph.constants() if v.is_weight}
    assert checked_weight_reading(code, shapes) == code  # the written header holds every value
    start = code.index("std::vector<float> fTensor_b1 = {")
    first_comma = code.index(",", start)
    short = code[:first_comma] + code[code.index(",", first_comma + 1):]  # one value less
    with pytest.raises(HeaderFixError, match=r"embeds 63 values for weight tensor_b1, whose shape \(64,\) has 64"):
        checked_weight_reading(short, shapes)
