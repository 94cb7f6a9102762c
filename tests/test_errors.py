"""Bad input gives one clear error that names the problem and where it is."""
from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jax2sofie
from jax2sofie import ConversionError, UnsupportedPrimitivesError


def _line_of(text: str) -> int:
    """The number of the first line of this file that contains `text`."""
    lines = Path(__file__).read_text().splitlines()
    return next(n for n, line in enumerate(lines, start=1) if text in line and "_line_of" not in line)


def uses_three_unsupported(params, x):
    y = lax.rng_uniform(x[0, 0], 1.0, x.shape) * x
    c = lax.complex(y, x)
    z = lax.real(c) @ params["w"]
    return lax.rng_uniform(z[0, 0], 1.0, z.shape) + z


def test_every_unsupported_primitive_is_reported_at_once_with_file_and_line():
    x = np.ones((3, 4), np.float32)
    with pytest.raises(UnsupportedPrimitivesError) as info:
        jax2sofie.convert(uses_three_unsupported, {"w": np.ones((4, 4), np.float32)}, x)
    error = info.value
    assert error.primitives == ["complex", "real", "rng_uniform"]
    message = str(error)
    assert "3 JAX primitive(s)" in message and "4 use(s)" in message
    for text in ("lax.rng_uniform(x[0, 0]", "lax.complex(y", "lax.real(c)", "lax.rng_uniform(z[0, 0]"):
        assert f"test_errors.py:{_line_of(text)}" in message, (text, message)
    assert "uses_three_unsupported" in message


def test_unsupported_primitives_inside_jit_are_found():
    with pytest.raises(UnsupportedPrimitivesError) as info:
        jax2sofie.convert(lambda p, x: jax.jit(lambda y: lax.rng_uniform(y[0], 1.0, y.shape) + y)(x), None,
                          np.ones(3, np.float32))
    assert info.value.primitives == ["rng_uniform"]


def test_unsupported_primitive_on_params_only_is_folded_not_reported():
    w = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)

    def fn(params, x):
        return x @ jnp.sort(jnp.sin(params["w"]), axis=0)

    model = jax2sofie.convert(fn, {"w": w}, np.ones((2, 4), np.float32))
    assert model.graph.op_counts() == {"J2S_Dense": 1}
    report = model.check(np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32))
    assert report.passed, str(report)


def test_params_that_are_not_arrays_are_refused():
    with pytest.raises(ConversionError, match="param 'w' is a str"):
        jax2sofie.convert(lambda p, x: x, {"w": "not an array"}, np.ones(3, np.float32))


def test_example_input_that_is_not_an_array_is_refused():
    with pytest.raises(ConversionError, match="example input 0 is a list"):
        jax2sofie.convert(lambda p, x: x, None, [1.0, 2.0])


def test_missing_params_argument():
    with pytest.raises(ConversionError, match="params argument is missing"):
        jax2sofie.convert(lambda p, x: x)


def test_check_with_wrong_input_shape():
    model = jax2sofie.convert(lambda p, x: x * 2.0, None, np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"input 'x' has shape \(3, 3\)"):
        model.check(np.ones((3, 3), np.float32))


def test_rule_error_names_the_dtype_and_the_line():
    def fn(p, x, t):
        return x + jnp.sign(t.astype(jnp.uint32)).astype(jnp.float32)

    with pytest.raises(jax2sofie.LoweringError,
                       match=r"'sign' on uint32 values is not supported: the generated code holds uint32 as int64 "
                             r"[^\n]*\(cast to int32 before this operation\)\n  at .*test_errors.py:\d+"):
        jax2sofie.convert(fn, None, np.ones(3, np.float32), np.ones(3, np.int32))


def test_input_dependent_randomness_is_reported_with_its_reason():
    def fn(p, x, seed):
        return x + jax.random.normal(jax.random.key(seed[0]), x.shape)

    with pytest.raises(UnsupportedPrimitivesError, match="random number generation has no place"):
        jax2sofie.convert(fn, None, np.ones(3, np.float32), np.ones(1, np.int32))


def test_randomness_from_a_fixed_key_is_folded_into_a_constant():
    def fn(p, x):
        return x + jax.random.normal(jax.random.key(0), x.shape)

    with pytest.warns(RuntimeWarning, match="random numbers drawn with a fixed key are baked into the model"):
        model = jax2sofie.convert(fn, None, np.ones(3, np.float32))
    assert model.graph.op_counts() == {"J2S_Elementwise": 1}  # x + the folded constant
    assert model.check(np.arange(3, dtype=np.float32)).passed


