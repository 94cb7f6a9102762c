"""The `jax2sofie` command line.

    jax2sofie convert package.module:object --input-shape 1,16 -o out/ [--name N] [--check]

`object` is a Flax nnx module instance, or a pair `(fn, params)` for `fn(params, *inputs)` (for Flax
linen: `(module.apply, variables)`). Exit codes: 0 ok, 1 conversion or check failure, 2 usage error.
"""
from __future__ import annotations

import argparse
import importlib
import sys

import numpy as np

EXAMPLES = """examples:
  jax2sofie convert mymodels.tagger:model --input-shape 1,64 -o out/ --check
  jax2sofie convert mymodels.mlp:fn_and_params --input-shape 8,16 --name mlp -o out/
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jax2sofie", description="Convert JAX/Flax models to C++ with SOFIE.",
                                     epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="convert a model and write <name>.hxx + <name>.dat",
                             epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("target", help="package.module:object — an nnx module, or a (fn, params) pair")
    convert.add_argument("--input-shape", action="append", required=True, metavar="D0,D1,...",
                         help="shape of one float32 example input (repeat for several inputs), e.g. 1,16")
    convert.add_argument("-o", "--output", required=True, metavar="DIR", help="directory to write into")
    convert.add_argument("--name", help="model name (C++ namespace SOFIE_<name>, file names)")
    convert.add_argument("--check", action="store_true",
                         help="also compile the C++, run it on random inputs and compare with JAX")
    sub.add_parser("version", help="print the versions of jax2sofie, sofie and jax")
    return parser


def _load(target: str):
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"target '{target}' is not of the form package.module:object")
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def _shape(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in text.split(",") if d.strip())
    except ValueError:
        raise ValueError(f"--input-shape '{text}' is not a comma-separated list of integers") from None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import jax2sofie

    if args.command == "version":
        import jax
        import sofie

        print(f"jax2sofie {jax2sofie.__version__}, sofie {sofie.__version__}, jax {jax.__version__}")
        return 0
    try:
        target = _load(args.target)
        inputs = [np.zeros(_shape(s), np.float32) for s in args.input_shape]
    except (ValueError, ImportError, AttributeError) as exc:
        print(f"jax2sofie: error: {exc}", file=sys.stderr)
        return 2
    try:
        if isinstance(target, tuple) and len(target) == 2:
            model = jax2sofie.convert(target[0], target[1], *inputs, name=args.name)
        else:
            model = jax2sofie.convert(target, *inputs, name=args.name)
        print(model.summary())
        for path in model.write(args.output):
            print(f"wrote {path}")
        if args.check:
            report = model.check()
            print(report)
            if not report.passed:
                return 1
    except jax2sofie.ConversionError as exc:
        print(f"jax2sofie: conversion failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
