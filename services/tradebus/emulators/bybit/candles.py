"""Candles built from the emulated market's trade prints: one-minute bars, kept for a day,
from which every Bybit kline interval and the tickers' 24-hour figures are derived."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

MINUTE_MS = 60_000
DAY_MINUTES = 1440
# Bybit kline intervals (minutes; D, W, M as Bybit spells them) -> length in minutes
INTERVALS = {"1": 1, "3": 3, "5": 5, "15": 15, "30": 30, "60": 60, "120": 120, "240": 240, "360": 360,
             "720": 720, "D": DAY_MINUTES, "W": 7 * DAY_MINUTES, "M": 30 * DAY_MINUTES}


@dataclass(slots=True)
class Bar:
    start: int  # ms
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    turnover: Decimal


class Candles:
    """One-minute bars of one symbol, newest last, at most a day of them."""

    def __init__(self) -> None:
        self.minutes: deque[Bar] = deque(maxlen=DAY_MINUTES)

    def record(self, ts_ms: int, price: Decimal, size: Decimal) -> None:
        start = ts_ms - ts_ms % MINUTE_MS
        if not self.minutes or self.minutes[-1].start != start:
            self.minutes.append(Bar(start, price, price, price, price, Decimal(0), Decimal(0)))
        bar = self.minutes[-1]
        bar.high, bar.low, bar.close = max(bar.high, price), min(bar.low, price), price
        bar.volume += size
        bar.turnover += price * size

    def bars(self, interval: str) -> list[Bar]:
        """Bars of `interval` (a key of INTERVALS), oldest first."""
        length_ms = INTERVALS[interval] * MINUTE_MS
        merged: list[Bar] = []
        for minute in self.minutes:
            start = minute.start - minute.start % length_ms
            if merged and merged[-1].start == start:
                bar = merged[-1]
                bar.high, bar.low, bar.close = max(bar.high, minute.high), min(bar.low, minute.low), minute.close
                bar.volume += minute.volume
                bar.turnover += minute.turnover
            else:
                merged.append(Bar(start, minute.open, minute.high, minute.low, minute.close, minute.volume,
                                  minute.turnover))
        return merged

    def day(self) -> Bar | None:
        """The last 24 hours as one bar (what tickers call 24h), None before the first trade."""
        if not self.minutes:
            return None
        first = self.minutes[0]
        day = Bar(first.start, first.open, first.high, first.low, first.close, Decimal(0), Decimal(0))
        for minute in self.minutes:
            day.high, day.low, day.close = max(day.high, minute.high), min(day.low, minute.low), minute.close
            day.volume += minute.volume
            day.turnover += minute.turnover
        return day
