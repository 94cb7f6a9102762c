"""Keras test models, one per layer (or model structure), and the script that saves them.

Run as `python keras_test_models.py OUT_DIR [NAME ...]` with KERAS_BACKEND=tensorflow (any backend
works): builds the named models (all by default), gives every weight random values, saves
OUT_DIR/NAME.keras and OUT_DIR/NAME.h5 (where the legacy format can hold the model) and
OUT_DIR/NAME.npz with inputs and the backend's outputs at batch 1 and 16 (`in{i}_b{batch}`,
`out{j}_b{batch}`), and OUT_DIR/index.json listing what was written. Used by tests/test_keras_*.py and
benchmarks/keras_parser_table.py.
"""
from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np

import keras
from keras import layers

BATCHES = (1, 16)


@keras.saving.register_keras_serializable(package="jax2sofie_tests")
class ScaledSwish(layers.Layer):
    """A custom layer written with keras.ops: x * sigmoid(beta * x) * scale, beta and scale trained."""

    def build(self, input_shape):
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="beta")
        self.scale = self.add_weight(shape=(), initializer="ones", name="scale")

    def call(self, x):
        return x * keras.ops.sigmoid(self.beta * x) * self.scale


@keras.saving.register_keras_serializable(package="jax2sofie_tests")
class Residual(keras.Model):
    """A subclassed model: dense -> layer norm -> dense, plus a skip connection."""

    def __init__(self, units=8, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.hidden = layers.Dense(units, activation="tanh")
        self.norm = layers.LayerNormalization()
        self.out = layers.Dense(units)

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.norm.build(tuple(input_shape[:-1]) + (self.units,))
        self.out.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, x):
        return x + self.out(self.norm(self.hidden(x)))

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="jax2sofie_tests")
class Spectrum(layers.Layer):
    """Uses an FFT (complex numbers): primitives jax2sofie does not support (for the error test)."""

    def call(self, x):
        real, imag = keras.ops.fft((x, keras.ops.zeros_like(x)))
        return real * real + imag * imag


def _functional(inputs, outputs, name):
    return keras.Model(inputs, outputs, name=name)


def single(make_layer, shape, dtype="float32"):
    """A Functional model: Input(shape) -> the layer(s) made by make_layer() (a layer or a list)."""

    def build(name):
        x = keras.Input(shape, dtype=dtype, name="x")
        made = make_layer()
        y = x
        for layer in made if isinstance(made, list) else [made]:
            y = layer(y)
        return _functional(x, y, name)

    return build


def merge(make_layer, shapes):
    def build(name):
        xs = [keras.Input(s, name=f"x{i}") for i, s in enumerate(shapes)]
        return _functional(xs, make_layer()(xs), name)

    return build


def _sequential(name):
    return keras.Sequential([keras.Input((12,)), layers.Dense(16, activation="relu"), layers.Dropout(0.3),
                             layers.Dense(8, activation="tanh"), layers.Dense(3, activation="softmax")], name=name)


def _multi_io(name):
    jets, met = keras.Input((10,), name="jets"), keras.Input((4,), name="met")
    h = layers.Add()([layers.Dense(8, activation="relu", name="jets_dense")(jets),
                      layers.Dense(8, activation="relu", name="met_dense")(met)])
    h = layers.LayerNormalization(name="norm")(h)
    return _functional([jets, met], [layers.Dense(3, activation="softmax", name="cls")(h),
                                     layers.Dense(1, name="reg")(h)], name)


def _subclassed(name):
    model = Residual(8, name=name)
    model.build((None, 8))
    return model


def _normalization(name):
    norm = layers.Normalization()
    norm.adapt(np.random.default_rng(7).normal(3.0, 2.0, size=(64, 6)).astype(np.float32))
    x = keras.Input((6,), name="x")
    return _functional(x, layers.Dense(4)(norm(x)), name)


def _mha(name):
    query, value = keras.Input((5, 8), name="query"), keras.Input((6, 8), name="value")
    out = layers.MultiHeadAttention(num_heads=2, key_dim=4)(query, value)
    return _functional([query, value], out, name)


def _mha_mask(name):
    x = keras.Input((5, 8), name="x")
    return _functional(x, layers.MultiHeadAttention(num_heads=2, key_dim=4)(x, x, use_causal_mask=True), name)


def _attention(name):
    q, v = keras.Input((4, 6), name="q"), keras.Input((5, 6), name="v")
    return _functional([q, v], layers.Attention()([q, v]), name)


