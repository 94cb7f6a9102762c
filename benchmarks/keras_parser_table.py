"""The Keras layer table of docs/keras_layers.md: PySofie's `sofie.keras.parse` vs keras_frontend,
both run on the same saved `.keras` files, both compiled and compared with the saving backend.

    PYTHONPATH=$PWD python benchmarks/keras_parser_table.py [--out docs/keras_layers.md] [--models DIR]

1. tests/keras_test_models.py saves every test model with Keras on TensorFlow (a child process),
   with TensorFlow's outputs at batch 1 and 16.
2. keras_frontend (this process, JAX backend): convert, compile, compare at batch 1 and 16.
3. sofie.keras.parse (worker processes: the parser can crash the interpreter): parse, generate,
   compile, compare at batch 1 (its default batch size).
Tolerances: rtol 1e-4, atol 1e-5.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TESTS = ROOT / "tests"
RTOL, ATOL = 1e-4, 1e-5


def save_models(directory: Path, names: list[str]) -> None:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path[1:]]))
    subprocess.run([sys.executable, str(TESTS / "keras_test_models.py"), str(directory), *names], env=env,
                   check=True, capture_output=True)


def _compare(outputs, references, batch) -> str | None:
    for j, actual in enumerate(outputs):
        expected = references[f"out{j}_b{batch}"]
        if actual.shape != expected.shape:
            return f"wrong shape {actual.shape} (expected {expected.shape})"
        if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
            return f"wrong numbers (max error {np.abs(actual - expected).max():.2g})"
    return None


def _inputs(references, batch):
    n = sum(1 for key in references if key.startswith("in") and key.endswith("_b1"))
    return [references[f"in{i}_b{batch}"] for i in range(n)]


def ours(directory: Path, name: str) -> str:
    import keras_frontend
    from jax2sofie import UnsupportedPrimitivesError
    from test_keras_layers import STATIC_BATCH

    references = np.load(directory / f"{name}.npz")
    try:
        if name in STATIC_BATCH:
            models = {b: keras_frontend.convert(directory / f"{name}.keras", name=f"{name}_b{b}",
                                                input_shape=[x.shape for x in _inputs(references, b)])
                      for b in (1, 16)}
        else:
            model = keras_frontend.convert(directory / f"{name}.keras")
            models = {1: model, 16: model}
        for batch, model in models.items():
            problem = _compare(model.run(*_inputs(references, batch)), references, batch)
            if problem:
                return f"{problem} at batch {batch}"
    except UnsupportedPrimitivesError as exc:
        return "needs " + ", ".join(f"`{p}`" for p in exc.primitives)
    except Exception as exc:  # the table records every failure as text
        return f"error: {_short(exc)}"
    return "ok" + (" (batch 1, 16)" if name not in STATIC_BATCH else " (fixed batch 1, 16)")


def pysofie_one(directory: Path, name: str) -> str:
    import sofie.keras

    from jax2sofie.runtime import TensorSpec, compile_model

    references = np.load(directory / f"{name}.npz")
    try:
        rmodel = sofie.keras.parse(str(directory / f"{name}.keras"))
    except Exception as exc:
        return f"parse fails: {_short(exc)}"
    try:
        rmodel.generate()
        build = Path(tempfile.mkdtemp(prefix=f"pysofie-{name}-"))
        model_name = f"{name}"
        rmodel.output_generated(str(build / f"{model_name}.hxx"))
    except Exception as exc:
        return f"generate fails: {_short(exc)}"
    inputs = [TensorSpec(f"in{i}", x.dtype, x.shape) for i, x in enumerate(_inputs(references, 1))]
    outputs = [TensorSpec(f"out{j}", references[f"out{j}_b1"].dtype, references[f"out{j}_b1"].shape)
               for j in range(sum(1 for k in references if k.startswith("out") and k.endswith("_b1")))]
    try:
        weights = next((p for p in build.iterdir() if p.suffix != ".hxx"), None)
        compiled = compile_model(build / f"{model_name}.hxx", weights, None, inputs, outputs)
    except Exception as exc:
        return f"C++ does not compile: {_short(exc)}"
    try:
        problem = _compare(compiled.run(*_inputs(references, 1)), references, 1)
    except Exception as exc:
        return f"run fails: {_short(exc)}"
    return problem or "ok (batch 1)"


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return (text[:110] + "…") if len(text) > 110 else text


def pysofie_all(directory: Path, names: list[str]) -> dict[str, str]:
    """Each model in a worker process that handles the rest of the list; a crash costs one model."""
    results: dict[str, str] = {}
    remaining = list(names)
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(TESTS), *sys.path[1:]]))
    while remaining:
        with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as log:
            run = subprocess.run([sys.executable, __file__, "--pysofie-worker", str(directory), log.name,
                                  *remaining], env=env, capture_output=True, text=True)
            for line in Path(log.name).read_text().splitlines():
                name, result = json.loads(line)
                results[name] = result
        remaining = [n for n in remaining if n not in results]
        if remaining:
            results[remaining.pop(0)] = f"the parser crashed the process (exit code {run.returncode})"
    return results


def _worker(directory: str, log: str, names: list[str]) -> None:
    import keras_test_models  # noqa: F401  (registers the custom classes)

    for name in names:
        result = pysofie_one(Path(directory), name)
        with open(log, "a") as f:
            f.write(json.dumps([name, result]) + "\n")


def write_table(path: Path, names, theirs, mine, elapsed, partial=False) -> None:
    import keras
    import sofie

    both = sum(1 for n in names if theirs[n].startswith("ok"))
    ours_ok = sum(1 for n in names if mine[n].startswith("ok"))
    lines = [
        "# Keras layers: `sofie.keras.parse` (PySofie) vs jax2sofie's `keras_frontend`",
        "",
        "Generated by `benchmarks/keras_parser_table.py` (do not edit by hand): every test model of",
        "`tests/keras_test_models.py` is saved as `.keras` by Keras on TensorFlow, with TensorFlow's outputs;",
        "both converters read the same file, their C++ is compiled and compared with TensorFlow",
        f"(rtol {RTOL:g}, atol {ATOL:g}). PySofie builds for batch 1; keras_frontend for a symbolic batch.",
        f"Versions: sofie {sofie.__version__}, Keras {keras.__version__}. Run time {elapsed:.0f} s.",
        "",
        f"Matching TensorFlow: PySofie {both} of {len(names)}, keras_frontend {ours_ok} of {len(names)}.",
        "A keras_frontend entry `needs X` names the JAX primitive still to be lowered.",
        *(["", f"This run covers {len(names)} of the test models (`--only`); run the script without it for all."]
          if partial else []),
        "",
        "| model | sofie.keras.parse | keras_frontend |",
        "|---|---|---|",
    ]
    for name in names:
        lines.append(f"| {name} | {theirs[name].replace('|', '/')} | {mine[name].replace('|', '/')} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "docs" / "keras_layers.md"))
    parser.add_argument("--models", help="a folder already written by tests/keras_test_models.py")
    parser.add_argument("--only", nargs="+", metavar="MODEL", help="these test models only (default: all)")
    args = parser.parse_args()
    start = time.perf_counter()
    directory = Path(args.models) if args.models else Path(tempfile.mkdtemp(prefix="keras-models-"))
    if not args.models:
        save_models(directory, args.only or [])
    index = json.loads((directory / "index.json").read_text())
    names = [n for n in index if not n.startswith("Unsupported_") and (not args.only or n in args.only)]
    os.environ["KERAS_BACKEND"] = "jax"
    sys.path.insert(0, str(TESTS))
    mine = {}
    for name in names:
        mine[name] = ours(directory, name)
        print(f"keras_frontend  {name:30s} {mine[name]}", flush=True)
    theirs = pysofie_all(directory, names)
    for name in names:
        print(f"sofie.keras     {name:30s} {theirs[name]}", flush=True)
    write_table(Path(args.out), names, theirs, mine, time.perf_counter() - start, partial=bool(args.only))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pysofie-worker":
        _worker(sys.argv[2], sys.argv[3], sys.argv[4:])
    else:
        main()
