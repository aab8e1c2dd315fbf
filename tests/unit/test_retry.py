"""The fleet's retry schedule (retry.py) on a fake clock: doubling bounds, full jitter within
them, the cap, the deadline, and the retry loop's stopping rules."""

from __future__ import annotations

import asyncio
import random

import pytest

from tradebus.shared.retry import Backoff, retry


class FakeTime:
    """A clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def backoff(time: FakeTime, first: float = 0.5, *, uniform: float = 1.0, **kwargs: float) -> Backoff:
    return Backoff(first, clock=time.clock, sleep=time.sleep, uniform=lambda: uniform, **kwargs)


def test_the_bound_doubles_from_the_first_wait_up_to_the_cap() -> None:
    time = FakeTime()
    at_the_bound = backoff(time, cap=5.0)  # a draw of 1.0 shows each bound itself
    assert [at_the_bound.delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    halfway = backoff(time, uniform=0.5, cap=5.0)
    assert [halfway.delay() for _ in range(5)] == [0.25, 0.5, 1.0, 2.0, 2.5]


def test_waits_are_drawn_over_the_whole_window_below_each_bound() -> None:
    draws = random.Random(7)
    jittered = Backoff(0.5, cap=30.0, uniform=draws.random)
    for step in range(8):  # bounds 0.5 ... 30
        bound = jittered.ceiling()
        sample = []
        for _ in range(400):
            sample.append(jittered.delay())
            jittered.attempts = step  # draw again at the same step
        assert all(0.0 <= delay < bound for delay in sample)
        assert min(sample) < 0.05 * bound and max(sample) > 0.95 * bound  # full jitter, not a narrow band
        jittered.attempts += 1


def test_the_cap_holds_after_any_number_of_failures() -> None:
    time = FakeTime()
    capped = backoff(time, first=0.5, cap=30.0)
    delays = [capped.delay() for _ in range(2000)]  # far past the doublings a float could hold
    assert max(delays) == 30.0 and delays[-1] == 30.0


def test_a_success_starts_the_schedule_over() -> None:
    time = FakeTime()
    schedule = backoff(time, cap=30.0)
    for _ in range(4):
        schedule.delay()
    schedule.reset()
    assert schedule.delay() == 0.5


def test_no_wait_runs_past_the_deadline_and_none_is_slept_after_it() -> None:
    time = FakeTime()
    bounded = backoff(time, first=1.0, cap=30.0, deadline=10.0)

    async def wait_until_refused() -> list[bool]:
        return [await bounded.wait() for _ in range(6)]

    assert asyncio.run(wait_until_refused()) == [True, True, True, True, False, False]
    assert time.slept == [1.0, 2.0, 4.0, 3.0]  # the fourth is cut to end at the deadline
    assert time.now == 1010.0
    bounded.reset()  # a new series has a deadline of its own
    assert not bounded.expired() and bounded.delay() == 1.0


def test_retry_waits_between_failures_and_returns_the_first_success() -> None:
    time = FakeTime()
    failures = [ConnectionError("down"), ConnectionError("still down")]
    heard: list[str] = []

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "connected"

    result = asyncio.run(
        retry(attempt, on=(ConnectionError,), backoff=backoff(time), on_failure=lambda exc: heard.append(str(exc)))
    )
    assert result == "connected" and time.slept == [0.5, 1.0] and heard == ["down", "still down"]


def test_retry_raises_after_its_tries_without_a_last_wait() -> None:
    time = FakeTime()
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ConnectionError(f"attempt {calls}")

    with pytest.raises(ConnectionError, match="attempt 3"):
        asyncio.run(retry(attempt, on=(ConnectionError,), backoff=backoff(time), tries=3))
    assert calls == 3 and time.slept == [0.5, 1.0]


def test_retry_raises_once_the_deadline_has_passed() -> None:
    time = FakeTime()

    async def attempt() -> None:
        raise TimeoutError("no answer")

    with pytest.raises(TimeoutError):
        asyncio.run(retry(attempt, on=(TimeoutError,), backoff=backoff(time, first=1.0, deadline=5.0)))
    assert time.slept == [1.0, 2.0, 2.0] and time.now == 1005.0


def test_retry_does_not_retry_other_errors() -> None:
    time = FakeTime()

    async def attempt() -> None:
        raise PermissionError("refused")

    with pytest.raises(PermissionError):
        asyncio.run(retry(attempt, on=(ConnectionError,), backoff=backoff(time)))
    assert time.slept == []