def test_int_input_returned_as_output_is_copied():
    model = jax2sofie.convert(lambda p, t: lax.stop_gradient(t), None, np.ones(3, np.int32))
    assert model.graph.op_counts() == {"Identity": 1}
    assert model.check(np.array([3, -7, 2**31 - 1], np.int32)).passed


def test_nan_weights_warn_and_strict_refuses():
    w = np.ones((3, 2), np.float32)
    w[1, 1] = np.nan
    with pytest.warns(RuntimeWarning, match=r"weight 'w' has 1 NaN/Inf value\(s\) of 6"):
        jax2sofie.convert(lambda p, x: x @ p["w"], {"w": w}, np.ones((1, 3), np.float32))
    with pytest.raises(ConversionError, match=r"weight 'w' has 1 NaN/Inf.*strict"):
        jax2sofie.convert(lambda p, x: x @ p["w"], {"w": w}, np.ones((1, 3), np.float32), strict=True)


def test_bfloat16_model_is_refused_with_the_line():
    w = jnp.ones((3, 2), jnp.bfloat16)
    with pytest.raises(ConversionError, match=r"computes in bfloat16 .*test_errors.py:\d+.*cast the params"):
        jax2sofie.convert(lambda p, x: x.astype(jnp.bfloat16) @ p["w"], {"w": w}, np.ones((1, 3), np.float32))


def test_zero_size_input_is_refused():
    with pytest.raises(ConversionError, match=r"example input 0 has shape \(0, 3\): zero-size"):
        jax2sofie.convert(lambda p, x: x * 2.0, None, np.ones((0, 3), np.float32))


def test_names_that_would_clash_in_cpp_get_distinct_identifiers(tmp_path):
    """Weights and inputs whose sanitised names collide, C++ keywords as input, output and model names."""
    params = {"a/b": np.full(2, 1.0, np.float32), "a_b": np.full(2, 2.0, np.float32), "a-b": np.full(2, 3.0, np.float32)}

    def fn(p, x, y, z):
        return {"int": x * p["a/b"] + p["a_b"] - p["a-b"] + y, "new": z * 2.0}

    x = np.ones(2, np.float32)
    model = jax2sofie.convert(fn, params, x, x, x, input_names=["in/put", "in_put", "class"], name="namespace")
    names = [v.name for v in model.graph.constants() if v.is_weight]
    assert len(set(names)) == 3 and "a_b" in names
    assert [v.name for v in model.graph.inputs] == ["in_put", "in_put_1", "class"]
    assert [v.name for v in model.graph.outputs] == ["output_int", "output_new"]
    rng = np.random.default_rng(0)
    report = model.check(*(rng.standard_normal(2).astype(np.float32) for _ in range(3)))
    assert report.passed, str(report)
    bad_name = jax2sofie.convert(lambda p, x: x * 2.0, None, x, name="my model-1!")
    assert bad_name.name == "my_model_1" and "namespace SOFIE_my_model_1" in bad_name.rmodel.return_generated()


def test_example_input_of_the_wrong_shape_names_the_input_and_line():
    def fn(p, x):
        return x @ p["w"]

    with pytest.raises(ConversionError) as info:
        jax2sofie.convert(fn, {"w": np.ones((4, 2), np.float32)}, np.ones((2, 3), np.float32))
    message = str(info.value)
    assert "cannot be traced with the example input(s) x: float32[2, 3]" in message
    assert "contracting dimensions" in message and f"test_errors.py:{_line_of('return x @ p[')}" in message


def test_float64_model_is_refused_with_the_line():
    with jax.enable_x64(True):
        with pytest.raises(ConversionError, match=r"param 'w' is float64"):
            jax2sofie.convert(lambda p, x: x @ p["w"], {"w": np.ones((3, 2))}, np.ones((1, 3), np.float32))
        with pytest.raises(ConversionError, match=r"example input 0 is float64"):
            jax2sofie.convert(lambda p, x: x * 2.0, None, np.ones((1, 3)))
        with pytest.raises(ConversionError, match=r"computes in float64 .*test_errors.py:\d+"):
            jax2sofie.convert(lambda p, x: x.astype(jnp.float64) * 2, None, np.ones((1, 3), np.float32))


def test_zero_size_output_is_refused_with_the_line():
    # a zero-size intermediate that drops out converts (catalog: concatenate_drops_zero_size_parts);
    # an empty output cannot
    with pytest.raises(ConversionError, match=r"(?s)zero-size array of shape \(2, 0\).*test_errors.py:\d+"):
        jax2sofie.convert(lambda p, x: (x @ p["w"]) * 2.0, {"w": np.ones((3, 0), np.float32)},
                          np.ones((2, 3), np.float32))


