"""Random programs over every family of lowering rules, converted (static and with a symbolic batch),
compiled and compared with JAX. The generator is tests/fuzz/ (program.py says what a program is,
steps_*.py the kinds of steps, families.py the families every run must reach).

- test_programs_match_jax: a fixed list of seeded programs (FUZZ_PROGRAMS of them, default 240; 3000
  with HYPOTHESIS_PROFILE=long), all compiled in a few bundles (tests/fuzz/bundle.py). A failing
  program is shrunk and printed as `Program(...)`: keep it in REGRESSIONS below once fixed.
- test_hypothesis_programs_match_jax: the same generator driven by hypothesis, one program per example,
  which hypothesis shrinks on failure (HYPOTHESIS_PROFILE=long: 300 of them).
- test_generator_reaches_every_family: the seeded programs reach every family at least
  MIN_PER_FAMILY times, so the generator cannot silently stop reaching one.

    FUZZ_PROGRAMS=1000 pytest tests/test_fuzz.py -k match_jax -s          (a longer seeded run)
    FUZZ_FIRST_SEED=5000 FUZZ_PROGRAMS=1000 pytest tests/test_fuzz.py -s  (other programs)
"""
from __future__ import annotations

import collections
import os
import re
import resource
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.draw import HypothesisDraw, RandomDraw
from fuzz.families import FAMILIES, PROGRAM_FAMILIES
from fuzz.program import KINDS, LEGACY_ONLY, Program, draw_program, shape_errors
from fuzz.runner import MAX_BATCH, check_programs, shrink

settings.register_profile("ci", max_examples=3, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("long", max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "300")), deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)

N_PROGRAMS = int(os.environ.get("FUZZ_PROGRAMS", "3000" if PROFILE == "long" else "240"))
FIRST_SEED = int(os.environ.get("FUZZ_FIRST_SEED", "0"))
CHUNK = 400  # programs checked together
MIN_PER_FAMILY = 8  # of the default 240 programs (each family is the focus of 16)

# Refusals with a clear error that are known limitations, not wrong results: a program whose every
# problem matches one of these patterns passes (none at present: add one with a REGRESSIONS-style program
# and a strict xfail test of it when a limitation is accepted)
KNOWN_REFUSALS: dict[str, str] = {}

# shrunk programs that once failed (and pass now)
REGRESSIONS = [
    Program((3, 1), (("reduce", "sum", 0, False), ("softmax",))),  # a reduction to rank 1, then softmax
    Program((2, 3), (("binary", "mul", (1, 3)), ("dense", 3, 4), ("binary", "add", (4,)), ("unary", "relu"))),
    # jnp.negative / jnp.abs of int32 values were refused ('Neg' is lowered for float32 only)
    Program((2, 2, 3), (("cond", "data", "neg", "abs"),), "int32"),
    # an int32 or bool output that is the input itself (a flip of a size-1 axis is no operation) was refused
    Program((3, 1), (("flip", 1),), "int32"),
    Program((2, 3), (("reduce", "any", 1, True), ("flip", 1)), "bool"),
    # a dot_general over an axis other than the last merges the batch with other axes (was refused with a
    # symbolic batch; J2S_BatchReshape now)
    Program((2, 3, 4), (("dense_axis", 1, 5),)),
    # (x @ w + b).reshape(1, 6, 4, 16): the bias fused into J2S_Dense left the Reshape reading the removed Add
    Program((1, 6, 8), (("dense", 8, 64, True), ("split", 4))),
    # broadcasting a bool mask was refused (SOFIE's Expand has no bool form): now through int32
    Program((1, 4, 5, 3), (("broadcast", 2),), "bool"),
    Program((1, 4, 1), (("broadcast_axis", 2, 3),), "bool"),
]



def seeded_programs(first: int, count: int) -> list[Program]:
    """Program `seed` is drawn from random.Random(seed), for the family FAMILIES[seed % len(FAMILIES)]."""
    return [draw_program(RandomDraw(seed), FAMILIES[seed % len(FAMILIES)]) for seed in range(first, first + count)]


@pytest.fixture(scope="module")
def programs() -> list[Program]:
    return seeded_programs(FIRST_SEED, N_PROGRAMS)


def unexpected(problems: list[str]) -> list[str]:
    return [p for p in problems if not any(re.match(known, p, re.S) for known in KNOWN_REFUSALS)]


