"""The `jax2sofie` command line: convert, check, inspect.

TARGET is a Python reference `package.module:object`, where `object` is a Flax nnx module instance or
a pair `(fn, params)` for `fn(params, *inputs)` (for Flax linen: `(module.apply, variables)`), or a
Keras `.keras` / `.h5` file. Exit codes: 0 ok, 1 conversion or check failure, 2 usage error.
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

EXAMPLES = """examples:
  jax2sofie convert mymodels.tagger:model --input-shape 1,64 -o out/ --check
  jax2sofie convert mymodels.mlp:fn_and_params --example x.npy --name mlp --weights safetensors -o out/
  jax2sofie convert model.keras --input-shape 1,16 -o out/
  jax2sofie check out/                   # compile and run out/<name>_test.cpp (C++ vs the JAX reference)
  jax2sofie inspect mymodels.tagger:model --input-shape 1,64
"""


class UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jax2sofie", description="Convert JAX/Flax/Keras models to C++ with SOFIE.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def target_arguments(p):
        p.add_argument("target", help="package.module:object (an nnx module or a (fn, params) pair), "
                                      "or a .keras/.h5 file")
        inputs = p.add_mutually_exclusive_group()
        inputs.add_argument("--input-shape", action="append", metavar="D0,D1,...",
                            help="shape of one float32 example input, e.g. 1,16 (repeat for several inputs); "
                                 "a Keras file's own input shapes are the default")
        inputs.add_argument("--example", action="append", metavar="FILE.npy",
                            help="an example input saved with numpy.save (repeat for several inputs)")

    convert = sub.add_parser("convert", help="convert a model: writes <name>.hxx, its weights and a C++ check",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_arguments(convert)
    convert.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write into")
    convert.add_argument("--name", help="model name: C++ namespace SOFIE_<name> and file names")
    convert.add_argument("--weights", choices=["text", "safetensors", "embedded"], default="text",
                         help="weight file format: SOFIE's text .dat (default), .safetensors, or in the header")
    convert.add_argument("--dynamic-batch", action="store_true",
                         help="a symbolic batch dimension (dimension 0 of every input); the default for a Keras "
                              "file without --input-shape/--example whose batch size is unknown")
    convert.add_argument("--check", action="store_true",
                         help="also compile the C++, run it on random inputs and compare with JAX")
    convert.add_argument("--strict", action="store_true", help="refuse weights with NaN/Inf (default: warn)")
    convert.add_argument("--force", action="store_true", help="overwrite existing files in DIR")

    check = sub.add_parser("check", help="compile and run DIR/<name>_test.cpp: the C++ against the JAX reference",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("directory", help="a directory written by `jax2sofie convert`")

    inspect = sub.add_parser("inspect", help="list the primitives a model traces to, and which are unsupported",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    target_arguments(inspect)
    sub.add_parser("version", help="print the versions of jax2sofie, sofie and jax")
    return parser


def _step(text: str):
    print(f"{text} ...", file=sys.stderr, flush=True)
    return time.perf_counter()


def _done(start: float) -> None:
    print(f"  done in {time.perf_counter() - start:.2f} s", file=sys.stderr, flush=True)


def _load_target(target: str):
    if target.endswith((".keras", ".h5", ".hdf5")) or Path(target).is_dir():  # a dir: keras_frontend explains
        if not Path(target).exists():
            raise UsageError(f"no such file: {target}")
        return ("keras", target)
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"target '{target}' is neither a .keras/.h5 file nor of the form package.module:object")
    try:
        obj = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UsageError(f"cannot load '{target}': {exc}") from exc
    return ("python", obj)


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


def _convert_keras(path: str, args):
    """A .keras/.h5 file: keras_frontend (the file's own input shapes unless given)."""
    import keras_frontend

    example = _inputs(args) if args.example else None
    shapes = [tuple(a.shape) for a in _inputs(args)] if args.input_shape else None
    return keras_frontend.convert(path, example_input=example, input_shape=shapes, name=args.name,
                                  dynamic_batch=True if args.dynamic_batch else None, strict=args.strict)


def _convert(target, inputs, name=None, strict=False, dynamic_batch=False):
    import jax2sofie

    if isinstance(target, tuple) and len(target) == 2:
        return jax2sofie.convert(target[0], target[1], *inputs, name=name, strict=strict, dynamic_batch=dynamic_batch)
    return jax2sofie.convert(target, *inputs, name=name, strict=strict, dynamic_batch=dynamic_batch)


def _cmd_convert(args) -> int:
    kind, target = _load_target(args.target)
    start = _step("converting (trace, lower, optimise, generate)")
    if kind == "keras":
        model = _convert_keras(target, args)
    else:
        model = _convert(target, _inputs(args), args.name, args.strict, args.dynamic_batch)
    _done(start)
    start = _step(f"writing {args.output}")
    paths = model.write(args.output, weights=args.weights, test=True, force=args.force)
    _done(start)
    ok = True
    if args.check:
        start = _step("compiling and checking against JAX")
        report = model.check()
        _done(start)
        print(report)
        ok = report.passed
    weights = [v for v in model.graph.constants() if v.is_weight]
    print(model.summary())
    print(f"  weight data: {sum(v.const.nbytes for v in weights) / 1024:.1f} KiB ({args.weights})")
    print("  files: " + ", ".join(str(p) for p in paths))
    if args.check:
        print(f"  check: {'passed' if ok else 'FAILED'}")
    return 0 if ok else 1


def _cmd_check(args) -> int:
    from jax2sofie.runtime import find_blas, find_compiler

    directory = Path(args.directory)
    tests = sorted(directory.glob("*_test.cpp"))
    if not tests:
        raise UsageError(f"no <name>_test.cpp in {directory}: write it with `jax2sofie convert` (or write(test=True))")
    compiler = find_compiler()
    failed = 0
    for test in tests:
        binary = test.with_suffix("")
        start = _step(f"compiling {test.name}")
        build = subprocess.run([*compiler.command, "-O2", "-std=c++17", "-o", str(binary), str(test),
                                *find_blas(compiler)], capture_output=True, text=True)
        _done(start)
        if build.returncode != 0:
            print(f"{test.name}: does not compile:\n{build.stderr[-4000:]}")
            failed += 1
            continue
        run = subprocess.run([str(binary)], cwd=directory, capture_output=True, text=True)
        print(run.stdout, end="")
        failed += run.returncode != 0
    return 1 if failed else 0


def _cmd_inspect(args) -> int:
    import jax
    from jax.extend import core as jcore

    from jax2sofie.lowering import NOT_SUPPORTED, RULES
    from jax2sofie.lowering.source import location_of

    kind, target = _load_target(args.target)
    if kind == "keras":
        raise UsageError("inspect takes a Python target; for a Keras file use `convert`")
    inputs = _inputs(args)
    if isinstance(target, tuple):
        closed = jax.make_jaxpr(target[0])(target[1], *inputs)
    else:
        from flax import nnx

        graphdef, state = nnx.split(target)
        closed = jax.make_jaxpr(lambda s, *xs: nnx.merge(graphdef, s)(*xs))(state, *inputs)
    counts: collections.Counter = collections.Counter()
    where: dict[str, str] = {}

    def walk(jaxpr, enclosing=""):
        for eqn in jaxpr.eqns:
            counts[eqn.primitive.name] += 1
            where.setdefault(eqn.primitive.name, location_of(eqn, enclosing))
            for sub in jcore.jaxprs_in_params(eqn.params):
                walk(sub, location_of(eqn, enclosing))

    walk(closed.jaxpr)
    unsupported = 0
    for name, n in sorted(counts.items()):
        status = "lowered" if name in RULES else "UNSUPPORTED: " + NOT_SUPPORTED.get(name, "unknown primitive")
        unsupported += name not in RULES
        print(f"{name:28s} {n:5d}  {status}" + (f"  (first at {where[name]})" if name not in RULES else ""))
    print(f"{len(counts)} primitives, {unsupported} unsupported (those depending only on params are folded "
          "at conversion and need no rule)")
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
    except (jax2sofie.ConversionError, NotImplementedError, FileExistsError, OSError) as exc:
        print(f"jax2sofie: {args.command} failed: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # toolchain and compile errors of the checker
        print(f"jax2sofie: {args.command} failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
