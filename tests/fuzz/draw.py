"""Where a program's random choices come from: a seeded random.Random (the batched runs: a seed is a
program) or hypothesis (one program per example, and hypothesis shrinks a failing one)."""
from __future__ import annotations

import random
from typing import Any, Sequence


class RandomDraw:
    def __init__(self, seed: int):
        self._rng = random.Random(seed)

    def integer(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return self._rng.randint(lo, hi)

    def choice(self, options: Sequence) -> Any:
        return options[self._rng.randrange(len(options))]

    def boolean(self) -> bool:
        return self._rng.random() < 0.5


class HypothesisDraw:
    """The same interface over hypothesis' `st.data()`; earlier options are what hypothesis shrinks towards."""

    def __init__(self, data):
        from hypothesis import strategies as st

        self._data, self._st = data, st

    def integer(self, lo: int, hi: int) -> int:
        return self._data.draw(self._st.integers(lo, hi))

    def choice(self, options: Sequence) -> Any:
        return options[self._data.draw(self._st.integers(0, len(options) - 1))]

    def boolean(self) -> bool:
        return self._data.draw(self._st.booleans())
