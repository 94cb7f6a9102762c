"""Checking many programs at once: convert each (static, and with a symbolic batch), compile them all
in a few bundles (one compiler run per bundle, two running at a time), run the C++ and compare with
JAX. A failing program can then be shrunk to a smaller one that fails the same way."""
from __future__ import annotations

import contextlib
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import jax
import numpy as np

import jax2sofie
from jax2sofie.runtime import compare

from .bundle import BundleError, compile_bundle
from .program import Built, Program, build, shape_errors

RTOL, ATOL = 1e-4, 1e-5
MAX_BATCH = 12  # the Session of a symbolic-batch model is made for this batch ...
BATCHES = (1, 7, MAX_BATCH)  # ... and runs these
BUNDLE_SIZE = 40  # models per compiler run: small enough that two runs share the cores well


@dataclass
class Outcome:
    program: Program
    problems: list[str] = field(default_factory=list)  # empty: every check passed

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class Run:
    outcomes: list[Outcome]
    seconds: dict[str, float]  # per stage: convert, compile, compare

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]


def check_programs(programs: list[Program], directory: Path | None = None) -> Run:
    """Convert, compile and compare every program; no exception escapes for a program's own failure.
    The generated files go to `directory` (default: a temporary folder, removed afterwards)."""
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="jax2sofie-fuzz-") as temporary:
            return check_programs(programs, Path(temporary))
    directory = Path(directory)
    # Bundles compile in the background (two compiler runs at a time) while the next programs convert
    # and JAX computes the references
    seconds = {"convert": 0.0, "reference": 0.0}
    outcomes = [Outcome(p) for p in programs]
    built: list[Built] = [build(p) for p in programs]
    inputs = [[b.input()] + ([b.input(batch) for batch in BATCHES] if b.program.dynamic else []) for b in built]
    pending: dict = {}  # name -> ConvertedModel, not yet handed to a compiler
    owner: dict[str, int] = {}  # model name -> program index
    futures = []
    with ThreadPoolExecutor(2) as pool:
        start = time.perf_counter()
        for index, (program, b) in enumerate(zip(programs, built)):
            for suffix, dynamic in [("s", False)] + ([("d", True)] if program.dynamic else []):
                name = f"p{index}{suffix}"
                try:
                    pending[name] = jax2sofie.convert(b.fn, b.params, b.input(), name=name, dynamic_batch=dynamic)
                    owner[name] = index
                except Exception as exc:  # noqa: BLE001 - a conversion error is a finding
                    outcomes[index].problems.append(f"{'dynamic' if dynamic else 'static'} conversion: "
                                                    f"{type(exc).__name__}: {_short(exc)}")
            if len(pending) >= BUNDLE_SIZE or index == len(programs) - 1:
                futures.append(pool.submit(compile_bundle_or_errors, dict(pending), directory / f"bundle{len(futures)}"))
                pending.clear()
        seconds["convert"] = time.perf_counter() - start
        start = time.perf_counter()
        expected = references(built, inputs)
        seconds["reference"] = time.perf_counter() - start
        start = time.perf_counter()
        compiled, failed = {}, {}
        for future in futures:
            ok, bad = future.result()
            compiled.update(ok)
            failed.update(bad)
        seconds["compile (waited for)"] = time.perf_counter() - start

    start = time.perf_counter()
    for name, index in owner.items():
        outcome = outcomes[index]
        if name in failed:
            outcome.problems.append(f"{name}: the C++ does not compile:\n{_short(failed[name], 3000)}")
            continue
        try:
            outcome.problems += _compare(compiled[name], inputs[index], expected[index])
        except Exception as exc:  # noqa: BLE001 - a C++ exception in infer is a finding
            outcome.problems.append(f"{name}: {type(exc).__name__}: {_short(exc)}")
    seconds["compare"] = time.perf_counter() - start
    return Run(outcomes, seconds)


REFERENCE_CHUNK = 16  # programs per jax.jit: one XLA compilation for all their inputs


