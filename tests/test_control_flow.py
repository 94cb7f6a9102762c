"""Control flow: loops whose trip count depends on the inputs run in the generated code (J2S_While) and
stop at the max_while_trips guard; what cannot be lowered is refused at conversion time with the reason."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jax2sofie
from jax2sofie.errors import LoweringError
from jax2sofie.runtime.check import InferenceError


def _doubling(p, x):
    # doubles x until its sum reaches 10: 4 steps from a sum of 1, 1 step from a sum of 6, 8 from 0.06
    return lax.while_loop(lambda c: jnp.sum(c) < 10.0, lambda c: c * 2.0, x)


def test_while_with_data_dependent_trip_count_is_a_loop_in_the_generated_code():
    model = jax2sofie.convert(_doubling, None, np.ones((2, 3), np.float32))
    assert model.graph.op_counts() == {"J2S_While": 1}
    for start in (1.0 / 6.0, 1.0, 0.5):  # 4, 1 and 2 trips: one header, the count its input's
        x = np.full((2, 3), start, np.float32)
        report = model.check(x)
        assert report.passed, report
        assert float(model.run(x)[0].sum()) >= 10.0


def test_a_loop_past_max_while_trips_throws_naming_its_line():
    model = jax2sofie.convert(_doubling, None, np.ones((2, 3), np.float32), max_while_trips=4)
    assert model.check(np.full((2, 3), 1.0 / 6.0, np.float32)).passed  # 4 trips: within the limit
    with pytest.raises(InferenceError, match=r"while loop at \S*test_control_flow.py:\d+.* ran more than 4 "
                                             r"iterations \(the limit is the conversion option max_while_trips\)"):
        model.run(np.full((2, 3), 0.01, np.float32))  # 8 trips


def test_a_condition_that_never_turns_false_stops_at_the_limit():
    model = jax2sofie.convert(lambda p, x: lax.while_loop(lambda c: jnp.sum(c) > -1.0, lambda c: c + 1.0, x), None,
                              np.ones((3,), np.float32), max_while_trips=1000)
    with pytest.raises(InferenceError, match="ran more than 1000 iterations"):
        model.run(np.ones((3,), np.float32))


def test_a_body_that_changes_nothing_runs_not_at_all_or_until_the_limit():
    def fn(p, x, n):
        i, v = lax.while_loop(lambda s: s[0] < n[0], lambda s: s, (jnp.int32(0), x))
        return v * 2.0, i

    model = jax2sofie.convert(fn, None, np.ones((3,), np.float32), np.zeros((1,), np.int32), max_while_trips=10)
    x = np.arange(3, dtype=np.float32)
    assert model.check(x, np.zeros((1,), np.int32)).passed
    with pytest.raises(InferenceError, match="ran more than 10 iterations"):
        model.run(x, np.ones((1,), np.int32))


def test_scan_longer_than_the_unroll_limit_is_refused():
    def fn(p, x):
        return lax.scan(lambda c, _: (c + 1.0, None), x, None, length=5000)[0]

    with pytest.raises(LoweringError, match="unrolling is limited"):
        jax2sofie.convert(fn, None, np.ones((2,), np.float32))
