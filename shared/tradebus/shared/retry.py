"""Waiting between attempts: exponential back-off with full jitter, the one retry schedule of
the fleet.

The n-th wait of a series (n from 0) is drawn uniformly from [0, min(cap, first * 2**n)]:
"full jitter" (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015). Processes
that lost the same venue or bus at the same moment spread their next attempts over the
whole window instead of arriving together at each doubling; the mean wait still doubles.
A `deadline` (seconds from the start of the series) bounds the series: no wait runs past
it, and once it has passed `wait()` returns False instead of sleeping. A success starts a
new series (`reset`). The clock, the sleep and the random source are parameters, so a test
checks the schedule without waiting.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_DOUBLINGS = 60  # beyond it every cap in use is reached; keeps first * 2**n a finite float


class Backoff:
    def __init__(
        self,
        first: float,
        *,
        cap: float = 30.0,
        deadline: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        self.first = first  # upper bound of the first wait
        self.cap = cap  # no wait is longer
        self.deadline = deadline  # seconds a series may last, from its start
        self.attempts = 0  # waits drawn in this series
        self._clock = clock
        self._sleep = sleep
        self._uniform = uniform  # a number in [0, 1)
        self._ends_at = None if deadline is None else clock() + deadline

    def ceiling(self) -> float:
        """The upper bound of the next wait."""
        return min(self.cap, self.first * 2.0 ** min(self.attempts, MAX_DOUBLINGS))

    def expired(self) -> bool:
        return self._ends_at is not None and self._clock() >= self._ends_at

    def delay(self) -> float:
        """Draw the next wait (shortened to end at the deadline, if there is one)."""
        drawn = self._uniform() * self.ceiling()
        self.attempts += 1
        if self._ends_at is None:
            return drawn
        return max(0.0, min(drawn, self._ends_at - self._clock()))

    async def wait(self) -> bool:
        """Sleep the next wait; False, without sleeping, once the deadline has passed."""
        if self.expired():
            return False
        await self._sleep(self.delay())
        return True

    def reset(self) -> None:
        """The attempt succeeded: the next failure starts a new series (and a new deadline)."""
        self.attempts = 0
        if self.deadline is not None:
            self._ends_at = self._clock() + self.deadline


async def retry(
    attempt: Callable[[], Awaitable[T]],
    *,
    on: tuple[type[Exception], ...],
    backoff: Backoff,
    tries: int | None = None,
    on_failure: Callable[[Exception], object] | None = None,
) -> T:
    """`attempt()` until it returns. An exception of the types `on` is followed by the
    back-off's wait and another attempt, until `tries` attempts were made or the deadline
    passed: then it is raised. `on_failure` hears of each failure that is retried; any other
    exception is raised at once."""
    tried = 0
    while True:
        try:
            return await attempt()
        except on as exc:
            tried += 1
            if (tries is not None and tried >= tries) or backoff.expired():
                raise
            if on_failure is not None:
                on_failure(exc)
            await backoff.wait()
