"""Settings of the paper venue (the `[paper]` section; env `TRADEBUS_PAPER__<KEY>`)."""

from __future__ import annotations

from decimal import Decimal

import msgspec

from .rules import FeeSchedule, InstrumentSpec


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


def default_accounts() -> dict[str, dict[str, Decimal]]:
    return {"demo": {"USDT": Decimal("1000000"), "USD": Decimal("1000000")}}


class ReplaySettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Replay recorded data instead of the random walk. See docs/paper-venue.md for the
    columns of the CSV / Parquet file."""

    path: str
    speed: float = 1.0  # 2.0 = twice as fast as recorded; 0 = as fast as possible
    loop: bool = False


class FeedOutage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A simulated loss of the venue's market-data feed, for testing how strategies handle
    gaps: `start` seconds after the connector starts, lasting `duration` seconds."""

    start: float
    duration: float


class PaperConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    instruments: list[InstrumentSpec] = msgspec.field(default_factory=default_instruments)
    accounts: dict[str, dict[str, Decimal]] = msgspec.field(default_factory=default_accounts)
    subscribe: list[str] = msgspec.field(default_factory=lambda: ["*"])  # streams published from start
    seed: int | None = None  # fixes the random walk
    tick_interval: float = 0.1  # seconds between market updates (0 = as fast as possible)
    volatility_bps: float = 3.0  # standard deviation of one step of the mid price
    spread_ticks: int = 2
    book_depth: int = 10
    level_notional: Decimal = Decimal("50000")  # typical displayed notional per book level
    trade_probability: float = 0.3  # chance of a market trade per instrument per step
    bar_interval: int = 60  # seconds
    book_snapshot_every: int = 100  # book deltas between two snapshots
    fees: FeeSchedule = msgspec.field(default_factory=FeeSchedule)
    slippage_bps: Decimal = Decimal("0")
    latency: float = 0.0  # seconds the simulated venue takes to act on each command
    allow_short: bool = True
    replay: ReplaySettings | None = None
    feed_outages: list[FeedOutage] = []