def test_zero_size_operand_next_to_computed_values_is_refused_with_the_line():
    with pytest.raises(jax2sofie.LoweringError,
                       match=r"(?s)'pad' reads a zero-size array of shape \(2, 0\).*test_errors.py:\d+"):
        jax2sofie.convert(lambda p, x: lax.pad(x[:, :0], x[0, 0], ((0, 0, 0), (2, 2, 0))), None,
                          np.ones((2, 3), np.float32))


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    model = jax2sofie.convert(lambda p, x: x * 2.0, None, np.ones(2, np.float32))
    with pytest.raises(OSError, match=r"cannot write model 'model' into .*file/out"):
        model.write(blocker / "out")
    assert blocker.read_text() == "not a directory"


def test_dynamic_batch_refuses_inputs_whose_first_dimensions_differ():
    """An outer product of a 4- and a 3-vector has no batch: one symbol for both first dimensions would
    compute something else than JAX at every batch size."""
    with pytest.raises(ConversionError) as info:
        jax2sofie.convert(lambda p, row, column: jnp.outer(row, column), None, np.ones(4, np.float32),
                          np.ones(3, np.float32), dynamic_batch=True)
    message = str(info.value)
    assert "dynamic_batch=True" in message and "first dimensions differ" in message
    assert "'row' (input 0, shape (4,)) has 4" in message and "'column' (input 1, shape (3,)) has 3" in message
    # the same function converts with static shapes
    model = jax2sofie.convert(lambda p, row, column: jnp.outer(row, column), None, np.ones(4, np.float32),
                              np.ones(3, np.float32))
    assert model.graph.outputs[0].shape == (4, 3)


def test_searchsorted_converts_with_every_method():
    # the default method ('scan') bisects with uint32 bounds, held as int64 (lowering/unsigned.py)
    sorted_values = np.sort(np.linspace(-2.0, 3.0, 10).astype(np.float32))
    queries = np.linspace(-3.0, 4.0, 12, dtype=np.float32).reshape(3, 4)
    for method in ("scan", "compare_all", "sort"):
        model = jax2sofie.convert(lambda p, q, s: jnp.searchsorted(s, q, method=method), None, queries,
                                  sorted_values)
        assert model.check(queries, sorted_values).passed, method


def test_uint32_outputs_inputs_and_other_unsigned_types_are_refused():
    x = np.arange(6, dtype=np.int32)
    with pytest.raises(ConversionError, match=r"output 1 of the model is uint32: the generated code has no unsigned "
                                              r"tensors; cast the output to int32"):
        jax2sofie.convert(lambda p, t: (t, t.astype(jnp.uint32) + 1), None, x)
    with pytest.raises(ConversionError, match=r"a uint32 model input is not supported \(.*\): pass it as int32"):
        jax2sofie.convert(lambda p, u: (u + 1).astype(jnp.int32), None, x.astype(np.uint32))
    with pytest.raises(ConversionError, match=r"'convert_element_type' on uint8 values is not supported \(of the "
                                              r"unsigned integers only uint32 is"):
        jax2sofie.convert(lambda p, t: (t.astype(jnp.uint8) + 1).astype(jnp.int32), None, x)


def test_scaled_dot_of_float8_computed_at_run_time_is_refused():
    # a constant float8 operand is widened at conversion time (the catalog's scaled_dot_float8_weights)
    x, scale = np.ones((2, 32), np.float32), np.ones((2, 1), np.float32)
    w, w_scale = jnp.ones((32, 3), jnp.float8_e4m3fn), jnp.ones((1, 3), jnp.float8_e8m0fnu)
    with pytest.raises(jax2sofie.LoweringError, match=r"scaled_dot with a float8_e4m3fn lhs computed at run time is "
                                                      r"not supported: the generated code has float32 tensors only"):
        jax2sofie.convert(lambda p, x, s: lax.scaled_dot(x.astype(jnp.float8_e4m3fn), w, lhs_scale=s, rhs_scale=w_scale,
                                                         dimension_numbers=(((1,), (0,)), ((), ())),
                                                         preferred_element_type=jnp.float32), None, x, scale)


def test_scaled_matmul_reason_says_jax_has_no_cpu_implementation():
    x = np.ones((1, 2, 32), np.float32)
    with pytest.raises(UnsupportedPrimitivesError, match=r"jax.nn.scaled_matmul has no CPU implementation in JAX"):
        jax2sofie.convert(lambda p, a: jax.nn.scaled_matmul(a, a, a[:, :, :1], a[:, :, :1]), None, x)
