"""Historical bars (reqHistoricalData) and real-time bars (reqRealTimeBars: one 5-second bar
as each 5 seconds end) from what the emulated market printed since the emulator started:
trades where there were any in a bar, else the midpoint, kept for an hour.

Bar sizes and durations as the TWS API names them ("Historical Bar Data": barSizeSetting
"5 secs" .. "1 hour", durationStr "<n> S|D"); dates in formatDate 1 ("20230315  09:30:00",
UTC here) or 2 (epoch seconds).
"""

from __future__ import annotations

import time
from collections import deque
from decimal import Decimal

from .wire import Field

KEEP_SECONDS = 3600
UNITS = {"secs": 1, "sec": 1, "min": 60, "mins": 60, "hour": 3600, "hours": 3600}
DURATION_UNITS = {"S": 1, "D": 86_400, "W": 7 * 86_400}


class UnknownBarSize(ValueError):
    pass


def seconds(bar_size: str) -> int:
    count, _, unit = bar_size.strip().partition(" ")
    if unit not in UNITS or not count.isdigit():
        raise UnknownBarSize(bar_size)
    return int(count) * UNITS[unit]


def duration_seconds(duration: str) -> int:
    count, _, unit = duration.strip().partition(" ")
    if unit not in DURATION_UNITS or not count.isdigit():
        raise UnknownBarSize(duration)
    return int(count) * DURATION_UNITS[unit]


class BarRecorder:
    def __init__(self) -> None:
        self._prints: dict[str, deque[tuple[float, Decimal, Decimal]]] = {}  # symbol -> (time, price, size)

    def record(self, symbol: str, price: Decimal, size: Decimal) -> None:
        prints = self._prints.setdefault(symbol, deque())
        now = time.time()
        prints.append((now, price, size))
        while prints and prints[0][0] < now - KEEP_SECONDS:
            prints.popleft()

    def last_bar(self, symbol: str, width: int, end: int) -> list[Field] | None:
        """The bar of [end - width, end) as realtimeBar carries it: start (epoch seconds),
        open, high, low, close, volume, WAP, count; None when nothing printed in it."""
        prints = [(price, size) for at, price, size in self._prints.get(symbol, ()) if end - width <= at < end]
        return None if not prints else [end - width, *_ohlc(prints)]

    def rows(self, symbol: str, bar_size: str, duration: str, epoch_dates: bool) -> list[list[Field]]:
        """date, open, high, low, close, volume, average (WAP), count per bar, oldest first."""
        width, span = seconds(bar_size), duration_seconds(duration)
        since = time.time() - span
        buckets: dict[int, list[tuple[Decimal, Decimal]]] = {}
        for at, price, size in self._prints.get(symbol, ()):
            if at >= since:
                buckets.setdefault(int(at // width * width), []).append((price, size))
        return [[str(start) if epoch_dates else time.strftime("%Y%m%d  %H:%M:%S", time.gmtime(start)),
                 *_ohlc(buckets[start])] for start in sorted(buckets)]


def _ohlc(prints: list[tuple[Decimal, Decimal]]) -> list[Field]:
    """open, high, low, close, volume, WAP (on the price's tick), count."""
    prices = [price for price, _ in prints]
    volume = sum((size for _, size in prints), Decimal(0))
    wap = sum((p * s for p, s in prints), Decimal(0)) / volume if volume else prices[-1]
    return [prices[0], max(prices), min(prices), prices[-1], volume, wap.quantize(prices[0]), len(prints)]
