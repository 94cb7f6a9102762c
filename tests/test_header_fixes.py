"""The changes made to SOFIE's generated header text: outputs moved, not copied, out of infer()
(the changes that remove warnings: tests/test_warnings.py)."""
from __future__ import annotations

import re

import jax.numpy as jnp
import numpy as np
import pytest

import jax2sofie
from jax2sofie.header_fixes import move_outputs_out_of_infer


def test_return_statement_moves_each_output():
    code = "   doInfer(*this, tensor_x, output_tensor_a.data(), output_tensor_b.data() );\n" \
           "   return {output_tensor_a,output_tensor_b};\n}\n"
    fixed = move_outputs_out_of_infer(code)
    assert "   return {std::move(output_tensor_a), std::move(output_tensor_b)};\n" in fixed
    assert fixed.replace("   return {std::move(output_tensor_a), std::move(output_tensor_b)};",
                         "   return {output_tensor_a,output_tensor_b};") == code


def test_a_single_output_is_returned_by_name():
    assert move_outputs_out_of_infer("   return {output_tensor_y};\n") == "   return output_tensor_y;\n"


def test_other_code_is_left_alone():
    code = "   return {tensor_a};\n   return {output_tensor_a + 1};\n"
    assert move_outputs_out_of_infer(code) == code


@pytest.mark.parametrize("outputs", ["one", "same_types", "mixed_types"])
def test_written_header_moves_outputs_and_numbers_match(tmp_path, outputs):
    # one output: std::vector; two float outputs: a vector of vectors; float and int: a std::tuple
    def fn(p, x):
        y = jnp.tanh(x @ p["w"])
        if outputs == "one":
            return y
        if outputs == "same_types":
            return y, y * 2.0
        return y, jnp.argmax(y, axis=-1).astype(jnp.int64)

    params = {"w": np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)}
    x = np.random.default_rng(1).standard_normal((4, 5)).astype(np.float32)
    model = jax2sofie.convert(fn, params, x, name=f"moved_{outputs}")
    header = next(p for p in model.write(tmp_path) if p.suffix == ".hxx").read_text()
    body = header[header.index(" infer("):]
    returned = body[body.index("   return "):].splitlines()[0]
    if outputs == "one":  # by name: constructed in place, or moved
        assert re.fullmatch(r"   return output_tensor_\w+;", returned)
    else:
        assert returned.startswith("   return {std::move(output_tensor_") and returned.count("std::move") == 2
    assert model.check(x).passed
