"""Staying inside a venue's request limits.

Proactive: a token bucket sized from the venue's documented limit paces every request, so
a burst of commands is spread out instead of earning a 429. Reactive: when the venue says
"too many requests" anyway, every request waits out its retry-after (the penalty box), so
the connector backs off as a whole rather than each request retrying on its own, which is
what gets API keys banned.
"""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    def __init__(self, per_second: float, *, burst: int = 1) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        self.per_second = per_second
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._updated = time.monotonic()
        self._blocked_until = 0.0
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds spent waiting, for the connector's metrics
        self.penalties = 0

    async def acquire(self) -> None:
        """Wait for a request slot. Callers are served in arrival order."""
        async with self._lock:
            while True:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.per_second)
                self._updated = now
                wait = max(self._blocked_until - now, (1 - self._tokens) / self.per_second if self._tokens < 1 else 0.0)
                if wait <= 0:
                    self._tokens -= 1
                    return
                self.waited += wait
                await asyncio.sleep(wait)

    def penalize(self, retry_after: float) -> None:
        """The venue refused a request for its rate: nobody sends before `retry_after` s."""
        self.penalties += 1
        self._blocked_until = max(self._blocked_until, time.monotonic() + retry_after)
        self._tokens = 0.0
