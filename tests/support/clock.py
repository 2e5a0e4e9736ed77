"""A fake monotonic clock for tests of code that waits: it moves only when something sleeps on it."""

from __future__ import annotations


class FakeTime:
    """A clock that only moves when something sleeps (``clock()`` reads it, ``clock.sleep`` advances it)."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
