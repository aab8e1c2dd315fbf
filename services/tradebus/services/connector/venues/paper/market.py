"""Where the paper venue's market comes from: a random walk, or a recorded file replayed.

Both produce `MarketUpdate`s: the displayed book (when it changed), a trade print and, for
recordings that contain them, finished bars. The connector turns these into wire messages
and feeds them to the matching engine.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from tradebus.schemas.values import Aggressor

from .config import PaperConfig, ReplaySettings
from .rules import InstrumentSpec

Level = tuple[Decimal, Decimal]


@dataclass(slots=True)
class TradePrint:
    price: Decimal
    size: Decimal
    aggressor: Aggressor


@dataclass(slots=True)
class RecordedBar:
    start: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    trades: int = 0


@dataclass(slots=True)
class MarketUpdate:
    symbol: str
    ts: int
    bids: list[Level] | None = None  # None: the book did not change
    asks: list[Level] | None = None
    trade: TradePrint | None = None
    bar: RecordedBar | None = None


class _WalkState:
    """One instrument's random walk, in integer ticks and lots (cheap to step)."""

    __slots__ = ("spec", "mid", "grid", "bid_sizes", "ask_sizes")

    def __init__(self, spec: InstrumentSpec) -> None:
        self.spec = spec
        self.mid = float(spec.initial_price / spec.tick_size)
        self.grid = max(1, round(self.mid / 10_000))  # deeper levels sit on a fixed ~1 bp grid
        self.bid_sizes: dict[int, int] = {}
        self.ask_sizes: dict[int, int] = {}


class RandomWalk:
    """Geometric random walk of the mid price with a book of `book_depth` levels a side: the
    touch at `spread_ticks`, deeper levels on a fixed grid about one basis point apart (so a
    small move changes a few levels, as on a real book), and random market trades at the touch."""

    def __init__(self, config: PaperConfig) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._states = [_WalkState(spec) for spec in config.instruments]
        self._sigma = config.volatility_bps / 10_000

    def advance(self, now: int) -> list[MarketUpdate]:
        return [self._step(state, now) for state in self._states]

    def _step(self, state: _WalkState, now: int) -> MarketUpdate:
        config, rng, spec = self._config, self._rng, state.spec
        state.mid *= math.exp(rng.gauss(0.0, self._sigma))
        spread = max(1, config.spread_ticks)
        best_bid = max(1, int(state.mid - spread / 2))
        best_ask = best_bid + spread
        grid, deeper = state.grid, range(config.book_depth - 1)
        below = (best_bid - 1) // grid * grid
        above = (best_ask // grid + 1) * grid
        lots_per_level = float(config.level_notional / (spec.initial_price * spec.lot_size))
        bids = self._side(state.bid_sizes, [best_bid, *(below - i * grid for i in deeper)], lots_per_level)
        asks = self._side(state.ask_sizes, [best_ask, *(above + i * grid for i in deeper)], lots_per_level)
        update = MarketUpdate(spec.symbol, now, bids=self._levels(spec, bids), asks=self._levels(spec, asks))
        if rng.random() < config.trade_probability:
            aggressor = Aggressor.BUY if rng.random() < 0.5 else Aggressor.SELL
            price_ticks, top_lots = asks[0] if aggressor is Aggressor.BUY else bids[0]
            lots = max(1, int(top_lots * rng.random() * 0.5))
            update.trade = TradePrint(spec.tick_size * price_ticks, spec.lot_size * lots, aggressor)
        return update

    def _side(self, sizes: dict[int, int], prices: list[int], lots_per_level: float) -> list[tuple[int, int]]:
        """Levels keep their size while the price stays on the book (so deltas stay small);
        the touch is refreshed every step, new levels get a fresh random size."""
        rng = self._rng
        fresh = {price: sizes.get(price) or max(1, int(lots_per_level * rng.uniform(0.5, 1.5))) for price in prices}
        fresh[prices[0]] = max(1, int(lots_per_level * rng.uniform(0.2, 1.2)))
        sizes.clear()
        sizes.update(fresh)
        return [(price, fresh[price]) for price in prices]

    @staticmethod
    def _levels(spec: InstrumentSpec, levels: list[tuple[int, int]]) -> list[Level]:
        return [(spec.tick_size * price, spec.lot_size * lots) for price, lots in levels]


REPLAY_COLUMNS = (
    "ts_event", "symbol", "kind", "bid", "bid_size", "ask", "ask_size",
    "price", "size", "aggressor", "start", "open", "high", "low", "close", "volume",
)


def _timestamp(value: object) -> int:
    """Integer nanoseconds, or an ISO-8601 time (a naive one is UTC)."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def _read_rows(path: Path) -> list[dict[str, object]]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq  # optional extra: tradebus[parquet]

        return pq.read_table(path).to_pylist()
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _record(row: dict[str, object], known: set[str], line: int) -> MarketUpdate | None:
    """One row -> one update; rows of other symbols are skipped, bad rows raise ValueError
    with the row number."""
    symbol = str(row["symbol"])
    if symbol not in known:
        return None

    def dec(name: str) -> Decimal:
        value = row.get(name)
        if value in (None, ""):
            raise ValueError(f"replay row {line}: column {name!r} is empty")
        return Decimal(str(value))

    ts = _timestamp(row["ts_event"])
    kind = str(row["kind"])
    if kind == "quote":
        return MarketUpdate(symbol, ts, bids=[(dec("bid"), dec("bid_size"))], asks=[(dec("ask"), dec("ask_size"))])
    if kind == "trade":
        aggressor = Aggressor(str(row.get("aggressor") or "unknown"))
        return MarketUpdate(symbol, ts, trade=TradePrint(dec("price"), dec("size"), aggressor))
    if kind == "bar":
        bar = RecordedBar(_timestamp(row["start"]), dec("open"), dec("high"), dec("low"), dec("close"), dec("volume"))
        return MarketUpdate(symbol, ts, bar=bar)
    raise ValueError(f"replay row {line}: unknown kind {kind!r} (quote, trade or bar)")


class Replay:
    """Recorded quotes, trades and bars, replayed at `speed` times the recorded pace with
    their timestamps shifted to now, so downstream sees live-looking data."""

    def __init__(self, settings: ReplaySettings, instruments: list[InstrumentSpec]) -> None:
        known = {spec.symbol for spec in instruments}
        rows = _read_rows(Path(settings.path))
        records = [update for line, row in enumerate(rows, start=2) if (update := _record(row, known, line))]
        if not records:
            raise ValueError(f"{settings.path}: no rows for the configured instruments")
        records.sort(key=lambda update: update.ts)
        self._records = records
        self._settings = settings
        self._next = 0
        self._origin: tuple[int, int] | None = None  # (wall clock, recorded time) at the start of a pass
        self.finished = False

    def advance(self, now: int) -> list[MarketUpdate]:
        if self.finished:
            return []
        if self._origin is None:
            self._origin = (now, self._records[self._next].ts)
        wall_start, recorded_start = self._origin
        speed = self._settings.speed
        horizon = math.inf if speed == 0 else recorded_start + (now - wall_start) * speed
        due: list[MarketUpdate] = []
        while self._next < len(self._records) and self._records[self._next].ts <= horizon:
            record = self._records[self._next]
            due.append(MarketUpdate(record.symbol, now, record.bids, record.asks, record.trade, record.bar))
            self._next += 1
            if speed == 0 and len(due) >= 1000:
                break
        if self._next == len(self._records):
            self._restart_or_finish()
        return due

    def _restart_or_finish(self) -> None:
        if self._settings.loop:
            self._next = 0
            self._origin = None
        else:
            self.finished = True
