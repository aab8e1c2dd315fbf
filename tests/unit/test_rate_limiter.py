"""RateLimiter: requests are spread to the venue's rate and held back after a penalty.

Only lower bounds on elapsed time are asserted: sleeping never ends early, so these hold
on a loaded machine too."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from tradebus.services.connector.ratelimit import RateLimiter


async def test_a_burst_is_spread_to_the_rate() -> None:
    limiter = RateLimiter(20, burst=1)
    stamps = []
    for _ in range(6):
        await limiter.acquire()
        stamps.append(time.monotonic())
    assert stamps[-1] - stamps[0] >= 5 / 20 - 1e-3
    assert all(later - earlier >= 1 / 20 - 1e-3 for earlier, later in itertools.pairwise(stamps))


async def test_concurrent_callers_share_the_rate() -> None:
    limiter = RateLimiter(50, burst=2)
    started = time.monotonic()
    await asyncio.gather(*(limiter.acquire() for _ in range(12)))
    assert time.monotonic() - started >= 10 / 50 - 1e-3  # two from the burst, ten at the rate


async def test_a_penalty_holds_every_request_back() -> None:
    limiter = RateLimiter(1000, burst=10)
    await limiter.acquire()
    limiter.penalize(0.3)
    penalized = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - penalized >= 0.3 - 1e-3
    assert limiter.penalties == 1


def test_the_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
