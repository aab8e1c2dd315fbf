"""The simulated market: what it lists, and where its prices come from: a random walk, or a
recorded file replayed.

Both produce `MarketUpdate`s: the displayed book (when it changed), a trade print and, for
recordings that contain them, finished bars. Their owner (the paper connector, a venue
emulator) turns these into wire messages and feeds them to the simulated exchange.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec

from tradebus.schemas.values import Aggressor

from .rules import InstrumentSpec
from .state import Level


def _crypto(symbol: str, price: str, lot: str) -> InstrumentSpec:
    base, quote = symbol.split("/")
    return InstrumentSpec(
        symbol=symbol, base=base, quote=quote, tick_size=Decimal("0.01"), lot_size=Decimal(lot),
        min_quantity=Decimal(lot), min_notional=Decimal("5"), initial_price=Decimal(price),
    )


def _equity(symbol: str, price: str) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=symbol, base=symbol, quote="USD", tick_size=Decimal("0.01"), lot_size=Decimal("1"),
        min_quantity=Decimal("1"), min_notional=Decimal("1"), initial_price=Decimal(price), asset_class="equity",
    )


def default_instruments() -> list[InstrumentSpec]:
    # BRK.B is here on purpose: its `.` must survive the trip through a subject token.
    return [
        _crypto("BTC/USDT", "60000", "0.00001"),
        _crypto("ETH/USDT", "3000", "0.0001"),
        _crypto("SOL/USDT", "150", "0.001"),
        _equity("AAPL", "190"),
        _equity("BRK.B", "420"),
    ]


class MarketSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The instruments listed, and how the random walk moves their prices."""

    instruments: list[InstrumentSpec] = msgspec.field(default_factory=default_instruments)
    seed: int | None = None  # fixes the random walk
    volatility_bps: float = 3.0  # standard deviation of one step of the mid price
    spread_ticks: int = 2
    book_depth: int = 10
    level_notional: Decimal = Decimal("50000")  # typical displayed notional per book level
    trade_probability: float = 0.3  # chance of a market trade per instrument per step


class ReplaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replay recorded data instead of the random walk. See docs/paper-venue.md for the
    columns of the CSV / Parquet file."""

    path: str
    speed: float = 1.0  # 2.0 = twice as fast as recorded; 0 = as fast as possible
    loop: bool = False


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


class _BookSide:
    """One side of a simulated book: the touch, then deeper levels `step` ticks apart
    (negative for bids: deeper is lower), best first.

    A deeper level keeps its `Level` (the very same Decimal objects) while its price stays
    on the book, so a step only creates the levels that appeared and slides the rest."""

    __slots__ = ("step", "touch", "touch_lots", "touch_level", "first", "deeper")

    def __init__(self, step: int) -> None:
        self.step = step
        self.touch = 0  # ticks
        self.touch_lots = 0
        self.touch_level: Level | None = None
        self.first = 0  # ticks of deeper[0]
        self.deeper: list[Level] = []

    def holds(self, price: int) -> bool:
        """Whether `price` (ticks) is on this side of the book."""
        if price == self.touch and self.touch_level is not None:
            return True
        index, off_grid = divmod(price - self.first, self.step)
        return not off_grid and 0 <= index < len(self.deeper)


class _WalkState:
    """One instrument's random walk, in integer ticks and lots (cheap to step)."""

    __slots__ = ("spec", "mid", "grid", "lots_per_level", "bids", "asks")

    def __init__(self, spec: InstrumentSpec, level_notional: Decimal) -> None:
        self.spec = spec
        self.mid = float(spec.initial_price / spec.tick_size)
        self.grid = max(1, round(self.mid / 10_000))  # deeper levels sit on a fixed ~1 bp grid
        self.lots_per_level = float(level_notional / (spec.initial_price * spec.lot_size))
        self.bids = _BookSide(-self.grid)
        self.asks = _BookSide(self.grid)

    def level(self, ticks: int, lots: int) -> Level:
        return self.spec.tick_size * ticks, self.spec.lot_size * lots