ACTIVATIONS = ["celu", "elu", "exponential", "gelu", "glu", "hard_shrink", "hard_sigmoid", "hard_silu", "hard_tanh",
               "leaky_relu", "linear", "log_sigmoid", "log_softmax", "mish", "relu", "relu6", "selu", "sigmoid",
               "silu", "soft_shrink", "softmax", "softplus", "softsign", "sparse_plus", "sparse_sigmoid", "sparsemax",
               "squareplus", "tanh", "tanh_shrink"]

L = layers
MODELS = {
    "Dense": single(lambda: L.Dense(7), (5,)),
    "Dense_rank3": single(lambda: L.Dense(4, activation="relu"), (3, 5)),
    **{f"Activation_{a}": single(lambda a=a: L.Activation(a), (6,)) for a in ACTIVATIONS},
    "ReLU": single(lambda: L.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.2), (6,)),
    "LeakyReLU": single(lambda: L.LeakyReLU(negative_slope=0.2), (6,)),
    "PReLU": single(lambda: L.PReLU(alpha_initializer="random_uniform"), (3, 4)),
    "ELU": single(lambda: L.ELU(alpha=0.7), (6,)),
    "Softmax": single(lambda: L.Softmax(axis=1), (3, 4)),
    "Dropout": single(lambda: [L.Dense(6), L.Dropout(0.5)], (5,)),
    "SpatialDropout1D": single(lambda: L.SpatialDropout1D(0.5), (4, 3)),
    "SpatialDropout2D": single(lambda: L.SpatialDropout2D(0.5), (4, 4, 3)),
    "GaussianNoise": single(lambda: [L.Dense(6), L.GaussianNoise(0.3)], (5,)),
    "GaussianDropout": single(lambda: L.GaussianDropout(0.3), (5,)),
    "BatchNormalization": single(lambda: L.BatchNormalization(), (6,)),
    "BatchNormalization_channels": single(lambda: L.BatchNormalization(axis=-1), (4, 4, 3)),
    "LayerNormalization": single(lambda: L.LayerNormalization(), (3, 6)),
    "GroupNormalization": single(lambda: L.GroupNormalization(groups=2), (4, 6)),
    "UnitNormalization": single(lambda: L.UnitNormalization(), (6,)),
    "Conv1D": single(lambda: L.Conv1D(4, 3, padding="same", activation="relu"), (10, 3)),
    "Conv2D": single(lambda: L.Conv2D(4, 3, strides=2), (9, 9, 3)),
    "Conv3D": single(lambda: L.Conv3D(2, 2), (4, 4, 4, 2)),
    "Conv1DTranspose": single(lambda: L.Conv1DTranspose(3, 3, strides=2), (5, 2)),
    "Conv2DTranspose": single(lambda: L.Conv2DTranspose(3, 3, strides=2, padding="same"), (4, 4, 2)),
    "DepthwiseConv1D": single(lambda: L.DepthwiseConv1D(3), (8, 3)),
    "DepthwiseConv2D": single(lambda: L.DepthwiseConv2D(3), (6, 6, 3)),
    "SeparableConv1D": single(lambda: L.SeparableConv1D(4, 3), (8, 3)),
    "SeparableConv2D": single(lambda: L.SeparableConv2D(4, 3), (6, 6, 3)),
    "DepthwiseConv2D_multiplier": single(lambda: L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2,
                                                                   activation="relu6"), (7, 7, 3)),
    "Conv2D_groups_depthwise": single(lambda: L.Conv2D(6, 3, groups=3, dilation_rate=2), (8, 8, 3)),
    "Conv1D_groups": single(lambda: L.Conv1D(6, 3, groups=3, padding="same"), (8, 6)),
    "MobileNet_block": single(lambda: [L.Conv2D(16, 3, strides=2), L.ReLU(6.0), L.DepthwiseConv2D(3), L.ReLU(6.0),
                                       L.SeparableConv2D(32, 3, activation="relu6"), L.GlobalAveragePooling2D(),
                                       L.Dense(10)], (32, 32, 3)),
    "MaxPooling1D": single(lambda: L.MaxPooling1D(2), (8, 3)),
    "MaxPooling2D": single(lambda: L.MaxPooling2D(2), (6, 6, 3)),
    "MaxPooling3D": single(lambda: L.MaxPooling3D(2), (4, 4, 4, 2)),
    "AveragePooling1D": single(lambda: L.AveragePooling1D(2), (8, 3)),
    "AveragePooling2D": single(lambda: L.AveragePooling2D(2), (6, 6, 3)),
    "AveragePooling3D": single(lambda: L.AveragePooling3D(2), (4, 4, 4, 2)),
    "GlobalMaxPooling1D": single(lambda: L.GlobalMaxPooling1D(), (8, 3)),
    "GlobalMaxPooling2D": single(lambda: L.GlobalMaxPooling2D(), (5, 5, 3)),
    "GlobalMaxPooling3D": single(lambda: L.GlobalMaxPooling3D(), (3, 3, 3, 2)),
    "GlobalAveragePooling1D": single(lambda: L.GlobalAveragePooling1D(), (8, 3)),
    "GlobalAveragePooling2D": single(lambda: L.GlobalAveragePooling2D(), (5, 5, 3)),
    "GlobalAveragePooling3D": single(lambda: L.GlobalAveragePooling3D(), (3, 3, 3, 2)),
    "Flatten": single(lambda: [L.Flatten(), L.Dense(3)], (3, 4, 2)),
    "Reshape": single(lambda: [L.Reshape((4, 6)), L.Dense(2)], (24,)),
    "Permute": single(lambda: L.Permute((2, 1, 3)), (3, 4, 2)),
    "RepeatVector": single(lambda: L.RepeatVector(3), (5,)),
    "UpSampling1D": single(lambda: L.UpSampling1D(2), (4, 3)),
    "UpSampling2D": single(lambda: L.UpSampling2D(2), (3, 3, 2)),
    "ZeroPadding1D": single(lambda: L.ZeroPadding1D(2), (4, 3)),
    "ZeroPadding2D": single(lambda: L.ZeroPadding2D(1), (3, 3, 2)),
    "Cropping1D": single(lambda: L.Cropping1D((1, 2)), (6, 3)),
    "Cropping2D": single(lambda: L.Cropping2D(((1, 0), (0, 2))), (5, 5, 2)),
    "Embedding": single(lambda: L.Embedding(20, 4), (6,), dtype="int32"),
    "SimpleRNN": single(lambda: L.SimpleRNN(5), (6, 3)),
    "LSTM": single(lambda: L.LSTM(5), (6, 3)),
    "LSTM_return_sequences": single(lambda: L.LSTM(4, return_sequences=True, go_backwards=True), (5, 3)),
    "GRU": single(lambda: L.GRU(5), (6, 3)),
    "GRU_reset_before": single(lambda: L.GRU(4, reset_after=False, return_sequences=True), (5, 3)),
    "Bidirectional": single(lambda: L.Bidirectional(L.LSTM(3)), (5, 2)),
    "TimeDistributed": single(lambda: L.TimeDistributed(L.Dense(3)), (4, 5)),
    "MultiHeadAttention": _mha,
    "MultiHeadAttention_mask": _mha_mask,
    "Attention": _attention,
    "Add": merge(L.Add, [(4,), (4,), (4,)]),
    "Subtract": merge(L.Subtract, [(4,), (4,)]),
    "Multiply": merge(L.Multiply, [(4,), (4,)]),
    "Average": merge(L.Average, [(4,), (4,)]),
    "Maximum": merge(L.Maximum, [(4,), (4,)]),
    "Minimum": merge(L.Minimum, [(4,), (4,)]),
    "Concatenate": merge(lambda: L.Concatenate(axis=-1), [(3, 4), (3, 2)]),
    "Dot": merge(lambda: L.Dot(axes=1, normalize=True), [(5,), (5,)]),
    "Rescaling": single(lambda: L.Rescaling(1 / 255.0, offset=-0.5), (6,)),
    "Normalization": _normalization,
    "CategoryEncoding": single(lambda: L.CategoryEncoding(num_tokens=6, output_mode="multi_hot"), (3,),
                               dtype="int32"),
    "Sequential": _sequential,
    "Functional_multi_io": _multi_io,
    "Subclassed": _subclassed,
    "CustomLayer": single(lambda: [L.Dense(6), ScaledSwish()], (5,)),
    "Unsupported_FFT": single(lambda: [L.Dense(4), Spectrum(name="spectrum")], (4,)),
}