def describe_failures(failures, shrink_first: int = 3) -> str:
    lines = []
    for i, outcome in enumerate(failures):
        lines.append(f"\n{outcome.program}")
        lines += [f"    {p}" for p in unexpected(outcome.problems)]
        if i < shrink_first:
            lines.append(f"  shrunk to: {shrink(outcome.program)}")
    return "\n".join(lines)


def test_programs_match_jax(programs, tmp_path):
    start, cpu = time.perf_counter(), _cpu_seconds()
    outcomes, seconds = [], collections.Counter()
    for first in range(0, len(programs), CHUNK):  # a long run in parts: the converted models take memory
        run = check_programs(programs[first:first + CHUNK], tmp_path / f"part{first // CHUNK}")
        outcomes += run.outcomes
        seconds.update(run.seconds)
    refused = [o for o in outcomes if o.problems and not unexpected(o.problems)]
    failures = [o for o in outcomes if unexpected(o.problems)]
    print(f"\n{len(programs)} programs ({sum(p.dynamic for p in programs)} also with a symbolic batch) in "
          f"{time.perf_counter() - start:.0f} s ({_cpu_seconds() - cpu:.0f} CPU s; stages "
          + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
          + f"); {len(refused)} with a known refusal, {len(failures)} failing")
    print("families:", dict(sorted(family_counts(programs).items())))
    assert not failures, f"{len(failures)} of {len(programs)} programs fail:" + describe_failures(failures)


@given(st.data())
def test_hypothesis_programs_match_jax(data):
    program = draw_program(HypothesisDraw(data), data.draw(st.sampled_from(FAMILIES)))
    run = check_programs([program])
    problems = unexpected(run.outcomes[0].problems)
    assert not problems, f"{program}\n" + "\n".join(problems)


def test_regressions_match_jax(tmp_path):
    run = check_programs(REGRESSIONS, tmp_path)
    assert not run.failures, describe_failures(run.failures, shrink_first=0)


# ----------------------------------------------------------------------------------------------------
# the generator itself (JAX only, no conversion)
# ----------------------------------------------------------------------------------------------------

def family_counts(programs: list[Program]) -> collections.Counter:
    """In how many programs each family occurs."""
    return collections.Counter(f for p in programs for f in set(p.families()))


def dense_rows_and_widths(programs: list[Program]) -> list[tuple[int, int]]:
    """(rows, width) of every dense step: rows are all the axes but the last, at the input's batch."""
    found = []
    for program in programs:
        for (name, *args), val in zip(program.steps, program.vals()):
            if name == "dense":
                found.append((val.size // val.shape[-1], args[1]))
    return found


def test_generator_reaches_every_family(programs):
    if N_PROGRAMS < 240:
        pytest.skip("the minimum counts are for at least 240 programs")
    counts = family_counts(programs)
    assert {f: counts[f] for f in PROGRAM_FAMILIES if counts[f] < MIN_PER_FAMILY} == {}
    kinds = collections.Counter(name for p in programs for name, *_ in p.steps)
    assert sorted(set(KINDS) - LEGACY_ONLY - set(kinds)) == [], "kinds of steps never drawn"
    dense = dense_rows_and_widths(programs)
    assert sum(rows >= 5 and width % 32 == 0 for rows, width in dense) >= 3, "J2S_Dense's panel path"
    assert sum(rows >= 5 and width % 32 != 0 for rows, width in dense) >= 3
    assert sum(rows < 5 for rows, _ in dense) >= 3
    dtypes = collections.Counter(p.dtype for p in programs)
    assert min(dtypes["int32"], dtypes["bool"]) >= MIN_PER_FAMILY, dtypes
    assert sum(p.dynamic for p in programs) == len(programs), "every drawn program keeps its batch"
    values = collections.Counter(v.dtype for p in programs for v in p.vals()[1:])
    assert min(values.values()) >= 3 * MIN_PER_FAMILY and len(values) == 3, values


def test_generated_shapes_agree_with_jax(programs):
    """What the generator thinks each step makes is what JAX makes, at the program's batch and at 1 and
    MAX_BATCH (a program that does not trace at another batch is no batch-polymorphic program):
    checked on the first program using each kind of step."""
    first_of_kind = {}
    for program in programs:
        for name, *_ in program.steps:
            first_of_kind.setdefault(name, program)
    errors = {name: shape_errors(p, (1, MAX_BATCH)) for name, p in first_of_kind.items()}
    assert {name: e for name, e in errors.items() if e} == {}


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the compilers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