class RandomWalk:
    """Geometric random walk of the mid price with a book of `book_depth` levels a side: the
    touch at `spread_ticks`, deeper levels on a fixed grid about one basis point apart (so a
    small move changes a few levels, as on a real book), and random market trades at the touch."""

    def __init__(self, config: MarketSettings) -> None:
        self._config = config
        self._rng = random.Random(config.seed)
        self._states = [_WalkState(spec, config.level_notional) for spec in config.instruments]
        self._sigma = config.volatility_bps / 10_000
        self._spread = max(1, config.spread_ticks)
        self._deeper = config.book_depth - 1

    def advance(self, now: int) -> list[MarketUpdate]:
        return [self._step(state, now) for state in self._states]

    def _step(self, state: _WalkState, now: int) -> MarketUpdate:
        rng, spread, grid = self._rng, self._spread, state.grid
        state.mid *= math.exp(rng.gauss(0.0, self._sigma))
        best_bid = max(1, int(state.mid - spread / 2))
        best_ask = best_bid + spread
        bids = self._move(state, state.bids, best_bid, (best_bid - 1) // grid * grid)
        asks = self._move(state, state.asks, best_ask, (best_ask // grid + 1) * grid)
        update = MarketUpdate(state.spec.symbol, now, bids=bids, asks=asks)
        if rng.random() < self._config.trade_probability:
            aggressor = Aggressor.BUY if rng.random() < 0.5 else Aggressor.SELL
            touch = state.asks if aggressor is Aggressor.BUY else state.bids
            lots = max(1, int(touch.touch_lots * rng.random() * 0.5))
            update.trade = TradePrint(touch.touch_level[0], state.spec.lot_size * lots, aggressor)  # type: ignore[index]
        return update

    def _move(self, state: _WalkState, side: _BookSide, touch: int, first: int) -> list[Level]:
        """Move a side to a new touch and first deeper price; return its levels. Levels keep
        their size while their price stays on the book (so deltas stay small), the touch is
        refreshed every step, new levels get a fresh random size. Random numbers are drawn
        in book order: one if the touch's price is new, one per new deeper level, then the
        touch's refresh."""
        rng, lots_per_level, step, count = self._rng, state.lots_per_level, side.step, self._deeper

        def new_level(price: int) -> Level:
            if price == side.touch and side.touch_level is not None:
                return side.touch_level  # the old touch, now a deeper level, keeps its size
            return state.level(price, max(1, int(lots_per_level * rng.uniform(0.5, 1.5))))

        if not side.holds(touch):
            # Discarded (the refresh below sets the touch), but drawn so that a seeded market
            # stays the one earlier versions produced.
            rng.uniform(0.5, 1.5)
        old = side.deeper
        shift = (first - side.first) // step  # grid steps the deeper levels moved away from the touch
        if old and 0 <= shift < count:  # old levels from `shift` on stay; new ones join at the far end
            deeper = old[shift:] + [new_level(first + i * step) for i in range(count - shift, count)]
        elif old and -count < shift < 0:  # new levels come in nearest the touch, then the old ones that stay
            deeper = [new_level(first + i * step) for i in range(-shift)] + old[: count + shift]
        else:  # first step, or a jump over the whole book
            deeper = [new_level(first + i * step) for i in range(count)]
        side.touch_lots = max(1, int(lots_per_level * rng.uniform(0.2, 1.2)))
        side.touch, side.touch_level = touch, state.level(touch, side.touch_lots)
        side.first, side.deeper = first, deeper
        return [side.touch_level, *deeper]


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
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp()) * 1_000_000_000 + parsed.microsecond * 1000


def _read_rows(path: Path) -> list[dict[str, object]]:
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq  # optional extra: tradebus[parquet]

        rows: list[dict[str, object]] = pq.read_table(path).to_pylist()  # pyarrow has no type hints
        return rows
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