def randomise(model, rng) -> None:
    """Random weights, so zero-initialised biases and unit BatchNorm statistics are tested too."""
    for variable in model.trainable_variables:
        shape = tuple(variable.shape)
        variable.assign(rng.normal(0, 0.5, shape).astype(variable.dtype))
    for variable in model.non_trainable_variables:
        if "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 1.5, tuple(variable.shape)).astype(variable.dtype))
        elif "moving_mean" in variable.path:
            variable.assign(rng.normal(0, 0.5, tuple(variable.shape)).astype(variable.dtype))


def example_inputs(model, batch: int, rng) -> list[np.ndarray]:
    arrays = []
    for tensor in model.inputs:
        shape = (batch,) + tuple(tensor.shape[1:])
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(0, 6, shape).astype(np.int32))
        else:
            arrays.append(rng.standard_normal(shape).astype(np.float32))
    return arrays


def save_all(out: Path, names: list[str]) -> dict:
    index = {}
    for name in names:
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        model = MODELS[name](name)
        randomise(model, rng)
        files = {}
        model.save(out / f"{name}.keras")
        files["keras"] = f"{name}.keras"
        if not isinstance(model, Residual):  # the legacy format cannot hold subclassed models
            model.save(out / f"{name}.h5")
            files["h5"] = f"{name}.h5"
        arrays = {}
        shapes = None
        for batch in BATCHES:
            xs = example_inputs(model, batch, rng) if getattr(model, "inputs", None) else [
                rng.standard_normal((batch, 8)).astype(np.float32)]
            shapes = [list(x.shape[1:]) for x in xs]
            ys = model(xs[0] if len(xs) == 1 else xs, training=False)
            for i, x in enumerate(xs):
                arrays[f"in{i}_b{batch}"] = x
            for j, y in enumerate(keras.tree.flatten(ys)):
                arrays[f"out{j}_b{batch}"] = keras.ops.convert_to_numpy(y)
        np.savez(out / f"{name}.npz", **arrays)
        index[name] = {"files": files, "input_shapes": shapes}
    (out / "index.json").write_text(json.dumps(index, indent=1))
    return index


