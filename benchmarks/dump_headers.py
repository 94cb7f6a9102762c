"""Write the generated header of catalog cases into a folder, to compare two builds of the native module
byte for byte (a code-generation refactoring must leave them identical):

    python benchmarks/dump_headers.py /tmp/before            # with the old build of jax2sofie._native
    python benchmarks/dump_headers.py /tmp/after             # with the new one
    diff -r /tmp/before /tmp/after

Cases are picked by keywords in their names (--keywords, comma-separated; default: the indexing,
slicing, padding, pooling, broadcasting, reduction and sorting cases); each case with a batch dimension
is written twice, with a static and with a symbolic batch (`<name>_dyn.hxx`). Weights are embedded, so
the header is the whole output. A case that fails to convert leaves `<name>.err` with the reason, so
that two runs still compare. Headers of while loops hold the path of the lowering source in their
error messages: compare builds of one checkout.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import jax2sofie
from jax2sofie.lowering.catalog import CASES

DEFAULT_KEYWORDS = ("gather", "take", "index", "slice", "pad", "pool", "scatter", "broadcast_in_dim", "rev",
                    "tile", "split", "reduce", "sort", "cum", "arg")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="folder to write the headers into")
    parser.add_argument("--keywords", default=",".join(DEFAULT_KEYWORDS))
    args = parser.parse_args(argv)
    keywords = [k for k in args.keywords.split(",") if k]
    args.out.mkdir(parents=True, exist_ok=True)
    names = [n for n in sorted(CASES) if any(k in n for k in keywords)]
    for name in names:
        case = CASES[name]
        params, inputs = case.materialize()
        for dynamic in ([False, True] if case.batch else [False]):
            tag = name + ("_dyn" if dynamic else "")
            try:
                model = jax2sofie.convert(case.fn, params, *inputs, name=tag, dynamic_batch=dynamic)
                with tempfile.TemporaryDirectory() as work:
                    model.write(work, weights="embedded")
                    shutil.copy(Path(work) / f"{tag}.hxx", args.out / f"{tag}.hxx")
            except Exception as exc:  # recorded, so that the two runs still line up
                (args.out / f"{tag}.err").write_text(f"{type(exc).__name__}: {exc}\n")
    written, failed = len(list(args.out.glob("*.hxx"))), len(list(args.out.glob("*.err")))
    print(f"{len(names)} cases: {written} headers, {failed} failed to convert, in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
