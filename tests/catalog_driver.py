"""The standalone C++ reference checks (`<name>_test.cpp`) of every catalog case, in one program.

Each case is written into its own folder; one driver includes every header of a shard, then every `_test.cpp`
inside a namespace of its own (its `main` renamed `run`), and runs them all: one compile for the
whole catalog. A case whose check fails prints `<name>: MISMATCH`.
"""
from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import jax2sofie
from jax2sofie.lowering.catalog import CASES
from jax2sofie.runtime import find_blas, find_compiler

# the standard headers a _test.cpp includes: included once, before the per-case namespaces
_PRELUDE = "".join(f"#include <{h}>\n" for h in ("cmath", "cstdint", "cstdio", "string", "tuple", "type_traits",
                                                  "vector"))


# the catalog is checked in shards: each is one compile, and the shards run in parallel under xdist
N_SHARDS = 8


def shard(index: int) -> list[str]:
    """The names of the catalog cases in shard `index` (every N_SHARDS-th name, so sizes are even)."""
    return sorted(CASES)[index::N_SHARDS]


@dataclass
class DriverCase:
    """One reference check in a driver: `model` written into the folder `folder` (a C++ identifier) with
    `inputs` as its reference input; a dynamic-batch model's Session is built for `max_batch`."""
    folder: str
    model: jax2sofie.ConvertedModel
    inputs: list
    rtol: float = 1e-4
    atol: float = 1e-5
    max_batch: int | None = None


def catalog_cases(names: list[str]) -> list[DriverCase]:
    """The catalog cases `names`, converted, with their own inputs and tolerances."""
    cases = []
    for name in names:
        case = CASES[name]
        params, inputs = case.materialize()
        model = jax2sofie.convert(case.fn, params, *inputs, name=name)
        cases.append(DriverCase(name, model, inputs, case.rtol, case.atol))
    return cases


def write_driver(directory: Path, cases: list[DriverCase]) -> Path:
    """Write every case's files into its folder and `all_tests.cpp`, the driver that runs all their checks.

    Folders of one model (a dynamic-batch model checked at several batches) hold the same header: its
    include guard keeps the one copy."""
    headers, bodies, calls = [], [], []
    for case in cases:
        folder, name = case.folder, case.model.name
        paths = case.model.write(directory / folder, test=True, rtol=case.rtol, atol=case.atol,
                                 test_inputs=case.inputs, test_max_batch=case.max_batch)
        weights = next((p.name for p in paths if p.suffix in (".dat", ".safetensors")), "")
        headers.append(f'#include "{folder}/{name}.hxx"\n')
        bodies.append(f"namespace case_{folder} {{\n#define main run\n#include \"{folder}/{name}_test.cpp\"\n"
                      "#undef main\n}\n")
        calls.append(f'   {{ char arg0[] = "{folder}", arg1[] = "{folder}/{weights}"; char *argv[] = {{arg0, arg1}};\n'
                     f"     failed += case_{folder}::run(2, argv) != 0; }}\n")
    driver = directory / "all_tests.cpp"
    driver.write_text(_PRELUDE + "".join(headers) + "".join(bodies) + "int main()\n{\n   int failed = 0;\n"
                      + "".join(calls) + '   std::printf("%d failed\\n", failed);\n   return failed != 0;\n}\n')
    return driver


def write_catalog_driver(directory: Path, names: list[str]) -> Path:
    """Write the catalog cases `names` and `all_tests.cpp`, the driver that runs all their checks."""
    return write_driver(directory, catalog_cases(names))


def run_driver(directory: Path, cases: list[DriverCase], flags: list[str], env: dict | None = None) -> str:
    """Compile the driver of `cases` with `flags`, run it, require every check to print OK; return its output."""
    driver = write_driver(directory, cases)
    compiler = find_compiler()
    build = subprocess.run([*compiler.command, "-std=c++17", *flags, "-o", str(directory / "all_tests"), str(driver),
                            *find_blas(compiler)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-4000:]
    run = subprocess.run([str(directory / "all_tests")], cwd=directory, capture_output=True, text=True, env=env)
    mismatches = [line for line in run.stdout.splitlines() if line.endswith("MISMATCH")]
    assert run.returncode == 0 and not mismatches, run.stdout[-4000:] + run.stderr[-4000:]
    assert sum(line.endswith(": OK") for line in run.stdout.splitlines()) == len(cases), run.stdout[-4000:]
    return run.stdout


def run_catalog_driver(directory: Path, names: list[str], flags: list[str], env: dict | None = None) -> None:
    """Compile the driver of the cases `names` with `flags`, run it, and require every case to print OK."""
    run_driver(directory, catalog_cases(names), flags, env)