def save_bad_inputs(out: Path) -> None:
    """Files that cannot be converted: a Lambda layer (.keras and .h5), a TensorFlow SavedModel
    directory, and a .keras archive recording Keras 2.15 whose config Keras 3 cannot read."""
    import shutil
    import zipfile

    x = keras.Input((4,), name="x")
    lambda_model = keras.Model(x, layers.Lambda(lambda t: t * 2.0 + 1.0)(layers.Dense(3)(x)), name="lam")
    lambda_model.save(out / "lambda.keras")
    lambda_model.save(out / "lambda.h5")
    if keras.backend.backend() == "tensorflow":
        lambda_model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    with zipfile.ZipFile(out / "Dense.keras") as source, zipfile.ZipFile(out / "keras2.keras", "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "metadata.json":
                data = json.dumps({"keras_version": "2.15.0", "date_saved": "2024-01-01"}).encode()
            elif item == "config.json":
                data = json.dumps({"class_name": "Functional", "config": {"name": "m", "layers": [
                    {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4]}}]}}).encode()
            target.writestr(item, data)
    shutil.copy(out / "Dense.keras", out / "model.txt")


def check_converted_from_this_process(out: Path) -> None:
    """This process runs Keras on TensorFlow: keras_frontend converts in a JAX child process; the
    compiled C++ is compared with this process' TensorFlow outputs."""
    import keras_frontend

    model = MODELS["Functional_multi_io"]("tf_in_memory")
    randomise(model, np.random.default_rng(3))
    converted = keras_frontend.convert(model)
    rng = np.random.default_rng(4)
    results = {}
    for batch in BATCHES:
        xs = example_inputs(model, batch, rng)
        report = converted.check(*xs)
        expected = [keras.ops.convert_to_numpy(y) for y in keras.tree.flatten(model(xs, training=False))]
        actual = converted.run(*xs)
        results[f"b{batch}"] = {"passed": bool(report.passed) and all(
            np.allclose(a, e, rtol=1e-4, atol=1e-5) for a, e in zip(actual, expected)), "report": str(report)}
    results["weights"] = sorted(converted.traced.param_names)
    (out / "tf_process_check.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    out_dir = Path(arguments[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    save_all(out_dir, arguments[1:] or list(MODELS))
    if "--bad-inputs" in sys.argv:
        save_bad_inputs(out_dir)
    if "--check-in-process" in sys.argv:
        check_converted_from_this_process(out_dir)
    print(f"saved with Keras {keras.__version__} on {keras.backend.backend()}")