def references(built: list[Built], inputs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """JAX's output for every input of every program. A chunk of programs is one jitted function (XLA's
    cost per compilation, not per operation, dominates for programs this small)."""
    with _quick_xla():
        return _references(built, inputs)


def _references(built: list[Built], inputs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    out = []
    for first in range(0, len(built), REFERENCE_CHUNK):
        chunk = built[first:first + REFERENCE_CHUNK]
        chunk_inputs = inputs[first:first + REFERENCE_CHUNK]

        def run_all(params, xs, chunk=chunk):
            return [[b.fn(p, x) for x in program_xs] for b, p, program_xs in zip(chunk, params, xs)]
        try:
            results = jax.jit(run_all)([b.params for b in chunk], chunk_inputs)
        except Exception:  # noqa: BLE001 - one program JAX cannot run: each on its own, to say which
            results = []
            for b, xs in zip(chunk, chunk_inputs):
                try:
                    results.append([b.fn(b.params, x) for x in xs])
                except Exception as exc:  # noqa: BLE001
                    results.append(exc)
        out += [r if isinstance(r, Exception) else [np.asarray(y) for y in r] for r in results]
    return out


@contextlib.contextmanager
def _quick_xla():
    """XLA without most of its optimisations: compiles in about half the time, and the reference is still
    JAX's own float32 computation (only not fused)."""
    before = jax.config.read("jax_disable_most_optimizations")
    jax.config.update("jax_disable_most_optimizations", True)
    try:
        yield
    finally:
        jax.config.update("jax_disable_most_optimizations", before)


def compile_bundle_or_errors(models: dict, directory: Path) -> tuple[dict, dict]:
    """(name -> BundledModel, name -> the compiler's error for every model of a bundle that failed)."""
    try:
        return compile_bundle(models, directory), {}
    except BundleError as error:
        return {}, {name: error for name in error.names}


def _compare(model, xs: list[np.ndarray], expected) -> list[str]:
    """Problems of one compiled model against JAX: the static model at the program's own input (xs[0]),
    the symbolic-batch one at each of BATCHES (xs[1:]) on one Session made for the largest."""
    if isinstance(expected, Exception):
        return [f"JAX itself fails: {_short(expected)}"]
    static = model.name.endswith("s")
    runs = [(None, xs[0], expected[0])] if static else list(zip(BATCHES, xs[1:], expected[1:]))
    problems = []
    with (model.session() if static else model.session(bs=MAX_BATCH)) as session:
        for batch, x, want in runs:
            actual, _ = session.infer(x, **({} if batch is None else {"bs": batch}))
            report = compare([want], actual, RTOL, ATOL)
            if not report.passed:
                where = "static" if batch is None else f"symbolic batch, run at batch {batch}"
                problems.append(f"{model.name} ({where}): {report}")
    return problems


def _short(exc, limit: int = 600) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + " ..."


# ----------------------------------------------------------------------------------------------------
# shrinking
# ----------------------------------------------------------------------------------------------------

def _candidates(program: Program):
    """Smaller programs: a step left out (from the end first), weights as params, batch 1."""
    steps = program.steps
    for i in reversed(range(len(steps))):
        if len(steps) == 1:
            break
        captured = tuple(c - (c > i) for c in program.captured if c != i)
        yield replace(program, steps=steps[:i] + steps[i + 1:], captured=captured)
    if program.captured:
        yield replace(program, captured=())
    if program.shape[0] != 1:
        yield replace(program, shape=(1,) + tuple(program.shape[1:]))


def shrink(program: Program, budget: int = 40) -> Program:
    """A smaller program that still fails (greedy: the first smaller candidate that fails is kept)."""
    attempts = 0
    improved = True
    while improved and attempts < budget:
        improved = False
        for candidate in _candidates(program):
            if shape_errors(candidate, (1, MAX_BATCH)):
                continue  # a step no longer applies to the value before it
            attempts += 1
            if check_programs([candidate]).failures:
                program, improved = candidate, True
                break
            if attempts >= budget:
                break
    return program
