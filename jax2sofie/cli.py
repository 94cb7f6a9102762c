"""The `jax2sofie` command line: convert, check, inspect.

TARGET is a Keras `.keras` / `.h5` file or a Python reference `package.module:object` (`object` may be
a dotted attribute path) naming one of
  - a Flax nnx module instance:                       model = Tagger(rngs=nnx.Rngs(0))
  - a pair (fn, params) for fn(params, *inputs):      model = (forward, {"w": w, "b": b})
  - a pair (linen module, variables):                 model = (MLP(), MLP().init(key, x))
    (the same as (module.apply, variables))
The module is imported with the current directory on sys.path. Exit codes: 0 ok, 1 conversion or
check failure, 2 usage error.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

EXAMPLES = """TARGET: a .keras/.h5 file, or package.module:object where object is a Flax nnx module,
a pair (fn, params) for fn(params, *inputs), or a pair (linen_module, variables).

examples:
  jax2sofie convert mymodels.tagger:model --input-shape 1,64 -o out/ --check
  jax2sofie convert mymodels.mlp:fn_and_params --example x.npy --name mlp --weights safetensors -o out/
  jax2sofie convert mymodels.tagger:model --input-shape 8,64 --dynamic-batch -o out/   # any batch size
  jax2sofie convert model.keras --input-shape 1,16 -o out/
  jax2sofie convert mymodels.mlp:fn_and_params --input-shape 1,16 --name mlp --library -o out/ && make -C out/ libmlp.so
  jax2sofie check out/                   # compile and run out/<name>_test.cpp (C++ vs the JAX reference)
  jax2sofie inspect mymodels.tagger:model --input-shape 1,64

