"""A Keras model trained on TensorFlow, converted to C++: the custom layer converts with no extra code.

1. A child process runs Keras on TensorFlow: it trains a small jet tagger (16 features -> Dense 32
   relu -> LayerNormalization -> Dropout -> Dense 32 -> GatedSwish, a custom layer written with
   `keras.ops` -> Dense 5 softmax) for a few epochs on synthetic data, saves `tagger.keras` and the
   legacy `tagger.h5`, and TensorFlow's outputs on test inputs at batch 1 and 16.
2. This process (Keras on JAX) converts both files with `keras_frontend.convert` (a symbolic batch),
   writes `OUT/tagger.hxx` + `tagger.dat` + a standalone C++ check, compiles the header and compares
   the C++ outputs with TensorFlow's. Exits with status 1 if any comparison fails.

    python examples/keras_tensorflow.py [--out DIR]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import keras_frontend  # before Keras: this process then runs Keras on JAX (unless KERAS_BACKEND is set)
import keras


@keras.saving.register_keras_serializable(package="examples")
class GatedSwish(keras.layers.Layer):
    """x * sigmoid(beta * x) with a trained beta per feature: any layer written with keras.ops converts."""

    def build(self, input_shape):
        self.beta = self.add_weight(shape=(input_shape[-1],), initializer="ones", name="beta")

    def call(self, x):
        return x * keras.ops.sigmoid(self.beta * x)


def train_and_save(directory: Path) -> None:
    """Runs in the child process, on TensorFlow."""
    rng = np.random.default_rng(0)
    features = rng.standard_normal((2048, 16)).astype(np.float32)
    labels = np.argmax(features[:, :5] + 0.5 * features[:, 5:10], axis=1)
    model = keras.Sequential([
        keras.Input((16,), name="features"),
        keras.layers.Dense(32, activation="relu", name="dense_in"),
        keras.layers.LayerNormalization(name="norm"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(32, name="hidden"),
        GatedSwish(name="gated_swish"),
        keras.layers.Dense(5, activation="softmax", name="classes"),
    ], name="tagger")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(features, labels, epochs=3, batch_size=64, verbose=0)
    print(f"trained on {keras.backend.backend()}: accuracy {history.history['accuracy'][-1]:.3f}")
    model.save(directory / "tagger.keras")
    model.save(directory / "tagger.h5")
    tests = {f"x_b{b}": rng.standard_normal((b, 16)).astype(np.float32) for b in (1, 16)}
    outputs = {f"y_b{b}": keras.ops.convert_to_numpy(model(tests[f"x_b{b}"], training=False)) for b in (1, 16)}
    np.savez(directory / "reference.npz", **tests, **outputs)


def main() -> int:
    parser = argparse.ArgumentParser(description="Train on TensorFlow, convert with keras_frontend, check.")
    parser.add_argument("--out", default="out/keras_tensorflow", help="directory for the generated C++")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keras-tf-") as tmp:
        saved = Path(tmp)
        env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
        subprocess.run([sys.executable, __file__, "--train-and-save", str(saved)], env=env, check=True)
        reference = np.load(saved / "reference.npz")
        ok = True
        for file in ("tagger.keras", "tagger.h5"):
            model = keras_frontend.convert(saved / file)  # the file's own input shape, symbolic batch
            if file.endswith(".keras"):
                print(model.summary())
                paths = model.write(args.out, test=True, force=True)
                print("  wrote " + ", ".join(str(p) for p in paths))
            for batch in (1, 16):
                actual = model.run(reference[f"x_b{batch}"])[0]
                expected = reference[f"y_b{batch}"]
                error = float(np.abs(actual - expected).max())
                passed = np.allclose(actual, expected, rtol=1e-4, atol=1e-5)
                ok &= passed
                print(f"{file} batch {batch:2d}: C++ vs TensorFlow max |error| {error:.2e} "
                      f"{'PASSED' if passed else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--train-and-save":
        train_and_save(Path(sys.argv[2]))
        sys.exit(0)
    sys.exit(main())
