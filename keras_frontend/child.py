"""Converting in a child Python process on Keras' JAX backend, for callers that already run Keras on
TensorFlow or PyTorch (Keras' backend cannot change once it is imported).

The parent saves the model to a `.keras` file (or passes the caller's file), and runs
`python -m keras_frontend REQUEST RESULT` with KERAS_BACKEND=jax. The child converts and pickles
the optimised IR graph; the parent generates the SOFIE RModel from it. The parent's reference for
`check()` is the original model on the parent's own backend, so checks compare with what that backend
computes. Custom layer classes are imported in the child from their modules.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np

from jax2sofie.errors import ConversionError, UnsupportedPrimitivesError, UnsupportedUse

_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def custom_modules(model) -> list[str]:
    """Modules defining the model's non-Keras layer classes, to import in the child."""
    modules = set()
    for layer in model._flatten_layers(include_self=True, recursive=True):
        module = type(layer).__module__
        if not module.startswith("keras"):
            if module == "__main__":
                raise ConversionError(
                    f"layer '{layer.name}' is a {type(layer).__name__} defined in __main__: this process runs "
                    "Keras on another backend, so the model is converted in a child process, which cannot "
                    "import __main__. Define the class in an importable module")
            modules.add(module)
    return sorted(modules)


def convert_in_child(saved: Path, model, example_input, input_shape, name, dynamic_batch, strict, safe_mode,
                     input_names, modules, tmp: Path):
    """Convert `saved` in a child process; `model` (or None: load `saved` lazily) gives the reference."""
    import jax

    from jax2sofie.convert import generate
    from jax2sofie.model import ConvertedModel
    from jax2sofie.trace import Traced

    request = {
        "path": str(Path(saved).resolve()), "example_input": _portable(example_input), "input_shape": input_shape, "name": name,
        "dynamic_batch": dynamic_batch, "strict": strict, "safe_mode": safe_mode, "input_names": input_names,
        "modules": modules,
    }
    request_path, result_path = tmp / "request.pkl", tmp / "result.pkl"
    request_path.write_bytes(pickle.dumps(request))
    run = subprocess.run([sys.executable, "-m", "keras_frontend", str(request_path), str(result_path)],
                         env=_child_environment(), cwd=tmp, capture_output=True, text=True)
    if not result_path.exists():
        raise ConversionError(f"the conversion process on the JAX backend failed (exit code {run.returncode}):\n"
                              f"{run.stderr[-4000:]}")
    result = pickle.loads(result_path.read_bytes())
    if "error" in result:
        kind, message, uses = result["error"]
        if kind == "unsupported":
            raise UnsupportedPrimitivesError([UnsupportedUse(*use) for use in uses])
        raise ConversionError(message)
    graph = result["graph"]
    reference = _reference(model, saved if model is None else None, safe_mode)
    traced = Traced(closed=None, param_names=result["param_names"], param_values=[],
                    input_names=result["input_names"],
                    input_specs=[jax.ShapeDtypeStruct(s, d) for s, d in result["input_specs"]],
                    output_names=result["output_names"], output_tree=None, reference=reference)
    return ConvertedModel(graph=graph, rmodel=generate(graph), traced=traced, batch_param=result["batch_param"])


def _child_environment() -> dict:
    """KERAS_BACKEND=jax, and this process's import path with the folder of the packages it runs
    first. The child runs in a scratch folder: `python -m` puts its working folder ahead of
    PYTHONPATH, and the caller's folder may hold other copies of these packages (a source checkout);
    the caller's folder is still on the path, after them, for the modules of custom layers."""
    path = [_PACKAGE_ROOT] + [os.path.abspath(entry or os.curdir) for entry in sys.path]
    env = dict(os.environ, KERAS_BACKEND="jax")
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    return env


def _portable(example_input):
    """Example inputs without JAX objects: arrays, or (shape, dtype) for ShapeDtypeStructs."""
    if example_input is None:
        return None
    items = list(example_input) if isinstance(example_input, (list, tuple)) else [example_input]
    return [("spec", tuple(x.shape), np.dtype(x.dtype).str) if type(x).__name__ == "ShapeDtypeStruct"
            else np.asarray(x) for x in items]


def _reference(model, path, safe_mode):
    """The outputs of the original model on this process' own backend (loaded on first use from `path`)."""
    loaded = []

    def reference(*xs):
        import keras

        if not loaded:
            loaded.append(model if model is not None else
                          keras.saving.load_model(path, compile=False, safe_mode=safe_mode))
        inputs = xs[0] if len(xs) == 1 else list(xs)
        outputs = loaded[0](inputs, training=False)
        return [np.asarray(keras.ops.convert_to_numpy(o)) for o in keras.tree.flatten(outputs)]

    return reference