exit codes: 0 ok, 1 conversion or check failure, 2 usage error
"""


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jax2sofie", description="Convert JAX/Flax/Keras models to C++ with SOFIE.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def target_arguments(p):
        p.add_argument("target", help="package.module:object (an nnx module, a (fn, params) pair or a (linen "
                                      "module, variables) pair), or a .keras/.h5 file; e.g. mymodels.tagger:model")
        inputs = p.add_mutually_exclusive_group()
        inputs.add_argument("--input-shape", action="append", metavar="D0,D1,...",
                            help="shape of one float32 example input, e.g. --input-shape 1,16 (repeat, in "
                                 "order, for several inputs); a Keras file's own input shapes are the default")
        inputs.add_argument("--example", action="append", metavar="FILE.npy",
                            help="an example input saved with numpy.save, e.g. --example x.npy; gives shape and "
                                 "dtype (float32, int32, bool) and is the reference input of the C++ check "
                                 "(repeat for several inputs)")

    convert = sub.add_parser("convert", help="convert a model: writes <name>.hxx, its weights and a C++ check",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_arguments(convert)
    convert.add_argument("-o", "--output", required=True, metavar="DIR",
                         help="directory to write into, e.g. -o out/ (created if missing); writes <name>.hxx, the "
                              "weight file, <name>_test.cpp and a Makefile (`make test`)")
    convert.add_argument("--name", help="model name, e.g. --name tagger: C++ namespace SOFIE_tagger and file "
                                        "names tagger.hxx, ... (default: the module or function name)")
    convert.add_argument("--weights", choices=["text", "safetensors", "embedded"], default="text",
                         help="weight format, e.g. --weights safetensors: SOFIE's text <name>.dat (default), "
                              "<name>.safetensors, or embedded in the header (no weight file)")
    convert.add_argument("--dynamic-batch", action="store_true",
                         help="dimension 0 of every input is a batch of any size: Session(weights, max_batch) "
                              "and infer(batch, ...) in C++; the default for a Keras file without "
                              "--input-shape/--example whose batch size is unknown")
    convert.add_argument("--library", action="store_true",
                         help="also write a C API (<name>_c.h, <name>_c.cpp, <name>_c.map) and a Makefile target: "
                              "`make lib<name>.so` in DIR builds a shared library exporting only the C API, "
                              "for C programs and jax2sofie.load_library")
    convert.add_argument("--check", action="store_true",
                         help="also compile the C++ (needs a C++17 compiler and a BLAS), run it on the --example "
                              "input (random values of --input-shape) and compare with JAX; exit code 1 when "
                              "they disagree")
    convert.add_argument("--rdf", action="store_true",
                         help="also write <name>_rdf.hxx, SOFIE_<name>::RDFFunctor for ROOT's RDataFrame (jax2sofie.rdf)")
    convert.add_argument("--strict", action="store_true",
                         help="refuse weights holding NaN/Inf (default: a warning)")
    convert.add_argument("--force", action="store_true",
                         help="overwrite existing files in DIR (default: refuse, and leave DIR as it was)")
    convert.add_argument("--max-while-trips", type=int, default=None, metavar="N",
                         help="the most steps a while loop whose trip count depends on the inputs runs in the "
                              "generated code before it throws std::runtime_error (default 1000000)")

    check = sub.add_parser("check", help="compile and run DIR/<name>_test.cpp: the C++ against the JAX reference",
                           description="Compile every DIR/<name>_test.cpp with $CXX (or c++, g++, clang++) and "
                                       "a BLAS ($JAX2SOFIE_BLAS, or -lopenblas, -lblas), run it, and fail when "
                                       "the C++ output differs from the JAX output embedded in it. Needs no "
                                       "Python model: only the files `convert` wrote.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("directory", help="a directory written by `jax2sofie convert`, e.g. out/")

    inspect = sub.add_parser("inspect", help="list the primitives a model traces to, and which are unsupported",
                             description="Trace TARGET and list each JAX primitive it uses: lowered, folded "
                                         "(depends only on params: computed at conversion) or UNSUPPORTED "
                                         "with every file:line that uses it. Converts nothing.",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_arguments(inspect)
    sub.add_parser("version", help="print the versions of jax2sofie, sofie and jax")
    return parser


class Progress:
    """Prints each step of a long operation as it starts and how long it took, on stderr."""

    def __init__(self):
        self._current: str | None = None
        self._started = 0.0

    def __call__(self, step: str) -> None:
        self.finish()
        self._current, self._started = step, time.perf_counter()
        print(f"{step} ...", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self._current is not None:
            print(f" {time.perf_counter() - self._started:.2f} s", file=sys.stderr, flush=True)
            self._current = None


def _load_target(target: str):
    if target.endswith((".keras", ".h5", ".hdf5")) or Path(target).is_dir():  # a dir: keras_frontend explains
        if not Path(target).exists():
            raise UsageError(f"no such file: {target}")
        return ("keras", target)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"target '{target}' is neither a .keras/.h5 file nor of the form package.module:object")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # `package.module` relative to the current directory, as `python -m` does
    try:
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # an import that fails for any reason is reported as what the user named
        raise UsageError(f"cannot load '{target}': {type(exc).__name__}: {exc}") from exc
    return ("python", _as_function_and_params(obj, target))


def _as_function_and_params(obj, target: str):
    """The documented target conventions -> an nnx module, or a pair (fn, params) for fn(params, *inputs)."""
    from flax import linen, nnx

    if isinstance(obj, nnx.Module):
        return obj
    if isinstance(obj, tuple) and len(obj) == 2:
        fn, params = obj
        if isinstance(fn, linen.Module):
            return (fn.apply, params)
        if callable(fn):
            return (fn, params)
    raise UsageError(f"'{target}' is a {type(obj).__name__}: expected a Flax nnx module, a pair (fn, params) "
                     "for fn(params, *inputs), or a pair (linen_module, variables)")


def _inputs(args) -> list[np.ndarray]:
    if not args.example and not args.input_shape:
        raise UsageError("give the example inputs: --input-shape or --example (only Keras files know their own)")
    if args.example:
        try:
            return [np.load(path) for path in args.example]
        except OSError as exc:
            raise UsageError(f"cannot read example input: {exc}") from exc
    shapes = []
    for text in args.input_shape:
        try:
            shapes.append(tuple(int(d) for d in text.split(",") if d.strip()))
        except ValueError:
            raise UsageError(f"--input-shape '{text}' is not a comma-separated list of integers") from None
    return [np.zeros(shape, np.float32) for shape in shapes]


def _keras_inputs(args, inputs) -> dict:
    """A Keras file's example inputs or input shapes, when given (else the file's own input shapes)."""
    if args.example:
        return {"example_input": inputs}
    if args.input_shape:
        return {"input_shape": [tuple(a.shape) for a in inputs]}
    return {}


def _convert(kind, target, args, inputs, progress=None):
    """`inputs`: the example inputs of --example/--input-shape (None for a Keras file without them)."""
    import jax2sofie

    name, strict, dynamic_batch = args.name, args.strict, args.dynamic_batch
    if kind == "keras":
        import keras_frontend

        return keras_frontend.convert(target, **_keras_inputs(args, inputs), name=name, strict=strict,
                                      dynamic_batch=True if dynamic_batch else None)
    options = dict(name=name, strict=strict, dynamic_batch=dynamic_batch, progress=progress)
    if args.max_while_trips is not None:
        options["max_while_trips"] = args.max_while_trips
    if isinstance(target, tuple):
        return jax2sofie.convert(target[0], target[1], *inputs, **options)
    return jax2sofie.convert(target, *inputs, **options)


def _cmd_convert(args) -> int:
    kind, target = _load_target(args.target)
    inputs = _inputs(args) if kind != "keras" or args.example or args.input_shape else None
    progress = Progress()
    if args.check:  # before converting: a missing compiler or BLAS must not leave files behind
        from jax2sofie.runtime import find_blas, find_compiler

        progress("looking for a C++ compiler and a BLAS")
        find_blas(find_compiler())
    try:
        model = _convert(kind, target, args, inputs, progress)
        progress(f"writing {args.output}")
        reference = inputs if args.example else None  # else random inputs (not the zeros of --input-shape)
        paths = model.write(args.output, weights=args.weights, test=True, force=args.force, test_inputs=reference,
                            rdf=args.rdf, library=args.library)
        report = None
        if args.check:
            progress("compiling the C++ and comparing with JAX")
            report = model.check(*(reference or []))
    finally:
        progress.finish()
    if report is not None:
        print(report)
    print(model.summary())
    weight_bytes = sum(v.const.nbytes for v in model.graph.constants() if v.is_weight)
    print(f"  weight data: {_size(weight_bytes)} ({args.weights})")
    print("  files: " + ", ".join(f"{p} ({_size(p.stat().st_size)})" for p in paths))
    print("  check: " + ("not run (add --check, or run `jax2sofie check DIR` / `make test` in DIR)" if report is None
                         else "passed" if report.passed else "FAILED"))
    return 0 if report is None or report.passed else 1


def _size(n_bytes: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n_bytes < 1024 or unit == "MiB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    raise AssertionError("unreachable")


def _cmd_check(args) -> int:
    from jax2sofie.runtime import find_blas, find_compiler
    from jax2sofie.runtime.build import DEFAULT_CXXFLAGS, compile_command

    directory = Path(args.directory)
    tests = sorted(directory.glob("*_test.cpp"))
    if not tests:
        raise UsageError(f"no <name>_test.cpp in {directory}: write it with `jax2sofie convert` (or write(test=True))")
    compiler = find_compiler()
    blas = find_blas(compiler)
    failed = 0
    progress = Progress()
    for test in tests:
        binary = test.with_suffix("").resolve()
        progress(f"compiling {test.name}")
        build = subprocess.run(compile_command(compiler, DEFAULT_CXXFLAGS, [test], binary, link=blas),
                               capture_output=True, text=True)
        progress.finish()
        if build.returncode != 0:
            print(f"{test.name}: does not compile:\n{build.stderr[-4000:]}")
            failed += 1
            continue
        run = subprocess.run([str(binary)], cwd=directory, capture_output=True, text=True)
        print(run.stdout, end="")
        if run.returncode != 0 and run.stderr.strip():  # e.g. a weight file the Session refuses
            print(f"{test.name}: {run.stderr.strip()[-2000:]}")
        failed += run.returncode != 0
    print(f"check: {len(tests) - failed} of {len(tests)} passed")
    return 1 if failed else 0


def _cmd_inspect(args) -> int:
    from jax.extend import core as jcore

    from jax2sofie import UnsupportedPrimitivesError
    from jax2sofie.lowering import RULES, check_supported
    from jax2sofie.lowering.source import location_of
    from jax2sofie.trace import trace, trace_nnx

    kind, target = _load_target(args.target)
    if kind == "keras":
        raise UsageError("inspect takes a Python target; for a Keras file use `convert`")
    inputs = _inputs(args)
    traced = trace(target[0], target[1], inputs) if isinstance(target, tuple) else trace_nnx(target, inputs)
    counts: collections.Counter = collections.Counter()

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            counts[eqn.primitive.name] += 1
            for sub in jcore.jaxprs_in_params(eqn.params):
                walk(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub)

    walk(traced.closed.jaxpr)
    unsupported: dict[str, list] = {}
    try:  # the same scan convert() runs first: it knows what is folded
        check_supported(traced.closed, [True] * len(traced.param_values) + [False] * len(traced.input_specs))
    except UnsupportedPrimitivesError as error:
        for use in error.uses:
            unsupported.setdefault(use.primitive, []).append(use)
    for name, n in sorted(counts.items()):
        if name in unsupported:
            uses = unsupported[name]
            print(f"{name:28s} {n:5d}  UNSUPPORTED: {uses[0].reason}")
            for use in uses:
                print(f"{'':36s}at {use.location}")
        else:
            print(f"{name:28s} {n:5d}  " + ("lowered" if name in RULES else "folded (depends only on params)"))
    print(f"{len(counts)} primitives, {len(unsupported)} unsupported")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import jax2sofie

    try:
        if args.command == "version":
            import jax
            import sofie

            print(f"jax2sofie {jax2sofie.__version__}, sofie {sofie.__version__}, jax {jax.__version__}")
            return 0
        return {"convert": _cmd_convert, "check": _cmd_check, "inspect": _cmd_inspect}[args.command](args)
    except UsageError as exc:
        print(f"jax2sofie: error: {exc}", file=sys.stderr)
        return 2
    # conversion errors, existing files, unwritable directories, and (RuntimeError) the checker's
    # toolchain and compile errors
    except (jax2sofie.ConversionError, NotImplementedError, OSError, RuntimeError) as exc:
        print(f"jax2sofie: {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
