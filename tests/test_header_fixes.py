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


def _reduce_sum_code(header: str) -> list[str]:
    """The generated statements of each SOFIE ReduceSum in a header (each up to the next operator)."""
    parts = header.split("//----  operator ReduceSum")[1:]
    return [part[:part.find("//--") if "//--" in part else len(part)] for part in parts]


@pytest.mark.parametrize("dynamic", [False, True])
def test_sofie_sums_over_leading_and_middle_axes_get_ivdep_and_numbers_match(tmp_path, dynamic):
    # a sum over two scattered axes (the batch and axis 2): SOFIE's ReduceSum, whose loop over the kept
    # last axis gets the pragma; sums over one run of axes (the middle axis, the last one) are
    # J2S_Reduce's vector kernels, not SOFIE's code
    def fn(p, x):
        return jnp.sum(x, axis=(0, 2)), jnp.mean(x, axis=1), jnp.sum(x, axis=-1)

    x = np.random.default_rng(2).standard_normal((3, 7, 2, 16)).astype(np.float32)
    model = jax2sofie.convert(fn, None, x, name="reduce_ivdep", dynamic_batch=dynamic)
    assert model.graph.op_counts().get("J2S_Reduce") == 2, model.graph.op_counts()
    header = next(p for p in model.write(tmp_path) if p.suffix == ".hxx").read_text()
    codes = _reduce_sum_code(header)
    assert len(codes) == 1, header
    ivdep = "#pragma GCC ivdep\n#endif\n"
    assert all(ivdep in code for code in codes), codes
    for code in codes:  # right before the loop over the kept axis
        loop = code[code.index(ivdep) + len(ivdep):].splitlines()
        assert re.match(r"\s*for \(size_t (i_\d+|j) = 0;", loop[0]) and "+=" in "".join(loop[1:3]), code
    for batch in ([3, 5] if dynamic else [3]):
        xb = np.random.default_rng(batch).standard_normal((batch, 7, 2, 16)).astype(np.float32)
        assert model.check(xb).passed


def test_negative_zeros_of_float_initializers_keep_their_sign():
    from jax2sofie.header_fixes import keep_negative_zeros

    code = ("float fTensor_a[4] = { -0, 0, -0.5, 1e-05};\n"
            "std::vector<float> fTensor_b = std::vector<float>(200, -0);\n"
            "int64_t fTensor_c[1] = { -0};\n"
            "   const float t = x - 0;\n")
    assert keep_negative_zeros(code) == ("float fTensor_a[4] = { -0.0f, 0, -0.5, 1e-05};\n"
                                         "std::vector<float> fTensor_b = std::vector<float>(200, -0.0f);\n"
                                         "int64_t fTensor_c[1] = { -0};\n"
                                         "   const float t = x - 0;\n")
