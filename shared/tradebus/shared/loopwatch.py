"""How late a service's event loop is: liveness from responsiveness, not from the process.

A task on the service's loop sleeps a short interval and measures how much later than asked
it woke up. A loop that is busy wakes a little late; a loop blocked by a synchronous call
(a stuck venue SDK, a lock taken without `await`) does not wake at all, and the time since
the task last ran grows. `lag()` is the larger of the two: it keeps growing while the loop
is blocked, which the lag of the last wake-up alone cannot show, because that is only
measured once the loop runs again. It is read from the health server's thread (health.py),
which answers while the service's loop cannot.
"""

from __future__ import annotations

import asyncio
import time

from tradebus.shared.health import ServiceMetrics

INTERVAL = 0.25
"""Seconds between wake-ups: small against any sensible stall limit, cheap on the loop."""


class LoopWatch:
    """Measures the lag of the loop that runs `run()`; `lag()` may be called from any thread."""

    def __init__(self, metrics: ServiceMetrics, *, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._woke_at = time.monotonic()
        self._last_lag = 0.0
        gauge = metrics.gauge(
            "tradebus_event_loop_lag_seconds",
            "How late the service's event loop is: the delay of its last timer wake-up, or, while it is "
            "blocked, the time since it should have woken (/healthz fails above loop_stall_limit).",
        )
        gauge.set_function(self.lag)

    def lag(self) -> float:
        overdue = time.monotonic() - self._woke_at - self.interval
        return max(self._last_lag, overdue, 0.0)

    async def run(self) -> None:
        self._woke_at = time.monotonic()
        while True:
            due = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self._last_lag = max(0.0, now - due)
            self._woke_at = now
