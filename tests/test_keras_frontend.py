"""keras_frontend: in-memory models and a .keras saved on the JAX backend, the errors for files that
cannot work, the unsupported-primitive error naming the Keras layer, and the command line."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "jax"
keras = pytest.importorskip("keras")

import keras_frontend  # noqa: E402
import keras_test_models  # noqa: E402
from jax2sofie import ConversionError, UnsupportedPrimitivesError  # noqa: E402
from jax2sofie.cli import main  # noqa: E402


def _custom_model():
    x = keras.Input((5,), name="features")
    h = keras_test_models.ScaledSwish(name="swish")(keras.layers.Dense(6, name="dense_1")(x))
    return keras.Model(x, keras.layers.Dense(2, activation="softmax", name="head")(h), name="custom")


def test_in_memory_and_jax_saved_keras(tmp_path):
    """The same model in memory (fixed batch from an example) and from a .keras saved on JAX (its own
    input shapes, dynamic batch); weights named by Keras paths."""
    model = _custom_model()
    keras_test_models.randomise(model, np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    in_memory = keras_frontend.convert(model, example_input=x)
    assert in_memory.name == "custom" and in_memory.batch_param is None
    assert {"dense_1/kernel", "swish/beta", "swish/scale", "head/bias"} <= set(in_memory.traced.param_names)
    np.testing.assert_allclose(in_memory.run(x)[0], keras.ops.convert_to_numpy(model(x)), rtol=1e-4, atol=1e-5)

    model.save(tmp_path / "custom.keras")
    from_file = keras_frontend.convert(tmp_path / "custom.keras", name="custom_dyn")
    assert [str(d) for d in from_file.graph.inputs[0].shape] == ["bs", "5"]
    for batch in (1, 16):
        xb = np.random.default_rng(batch).standard_normal((batch, 5)).astype(np.float32)
        np.testing.assert_allclose(from_file.run(xb)[0], keras.ops.convert_to_numpy(model(xb)), rtol=1e-4,
                                   atol=1e-5)


def test_inputs_that_must_be_given():
    model = keras_test_models.Residual(4)
    with pytest.raises(ConversionError, match="is not built"):
        keras_frontend.convert(model)
    model.build((None, 4))  # the build shape is the input shape: a symbolic batch
    assert keras_frontend.convert(model).batch_param == "bs"
    assert keras_frontend.convert(model, input_shape=(2, 4)).check().passed
    with pytest.raises(ConversionError, match="not both"):
        keras_frontend.convert(model, example_input=np.zeros((1, 4)), input_shape=(1, 4))
    with pytest.raises(ConversionError, match="cannot convert a dict"):
        keras_frontend.convert({"not": "a model"})


def test_files_that_cannot_work(keras_saved, tmp_path):
    with pytest.raises(ConversionError, match="Lambda layer .* safe_mode=False"):
        keras_frontend.convert(keras_saved / "lambda.keras")
    with pytest.raises(ConversionError, match="Lambda layer"):
        keras_frontend.convert(keras_saved / "lambda.h5")
    with pytest.raises(ConversionError, match="TensorFlow SavedModel directory"):
        keras_frontend.convert(keras_saved / "saved_model")
    with pytest.raises(ConversionError, match="saved by Keras 2.15.0, which Keras 3 cannot load"):
        keras_frontend.convert(keras_saved / "keras2.keras")
    with pytest.raises(ConversionError, match="not a Keras model file"):
        keras_frontend.convert(keras_saved / "model.txt")
    with pytest.raises(ConversionError, match="no such file"):
        keras_frontend.convert(tmp_path / "missing.keras")
    # a file the user trusts: the Lambda's code is loaded and traced like any other layer
    trusted = keras_frontend.convert(keras_saved / "lambda.keras", safe_mode=False)
    assert trusted.check().passed


def test_unsupported_primitive_names_the_keras_layer(keras_saved):
    with pytest.raises(UnsupportedPrimitivesError) as error:
        keras_frontend.convert(keras_saved / "Unsupported_FFT.keras")
    assert "fft" in error.value.primitives
    assert "at Keras layer 'spectrum' (Spectrum)" in str(error.value)


def test_cli_converts_keras_files(keras_saved, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(keras_saved / "Sequential.keras"), "-o", str(out), "--check"]) == 0
    assert {"Sequential.hxx", "Sequential.dat", "Sequential_test.cpp"} <= {p.name for p in out.iterdir()}
    printed = capsys.readouterr().out
    assert "check: passed" in printed and "['bs', 12]" in printed
    assert main(["convert", str(keras_saved / "Dense.h5"), "--input-shape", "3,5", "--name", "dense3",
                 "-o", str(tmp_path / "out3")]) == 0
    assert "float32[3, 5]" in capsys.readouterr().out
    assert main(["convert", str(keras_saved / "saved_model"), "-o", str(out)]) == 1
    assert "TensorFlow SavedModel directory" in capsys.readouterr().err
    assert main(["convert", str(keras_saved / "lambda.keras"), "-o", str(out)]) == 1
    assert "Lambda layer" in capsys.readouterr().err
